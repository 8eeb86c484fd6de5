"""One self-contained offline HTML page of several figures."""

import html
import os
from typing import Sequence

import plotly.graph_objects as go


# --- HTML -----------------------------------------------------------------------------------
_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: Arial, Helvetica, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }}
h1 {{ font-size: 1.6em; }} h2 {{ font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; }}
.figure {{ margin: 0.5em 0 1.5em 0; max-width: 100%; overflow-x: auto; }}
.scroll {{ max-width: 100%; overflow-x: auto; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 0.25em 0.6em; }}
</style>
<script type="text/javascript">{plotlyjs}</script>
</head>
<body>
<h1>{title}</h1>
{intro}
{sections}
</body>
</html>
"""


def write_html(figures: Sequence, path: "str | os.PathLike", *, title: str,
               intro: str | None = None) -> None:
    """Write one self-contained HTML page: ``title``, ``intro``, then a heading per figure.

    Args:
        figures: ``(heading, figure)`` pairs; a figure is a ``go.Figure`` or an HTML string
            (inserted as it is, e.g. a paragraph or a table).
        path: the file to write (atomically, via :mod:`rhlens.files`; parent folders are created).
        title: the page's title and first heading.
        intro: plain text under the title (escaped; blank lines separate paragraphs).

    plotly.js is inlined once (about 4.5 MB), so the page works offline.

    >>> import tempfile, pathlib
    >>> from rhlens.plot import head_heatmap
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "report.html"
    >>> write_html([("Scores", head_heatmap([[0.0, 1.0]]))], out, title="Demo", intro="One figure.")
    >>> text = out.read_text(encoding="utf-8")
    >>> "<h2>Scores</h2>" in text, "<script src=" in text, text.count("Plotly.newPlot")
    (True, False, 1)
    """
    import plotly.io as pio

    from rhlens.files import write_text_atomic

    sections = []
    for i, item in enumerate(figures):
        try:
            heading, fig = item
        except (TypeError, ValueError):
            raise TypeError(f"write_html: figures[{i}] must be a (heading, figure) pair, got {type(item).__name__}") from None
        if isinstance(fig, go.Figure):
            body = pio.to_html(fig, full_html=False, include_plotlyjs=False, div_id=f"figure-{i}",
                               config={"displaylogo": False, "responsive": True})
        elif isinstance(fig, str):
            body = fig
        else:
            raise TypeError(f"write_html: figures[{i}] ({heading!r}) must be a plotly Figure or an HTML string, "
                            f"got {type(fig).__name__}")
        sections.append(f'<h2>{html.escape(str(heading))}</h2>\n<div class="figure">{body}</div>')
    intro_html = ""
    if intro:
        intro_html = "\n".join(f"<p>{html.escape(p.strip())}</p>" for p in intro.split("\n\n") if p.strip())
    from plotly.offline import get_plotlyjs

    page = _PAGE.format(title=html.escape(title), intro=intro_html, sections="\n".join(sections),
                        plotlyjs=get_plotlyjs())
    write_text_atomic(path, page)
