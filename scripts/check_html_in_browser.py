#!/usr/bin/env python3
"""Open HTML pages in headless Chromium; fail on a JavaScript error, an empty plot, a plot of zero examples or overflow.

    python scripts/check_html_in_browser.py runs/quickstart/report.html --screenshots runs/screenshots
    mkdocs build -d site && python scripts/check_html_in_browser.py --site site \\
        site/tutorials/01_first_look/index.html --screenshots runs/screenshots

``--site DIR`` serves DIR over HTTP on 127.0.0.1 (a built docs site needs that: its search and
scripts do not load from ``file://``); pages outside a ``--site`` open as files.

For each page, a copy is made beside it with a small probe script added: the probe records every
uncaught error and console error, waits for the page to load and for plotly to draw, then checks
each plotly figure on the page (it has data, an SVG of non-zero size, and drawn marks: heatmap
images, bars, points, lines or table cells; it ends inside the window; neither its title nor its
section heading says it counts "0 examples" or "0 of N examples"), and that the page is no wider
than the window. Each page is checked at every ``--widths`` (default 1000 and 600 px). Chromium prints the final DOM (``--dump-dom``),
the probe's verdict is read from it, and a screenshot of the original page is saved. The exit
code is 1 when any page has a JavaScript error (an uncaught exception, a console error, a local
file that fails to load) or an empty plot, 0 otherwise. An http(s) resource that cannot load
offline (a web font, MathJax from a CDN) is listed, and counted only with ``--fail-on-network``.

Needs Debian's ``chromium`` (``apt-get install -y chromium``). The browser runs with no network
access needed: a page that loads scripts from the internet shows up as errors (e.g. an offline
report must inline plotly.js).
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
    "--allow-file-access-from-files", "--disable-dev-shm-usage",
]

# Installed first in <head>: catches errors raised while later scripts (plotly.js) load.
CATCHER = """<script>
window.__rhlensErrors = []; window.__rhlensNetwork = [];
window.addEventListener('error', function (e) {
  var where = e.filename ? (' (' + e.filename.split('/').pop() + ':' + e.lineno + ')') : '';
  if (e.message) { window.__rhlensErrors.push('error: ' + e.message + where); }
  else if (e.target && e.target.getAttribute) {
    var url = e.target.getAttribute('src') || e.target.getAttribute('href') || '';
    if (url === '') { return; }  // an empty src (a template's unused slot) loads nothing
    var full = e.target.src || e.target.href || url;
    (/^https?:/.test(full) ? window.__rhlensNetwork : window.__rhlensErrors).push('failed to load ' + full);
  }
}, true);
window.addEventListener('unhandledrejection', function (e) { window.__rhlensErrors.push('unhandled rejection: ' + e.reason); });
(function () { var orig = console.error; console.error = function () {
  window.__rhlensErrors.push('console.error: ' + Array.prototype.join.call(arguments, ' ')); return orig.apply(console, arguments); }; })();
