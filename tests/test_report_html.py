"""The HTML report and the report/explain/diff/frontier commands.

The report is parsed with ``html.parser``: sections, self-containment (no scripts, no external
references, every figure a decodable SVG data URI) and its numbers against the plan file. The same
report is then rendered in headless Chromium (skipped without Chromium; see test_report_render.py
for the checker itself).
"""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from optimizer.cli import main
from optimizer.report import CORE_SECTIONS
from tests.test_report_render import CHROMIUM, needs_chromium, render_report

EXPECTED = (*CORE_SECTIONS, "fairness", "frontier", "diff")


class ReportParser(HTMLParser):
    """Sections, images, scripts, links and tables (as lists of rows) of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.images: list[dict] = []
        self.scripts = 0
        self.refs: list[str] = []
        self.meta: dict[str, str] = {}
        self.tables: list[list[list[str]]] = []
        self.explain_blocks = 0
        self._cell: list[str] | None = None
        self._row: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self.sections.append(a.get("id", ""))
        elif tag == "img":
            self.images.append(a)
            self.refs.append(a.get("src", ""))
        elif tag == "script":
            self.scripts += 1
        elif tag in ("a", "link"):
            self.refs.append(a.get("href", ""))
        elif tag == "meta" and "name" in a:
            self.meta[a["name"]] = a.get("content", "")
        elif tag == "details" and a.get("class") == "explain":
            self.explain_blocks += 1
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None and self.tables:
            self.tables[-1].append(self._row)
            self._row = None

    def table_with_header(self, *columns: str) -> pd.DataFrame:
        for t in self.tables:
            if t and all(c in t[0] for c in columns):
                return pd.DataFrame(t[1:], columns=t[0])
        raise AssertionError(f"no table with columns {columns}")


@pytest.fixture(scope="module")
def week(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report_week")
    assert main(["generate", "--customers", "150", "--seed", "9", "--out", str(out)]) == 0
    return out


def problem_args(week: Path, budget: str = "40") -> list[str]:
    return ["--scores", str(week / "scores.csv"), "--channels", str(week / "channels.csv"),
            "--customers", str(week / "customers.csv"), "--budget", budget, "--max-contacts", "2",
            "--min-gap-days", "2"]


@pytest.fixture(scope="module")
def plans(week) -> tuple[Path, Path]:
    new, old = week / "plan.csv", week / "old.csv"
    assert main(["plan", *problem_args(week), "--method", "highs", "--out", str(new), "--quiet"]) == 0
    assert main(["plan", *problem_args(week, "30"), "--method", "dual", "--out", str(old), "--quiet"]) == 0
    return new, old


@pytest.fixture(scope="module")
def report(week, plans) -> tuple[Path, ReportParser, str]:
    new, old = plans
    out = week / "report.html"
    code = main(["report", str(new), *problem_args(week), "--previous", str(old), "--frontier-points", "3",
                 "--price-checks", "2", "--samples", "2", "--out", str(out)])
    assert code == 0
    text = out.read_text(encoding="utf-8")
    parser = ReportParser()
    parser.feed(text)
    return out, parser, text


def test_report_has_every_section(report):
    _, page, _ = report
    assert set(EXPECTED) <= set(page.sections), page.sections
    assert page.meta["contactplan-sections"].split() == page.sections


def test_report_is_self_contained(report):
    _, page, text = report
    assert page.scripts == 0
    for ref in page.refs:
        assert ref.startswith(("data:", "#")), ref
    assert "http://" not in text.replace("http://www.w3.org", "") and "https://" not in text
    assert len(page.images) >= 7
    for img in page.images:
        head, payload = img["src"].split(",", 1)
        assert head == "data:image/svg+xml;base64"
        root = ET.fromstring(base64.b64decode(payload))
        assert root.tag.endswith("svg") and root.get("width") and root.get("height")


@needs_chromium
def test_cli_report_renders_in_headless_chromium(report, tmp_path):
    """Every section in the rendered DOM, every figure decoded, no page or console errors, a screenshot."""
    path, page, text = report
    expected = render_report.expected_sections(text)
    assert set(EXPECTED) <= set(expected)
    result = render_report.render(path, screenshot=tmp_path / "shot.png", chromium=CHROMIUM, height=2400)
    problems = render_report.check(result, expected)
    assert problems == [], problems
    assert [sid for sid, _ in result.probe["sections"]] == page.sections
    assert len(result.probe["images"]) == len(page.images) and all(w > 0 for _, _, w in result.probe["images"])
    png = (tmp_path / "shot.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000


def test_report_numbers_match_the_plan_file(report, plans):
    _, page, text = report
    plan = pd.read_csv(plans[0])
    kpis = dict(zip(*[iter(_kpis(text))] * 2))
    assert float(kpis["objective"].replace(",", "")) == pytest.approx(plan.utility.sum(), abs=1e-4)
    assert int(kpis["contacts"].replace(",", "")) == len(plan)
    assert kpis["spend"].endswith("of 40")
    checks = page.table_with_header("what", "price", "change", "low", "high", "within")
    assert len(checks) == 3 and (checks.within == "True").all(), checks      # 2 slots + the budget
    assert page.explain_blocks == 4


def _kpis(text: str) -> list[str]:
    import re

    out = []
    for label, value in re.findall(r'<div class="kpi">(.*?)<b>(.*?)</b></div>', text):
        out += [label, value]
    return out


def test_report_diff_matches_diff_command(report, plans, week, tmp_path, capsys):
    _, page, _ = report
    new, old = plans
    out = tmp_path / "diff.csv"
    assert main(["diff", str(old), str(new), *problem_args(week), "--out", str(out), "--rows", "2"]) == 0
    printed = capsys.readouterr().out
    assert "Week-over-week changes" in printed
    table = pd.read_csv(out)
    shown = page.table_with_header("change", "customers")
    counts = dict(zip(shown.change, shown.customers.astype(int)))
    assert sum(v for k, v in counts.items() if k != "unchanged") == len(table)
    assert set(table.change) <= set(counts) and table.why.notna().all()


def test_explain_command(week, plans, capsys):
    new, _ = plans
    plan = pd.read_csv(new)
    who = str(plan.customer_id.iloc[0])
    assert main(["explain", who, *problem_args(week), "--plan", str(new)]) == 0
    printed = capsys.readouterr().out
    assert f"Customer {who} is contacted" in printed
    for ch, day in plan.loc[plan.customer_id == plan.customer_id.iloc[0], ["channel", "day"]].itertuples(index=False):
        assert f"{ch} on {day}" in printed.replace("\n", " ")


def test_frontier_command_is_monotone_in_the_budget(week, tmp_path):
    """`contactplan frontier --budget GRID`: exact points non-decreasing; dual points within their gaps."""
    base = ["frontier", "--scores", str(week / "scores.csv"), "--channels", str(week / "channels.csv"),
            "--customers", str(week / "customers.csv"), "--max-contacts", "2", "--min-gap-days", "2",
            "--budget", "0:60:5"]
    frames = {}
    for method in ("highs", "dual"):
        out = tmp_path / f"{method}.csv"
        assert main([*base, "--method", method, "--rel-gap", "1e-9" if method == "highs" else "1e-6",
                     "--out", str(out)]) == 0
        frames[method] = pd.read_csv(out)
        assert (tmp_path / f"{method}.png").stat().st_size > 0
    exact, dual = frames["highs"], frames["dual"]
    assert list(exact.budget) == [0, 15, 30, 45, 60]
    z = exact.objective.to_numpy()
    assert (np.diff(z) >= -1e-9).all() and z[-1] > z[0], z
    tol = 1e-6 * max(1.0, abs(z).max())
    assert (dual.objective.to_numpy() <= z + tol).all() and (z <= dual.bound.to_numpy() + tol).all()
    assert (dual.objective.to_numpy()[:-1] <= dual.bound.to_numpy()[1:] + tol).all()


@pytest.mark.parametrize("argv,needle", [
    (lambda w, p, t: ["report", str(p[0]), *problem_args(w), "--out", str(t / "r.txt")], "--out"),
    (lambda w, p, t: ["report", str(t / "nope.csv"), *problem_args(w), "--out", str(t / "r.html")], "PLAN_FILE"),
    (lambda w, p, t: ["report", str(p[0]), *problem_args(w, "5"), "--out", str(t / "r.html")], "not feasible"),
    (lambda w, p, t: ["explain", "nobody", *problem_args(w)], "unknown customer"),
    (lambda w, p, t: ["diff", str(p[1]), str(p[0]), "--scores", str(w / "scores.csv")], "--channels"),
    (lambda w, p, t: ["report", str(p[0]), *problem_args(w), "--frontier-points", "1", "--out", str(t / "r.html")],
     "--frontier-points"),
])
def test_bad_input_is_one_line_exit_2(week, plans, tmp_path, argv, needle, capsys):
    code = main(argv(week, plans, tmp_path))
    err = capsys.readouterr().err.strip()
    assert code == 2 and needle in err and len(err.splitlines()) == 1, err
    assert not list(tmp_path.iterdir())                     # nothing written


def test_write_report_api_without_frontier(tmp_path):
    from optimizer import solve
    from optimizer.report import write_report
    from tests.weekly_helpers import random_problem

    problem = random_problem(3, n=40)
    plan = solve(problem, method="dual")
    path = write_report(problem, plan, tmp_path / "r.html", frontier=False, price_checks=0, samples=1)
    page = ReportParser()
    page.feed(path.read_text(encoding="utf-8"))
    assert page.sections == list(CORE_SECTIONS)             # no segments, no frontier, no previous plan
    assert np.isfinite(plan.objective)
