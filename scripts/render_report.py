#!/usr/bin/env python3
"""Render a contactplan HTML report in headless Chromium and check it.

    python scripts/render_report.py report.html [--screenshot shot.png] [--expect headline,utilization]

What is checked:

* the page loads (a probe script injected into a temporary copy of the
  report runs at ``load`` and writes its findings into the DOM, which
  ``--dump-dom`` returns);
* every expected section (``<section id=...>``) is in the rendered DOM — by
  default the ones the report lists in ``<meta name="contactplan-sections">``
  plus the core sections;
* every image decoded (``naturalWidth > 0``);
* no JavaScript errors or failed resource loads (the probe's ``error``
  listener, capturing) and no console messages (Chromium's
  ``--enable-logging=stderr`` prints them as ``CONSOLE`` lines; the report
  has no scripts, so any message is a problem).

With ``--screenshot`` a second run takes a full-page PNG (the page height
comes from the first run, capped at 16000 px); with ``--height H`` as well,
the first run itself takes a ``width x H`` PNG (one browser start). Exit status: 0 ok, 1 problems
found, 2 Chromium not found or bad arguments. Only the standard library is
used, so the script also runs outside the project's virtualenv.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

CORE_SECTIONS = ("headline", "utilization", "shadow-prices", "utilities", "contacts-per-customer", "explanations")
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome", "headless_shell")
MAX_HEIGHT = 16000

PROBE = """<script id="render-probe-script">
(function () {
  var errors = [];
  window.addEventListener("error", function (e) {
    var t = e.target;
    if (t && t !== window && (t.src || t.href)) { errors.push("failed to load " + (t.src || t.href).slice(0, 80)); }
    else { errors.push(String(e.message || e)); }
  }, true);
  ["error", "warn"].forEach(function (level) {
    var orig = console[level];
    console[level] = function () { errors.push(level + ": " + Array.prototype.join.call(arguments, " ")); };
  });
  window.addEventListener("load", function () {
    var out = {
      sections: Array.prototype.map.call(document.querySelectorAll("section[id]"), function (s) {
        return [s.id, s.innerText.length]; }),
      images: Array.prototype.map.call(document.images, function (i) {
        return [i.alt, i.complete, i.naturalWidth]; }),
      height: Math.max(document.body.scrollHeight, document.documentElement.scrollHeight),
      errors: errors
    };
    var pre = document.createElement("pre");
    pre.id = "render-probe"; pre.style.display = "none"; pre.textContent = JSON.stringify(out);
    document.body.appendChild(pre);
  });
})();
</script>"""


@dataclass
class RenderResult:
    """What Chromium made of the page."""

    dom: str
    console: list = field(default_factory=list)
    probe: dict | None = None
    returncode: int = 0
    screenshot: Path | None = None
    stderr_tail: str = ""


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome binary: ``$CHROMIUM`` or the first of the usual names on PATH."""
    env = os.environ.get("CHROMIUM")
    if env and (shutil.which(env) or Path(env).exists()):
        return shutil.which(env) or env
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _flags(profile: str) -> list[str]:
    return ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
            "--hide-scrollbars", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0"]


def _console_lines(stderr: str) -> list[str]:
    return [line.split("CONSOLE", 1)[1].lstrip(":0123456789] ").strip()
            for line in stderr.splitlines() if ":CONSOLE" in line]


