"""The Chromium checker of ``scripts/render_report.py`` (load probe + DOM dump + console log + screenshot).

The report itself is rendered by ``test_cli_report_renders_in_headless_chromium`` in
test_report_html.py (it reuses that module's report). Here: the checker catches broken pages, and
the script's command line. Chromium tests are skipped when no Chromium is installed.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "render_report.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("render_report", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module          # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


render_report = _load_script()
CHROMIUM = render_report.find_chromium()
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")


@needs_chromium
def test_render_check_catches_a_broken_page(tmp_path, capsys):
    """The checker can fail: a script error, console messages, a broken image and a missing section."""
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>'
                    '<section id="headline"><h2>Headline</h2><p>some text here, long enough</p></section>'
                    '<img alt="bad" src="data:image/png;base64,AAAA">'
                    '<script>console.log("chatter"); console.error("boom"); notDefined();</script></body></html>')
    code = render_report.main([str(page), "--expect", "headline,utilization", "--json", "--chromium", CHROMIUM])
    out = json.loads(capsys.readouterr().out)
    assert code == 1 and not out["ok"]
    problems = "\n".join(out["problems"])
    assert "missing sections in the rendered DOM: utilization" in problems
    assert "images that did not decode: bad" in problems
    assert "page error: " in problems and "notDefined" in problems      # uncaught exception (probe)
    assert "error: boom" in problems                                      # console.error (probe)
    assert "console: " in problems and "chatter" in problems              # console.log (Chromium's log)


def test_script_exits_2_without_a_report(tmp_path, capsys):
    assert render_report.main([str(tmp_path / "missing.html")]) == 2
    assert "does not exist" in capsys.readouterr().err