</script>"""

# Appended at the end of <body>: checks the figures once the page has settled.
PROBE = """<script>
(function () {
  function marks(div) {
    var sel = ['.hm image', '.heatmaplayer image', 'g.trace.bars path', 'g.points path', 'g.trace.scatter path.js-line',
               '.scatterlayer .point', '.table .cell-text', 'g.table text', '.barlayer path', '.contourlayer path'];
    var n = 0;
    sel.forEach(function (s) { n += div.querySelectorAll(s).length; });
    return n;
  }
  // "0 of 50 examples", "0 examples": a plot whose numbers rest on no example at all
  var ZERO = /(^|[^0-9.])0 (of [0-9]+ )?examples?\b/;
  function label(div) {  // the figure's own title and the heading of its section
    var text = (div.layout && div.layout.title && (div.layout.title.text || div.layout.title)) || '';
    var box = div.closest('.figure');
    var head = box && box.previousElementSibling;
    return String(text) + ' | ' + (head ? head.textContent : '');
  }
  function check() {
    var report = {errors: window.__rhlensErrors.slice(), network: window.__rhlensNetwork.slice(), figures: [],
                  page_overflow: Math.max(0, document.documentElement.scrollWidth - window.innerWidth)};
    var divs = document.querySelectorAll('.js-plotly-plot, .plotly-graph-div');
    var seen = [];
    divs.forEach(function (div) {
      if (seen.indexOf(div) >= 0) { return; } seen.push(div);
      var svg = div.querySelector('svg.main-svg');
      var rect = div.getBoundingClientRect();
      var nTraces = (div.data || []).length;
      var nMarks = marks(div);
      var problem = null;
      if (!div.classList.contains('js-plotly-plot')) { problem = 'plotly never drew this figure'; }
      else if (!svg) { problem = 'no SVG'; }
      else if (rect.width < 10 || rect.height < 10) { problem = 'zero size (' + rect.width + 'x' + rect.height + ')'; }
      else if (nTraces === 0) { problem = 'no data'; }
      else if (nMarks === 0) { problem = 'nothing drawn (no heatmap image, bars, points, lines or table cells)'; }
      else if (rect.right > window.innerWidth + 1 || (svg && svg.getBoundingClientRect().right > window.innerWidth + 1)) {
        problem = 'overflows the page: ' + Math.round(Math.max(rect.right, svg.getBoundingClientRect().right) - window.innerWidth) +
                  ' px past a ' + window.innerWidth + ' px window';
      }
      else if (ZERO.test(label(div))) { problem = 'plots a number that counts zero examples: ' + label(div).match(ZERO)[0]; }
      report.figures.push({id: div.id, traces: nTraces, marks: nMarks, width: Math.round(rect.width),
                           height: Math.round(rect.height), problem: problem});
    });
    var pre = document.createElement('pre');
    pre.id = 'rhlens-browser-check';
    pre.textContent = JSON.stringify(report);
    document.body.appendChild(pre);
  }
  window.addEventListener('load', function () { setTimeout(check, 2500); });
})();
</script>"""

MARKER = re.compile(r'<pre id="rhlens-browser-check">(.*?)</pre>', re.S)


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    sys.exit("check_html_in_browser: no Chromium found; install it with: apt-get update && apt-get install -y chromium")


def run_chromium(chromium: str, args: list[str], timeout: float) -> subprocess.CompletedProcess:
    profile = tempfile.mkdtemp(prefix="rhlens-chromium-")
    try:
        return subprocess.run([chromium, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=timeout)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def instrument(html: str) -> str:
    """The page with the error catcher first in <head> and the probe last in <body>."""
    head = re.search(r"<head[^>]*>", html, re.I)
    html = html[:head.end()] + CATCHER + html[head.end():] if head else CATCHER + html
    end = html.lower().rfind("</body>")
    return html[:end] + PROBE + html[end:] if end >= 0 else html + PROBE


def serve(root: Path) -> tuple[str, object]:
    """Serve ``root`` on 127.0.0.1 (a free port) from a daemon thread; returns the base URL and the server."""
    import functools
    import http.server
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # keep the check's output readable
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/", server


def page_url(path: Path, site: Path | None, base_url: str | None) -> str:
    if site is not None and base_url is not None:
        rel = path.resolve().relative_to(site.resolve())
        return base_url + rel.as_posix()
    return path.resolve().as_uri()


def check_page(chromium: str, page: Path, shots: Path, *, width: int, height: int, wait_ms: int,
               timeout: float, site: Path | None = None, base_url: str | None = None) -> dict:
    page = page.resolve()
    # the probe copy sits beside the page so relative links (docs assets) still resolve
    probe = page.with_name(f".rhlens-check-{os.getpid()}-{page.name}")
    probe.write_text(instrument(page.read_text(encoding="utf-8")), encoding="utf-8")
    try:
        dom = run_chromium(chromium, [f"--virtual-time-budget={wait_ms}", "--run-all-compositor-stages-before-draw",
                                      f"--window-size={width},{height}", "--dump-dom",
                                      page_url(probe, site, base_url)], timeout)
    finally:
        probe.unlink(missing_ok=True)
    found = MARKER.search(dom.stdout)
    if not found:
        result = {"errors": [f"the probe never reported (chromium exit {dom.returncode}): {dom.stderr.strip()[-500:]}"],
                  "figures": []}
    else:
        import html as html_lib

        result = json.loads(html_lib.unescape(found.group(1)))
    shots.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", "_".join(page.parts[-3:]))
    shot = shots / f"{Path(name).stem}-{width}px.png"
    run_chromium(chromium, [f"--virtual-time-budget={wait_ms}", "--run-all-compositor-stages-before-draw",
                            f"--window-size={width},{height}", f"--screenshot={shot}",
                            page_url(page, site, base_url)], timeout)
    result["screenshot"] = str(shot) if shot.is_file() else None
    result["page"] = str(page)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("pages", nargs="+", type=Path, help="HTML files to check")
    p.add_argument("--screenshots", type=Path, default=Path("runs/screenshots"), help="folder for the PNGs")
    p.add_argument("--widths", type=int, nargs="+", default=[1000, 600],
                   help="window widths to check (each page must fit every one: no figure or page overflow)")
    p.add_argument("--height", type=int, default=2400, help="window height (the screenshot's height)")
    p.add_argument("--wait-ms", type=int, default=8000, help="virtual time for the page to load and draw")
    p.add_argument("--min-figures", type=int, default=1, help="fail a page with fewer plotly figures")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per chromium run")
    p.add_argument("--fail-on-network", action="store_true",
                   help="also fail when an http(s) resource (web font, MathJax) cannot load; by default these are "
                        "listed but not counted, since the check runs offline and a published site loads them")
    p.add_argument("--site", type=Path, default=None,
                   help="serve this folder over HTTP on 127.0.0.1 and open the pages inside it from there")
    args = p.parse_args(argv)
    chromium = find_chromium()
    base_url, server = serve(args.site) if args.site is not None else (None, None)
    failed = False
    for page in args.pages:
        if not page.is_file():
            print(f"FAIL {page}: no such file")
            failed = True
            continue
        inside = args.site is not None and args.site.resolve() in page.resolve().parents
        for width in args.widths:
            r = check_page(chromium, page, args.screenshots, width=width, height=args.height,
                           wait_ms=args.wait_ms, timeout=args.timeout,
                           site=args.site if inside else None, base_url=base_url if inside else None)
            failed |= not report(page, width, r, args)
    if server is not None:
        server.shutdown()
    return 1 if failed else 0


def report(page: Path, width: int, r: dict, args: argparse.Namespace) -> bool:
    """Print one page's result at one width; whether it passed."""
    empty = [f for f in r["figures"] if f["problem"]]
    network = r.get("network", [])
    overflow = r.get("page_overflow", 0)
    ok = (not r["errors"] and not empty and len(r["figures"]) >= args.min_figures and overflow <= 1
          and not (network and args.fail_on_network))
    print(f"{'ok  ' if ok else 'FAIL'} {page} at {width} px: {len(r['figures'])} figures, {len(r['errors'])} errors; "
          f"screenshot {r['screenshot']}")
    if overflow > 1:
        print(f"     the page is {overflow} px wider than the window (something overflows)")
    for e in r["errors"]:
        print(f"     JS {e}")
    for e in network:
        print(f"     {'NETWORK' if args.fail_on_network else 'offline, not counted:'} {e}")
    for f in r["figures"]:
        print(f"     figure {f['id'] or '?'}: {f['traces']} traces, {f['marks']} marks, "
              f"{f['width']}x{f['height']}" + (f"  PROBLEM: {f['problem']}" if f["problem"] else ""))
    if len(r["figures"]) < args.min_figures:
        print(f"     expected at least {args.min_figures} figures")
    return ok


if __name__ == "__main__":
    sys.exit(main())