def render(html_path: str | Path, screenshot: str | Path | None = None, width: int = 1280,
           chromium: str | None = None, timeout: float = 90.0, height: int | None = None) -> RenderResult:
    """Load a copy of the page with the probe, dump the DOM, optionally take a screenshot.

    With ``height`` the screenshot (of a ``width`` x ``height`` window) is taken by the same browser
    start that dumps the DOM; without it a second start takes a full-page shot (the page height
    comes from the probe).
    """
    chromium = chromium or find_chromium()
    if chromium is None:
        raise FileNotFoundError("no Chromium found (install `chromium` or set $CHROMIUM)")
    source = Path(html_path).read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="render-report-") as tmp:
        page = Path(tmp) / "page.html"
        if re.search(r"<head[^>]*>", source, flags=re.I):
            probed = re.sub(r"(<head[^>]*>)", lambda m: m.group(1) + PROBE, source, count=1, flags=re.I)
        else:
            probed = PROBE + source
        page.write_text(probed, encoding="utf-8")
        url = page.resolve().as_uri()
        one_pass = screenshot is not None and height is not None
        target = Path(screenshot).resolve() if screenshot is not None else None
        if target is not None:
            target.unlink(missing_ok=True)          # a stale file must not pass for a new screenshot
        cmd = [chromium, *_flags(str(Path(tmp) / "profile")), f"--window-size={width},{height or 1000}"]
        if one_pass:
            cmd.append(f"--screenshot={target}")
        proc = subprocess.run([*cmd, "--dump-dom", url], capture_output=True, text=True, timeout=timeout)
        result = RenderResult(dom=proc.stdout, console=_console_lines(proc.stderr), returncode=proc.returncode,
                              stderr_tail="\n".join(proc.stderr.splitlines()[-5:]))
        m = re.search(r'<pre id="render-probe"[^>]*>(.*?)</pre>', proc.stdout, flags=re.S)
        if m:
            import html as _html

            result.probe = json.loads(_html.unescape(m.group(1)))
        if target is not None and not one_pass:
            full = min(MAX_HEIGHT, int((result.probe or {}).get("height", 4000)) + 40)
            shot = subprocess.run([chromium, *_flags(str(Path(tmp) / "profile2")), f"--window-size={width},{full}",
                                   f"--screenshot={target}", url], capture_output=True, text=True, timeout=timeout)
            result.console += _console_lines(shot.stderr)
            if shot.returncode != 0:
                result.returncode = shot.returncode
        if target is not None and target.exists():
            result.screenshot = target
    return result


class _Sections(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.declared: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section" and a.get("id"):
            self.ids.append(a["id"])
        if tag == "meta" and a.get("name") == "contactplan-sections":
            self.declared = (a.get("content") or "").split()


def expected_sections(html_text: str) -> list[str]:
    """Core sections plus those the report declares in its ``contactplan-sections`` meta tag."""
    parser = _Sections()
    parser.feed(html_text)
    return list(dict.fromkeys([*CORE_SECTIONS, *parser.declared]))


def check(result: RenderResult, expected: list[str]) -> list[str]:
    """Problems found in a rendering (empty list: fine)."""
    problems = []
    if result.returncode != 0:
        problems.append(f"chromium exited with status {result.returncode}: {result.stderr_tail}")
    parser = _Sections()
    parser.feed(result.dom)
    missing = [s for s in expected if s not in parser.ids]
    if missing:
        problems.append(f"missing sections in the rendered DOM: {', '.join(missing)}")
    if result.probe is None:
        problems.append("the load probe did not run (page did not finish loading)")
    else:
        empty = [sid for sid, length in result.probe["sections"] if length < 20]
        if empty:
            problems.append(f"empty sections: {', '.join(empty)}")
        broken = [alt for alt, complete, w in result.probe["images"] if not complete or w == 0]
        if broken:
            problems.append(f"images that did not decode: {', '.join(broken)}")
        problems += [f"page error: {e}" for e in result.probe["errors"]]
    problems += [f"console: {c}" for c in result.console]
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("report", type=Path)
    ap.add_argument("--screenshot", type=Path, default=None, help="write a full-page PNG here")
    ap.add_argument("--expect", default=None, help="comma-separated section ids (default: declared + core)")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=None,
                    help="window height of the screenshot, taken in the same browser start (default: full page, "
                         "a second start)")
    ap.add_argument("--chromium", default=None, help="browser binary (default: $CHROMIUM or chromium on PATH)")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    args = ap.parse_args(argv)
    if not args.report.is_file():
        print(f"error: REPORT: file {str(args.report)!r} does not exist", file=sys.stderr)
        return 2
    chromium = args.chromium or find_chromium()
    if chromium is None:
        print("error: no Chromium found (install `chromium` or set $CHROMIUM)", file=sys.stderr)
        return 2
    text = args.report.read_text(encoding="utf-8")
    expected = args.expect.split(",") if args.expect else expected_sections(text)
    result = render(args.report, args.screenshot, args.width, chromium, height=args.height)
    problems = check(result, expected)
    if args.json:
        print(json.dumps({"ok": not problems, "problems": problems, "sections": expected,
                          "probe": result.probe, "console": result.console,
                          "screenshot": str(result.screenshot) if result.screenshot else None}, indent=2))
    else:
        n_img = len((result.probe or {}).get("images", []))
        print(f"{chromium}: {len(expected)} sections expected, {n_img} images, "
              f"{len(result.console)} console messages")
        if result.screenshot:
            print(f"screenshot: {result.screenshot}")
        for p in problems:
            print(f"PROBLEM: {p}")
        print("ok" if not problems else f"{len(problems)} problem(s)")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
