"""A griffe extension for rhlens's docs: doctest examples become code blocks, Sphinx roles code.

rhlens's docstrings carry runnable ``>>>`` examples in their running text (pytest runs them with
``--doctest-modules``). Rendered as Markdown, their output lines would read as text (and
``x[0][1]`` as a link), so each run of ``>>>`` / ``...`` lines and the output lines that follow,
up to a blank line, is wrapped in a fenced ``pycon`` block before mkdocstrings renders it.
Sphinx roles (``:func:`x```, ``:class:`x```, ...) become inline code. Listed under the python
handler's ``extensions`` in mkdocs.yml.
"""

import re

import griffe

_ROLE = re.compile(r":(?:func|class|meth|mod|data|attr|obj|exc|py:\w+):`~?([^`]+)`")


def plain_roles(text: str) -> str:
    """``:func:`rhlens.train``` -> ```rhlens.train```."""
    return _ROLE.sub(lambda m: f"`{m.group(1)}`", text)


def fence_doctests(text: str) -> str:
    """Wrap every doctest block of ``text`` in a fenced code block (same indentation)."""
    lines = text.split("\n")
    out, i = [], 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith(">>>"):
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}```pycon")
            while i < len(lines) and lines[i].strip():
                out.append(lines[i])
                i += 1
            out.append(f"{indent}```")
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


class DoctestFences(griffe.Extension):
    """Fence doctest examples and plain Sphinx roles in every docstring griffe loads."""

    def on_object(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = plain_roles(fence_doctests(obj.docstring.value))
