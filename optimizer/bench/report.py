"""Benchmark reports: a Markdown table, Dolan–Moré performance profiles and scaling plots.

Performance profile (Dolan & Moré 2002): for method *m* and instance *p* let
:math:`t_{p,m}` be the median wall time of *m* on *p* when it solved *p*
(status ``optimal``: within the requested gap), :math:`\\infty` otherwise, and
:math:`r_{p,m} = t_{p,m} / \\min_{m'} t_{p,m'}`. The profile
:math:`\\rho_m(\\tau) = |\\{p : r_{p,m} \\le \\tau\\}| / |P|` is the share of
instances that *m* solves within a factor τ of the fastest method.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from formulations.errors import InputError
from optimizer.io import read_table, write_text, write_with

SOLVED = ("optimal",)


def load_results(path: str | Path) -> tuple[pd.DataFrame, dict]:
    df = read_table(path, "results")
    if "status" not in df.columns or "method" not in df.columns:
        raise InputError("results", f"{path} is not a contactplan bench result file (no status/method columns)")
    machine_file = Path(path).with_suffix(".machine.json")
    meta = json.loads(machine_file.read_text()) if machine_file.exists() else {}
    return df, meta


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (instance, method): medians over repeats and the first run's quality numbers."""
    def agg(g: pd.DataFrame) -> pd.Series:
        ok = g[g.status.isin(("optimal", "feasible", "time_limit", "iteration_limit"))]
        src = ok if len(ok) else g
        first = src.iloc[0]
        return pd.Series({
            "customers": int(first.customers), "status": ",".join(sorted(set(g.status.astype(str)))),
            "runs": len(g), "wall_time": src.wall_time.median(), "solve_time": src.solve_time.median(),
            "build_time": src.build_time.median(), "iterations": first.iterations, "objective": first.objective,
            "bound": first.bound, "gap": first.gap, "peak_rss_mb": src.peak_rss_mb.max(),
        })
    out = df.groupby(["instance", "method"], sort=False).apply(agg, include_groups=False).reset_index()
    return out.sort_values(["customers", "instance", "method"], kind="stable").reset_index(drop=True)


def _fmt(v, kind: str) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "—"
    if kind == "time":
        return f"{v:.3g}" if v < 100 else f"{v:.0f}"
    if kind == "gap":
        return f"{v:.1e}"
    if kind == "obj":
        return f"{v:,.2f}"
    if kind == "int":
        return f"{int(v):,}"
    if kind == "mb":
        return f"{v:,.0f}"
    return str(v)


def markdown_table(summary: pd.DataFrame) -> str:
    cols = [("instance", "instance", "str"), ("customers", "n", "int"), ("method", "method", "str"),
            ("status", "status", "str"), ("wall_time", "wall s", "time"), ("build_time", "build s", "time"),
            ("solve_time", "solve s", "time"), ("iterations", "iterations", "int"), ("objective", "objective", "obj"),
            ("bound", "bound", "obj"), ("gap", "gap", "gap"), ("peak_rss_mb", "peak RSS MB", "mb")]
    lines = ["| " + " | ".join(h for _, h, _ in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, row in summary.iterrows():
        lines.append("| " + " | ".join(_fmt(row[c], k) for c, _, k in cols) + " |")
    return "\n".join(lines)


def text_table(headers: list[str], rows: list[list]) -> str:
    """A Markdown table of already formatted cells (the bench scripts' tables)."""
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def machine_line(meta: dict) -> str:
    m = meta.get("machine", {})
    if not m:
        return "machine: unknown"
    v = m.get("versions", {})
    libs = ", ".join(f"{k} {val}" for k, val in v.items())
    load = m.get("load_average")
    busy = f" Load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min) when written." if load else ""
    return (f"Measured {m.get('date', '?')} on {m.get('cpu', '?')}, {m.get('cores', '?')} cores, "
            f"{m.get('memory_gb', '?')} GiB, Python {m.get('python', '?')} ({libs}).{busy}")


def performance_profile(df: pd.DataFrame, taus: np.ndarray | None = None) -> pd.DataFrame:
    """rho_m(tau) for every method (columns) at the given tau values (index)."""
    summary = summarize(df)
    times = summary.pivot(index="instance", columns="method", values="wall_time")
    solved = summary.assign(ok=summary.status.str.split(",").map(lambda s: set(s) <= set(SOLVED)))
    ok = solved.pivot(index="instance", columns="method", values="ok").fillna(False).astype(bool)
    t = times.where(ok, np.inf)
    best = t.min(axis=1)
    ratio = t.div(best.replace(np.inf, np.nan), axis=0).fillna(np.inf)
    if taus is None:
        finite = ratio.to_numpy()[np.isfinite(ratio.to_numpy())]
        top = max(2.0, float(finite.max()) * 1.05) if finite.size else 2.0
        taus = np.unique(np.r_[1.0, np.geomspace(1.0, top, 200), finite])
    prof = pd.DataFrame({m: [(ratio[m] <= tau).mean() for tau in taus] for m in ratio.columns}, index=taus)
    prof.index.name = "tau"
    return prof


def plot_profiles(df: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Performance profile and time-vs-n scaling plots, PNG and SVG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    prof = performance_profile(df)
    fig, ax = plt.subplots(figsize=(6, 4))
    for m in prof.columns:
        ax.step(prof.index, prof[m], where="post", label=m)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("τ (time relative to the fastest method)")
    ax.set_ylabel("share of instances solved within τ")
    ax.set_ylim(0, 1.02)
    ax.set_title("Performance profile (Dolan–Moré)")
    ax.legend()
    ax.grid(alpha=0.3)
    for ext in ("png", "svg"):
        written.append(write_with(lambda p, e=ext: fig.savefig(p, format=e, bbox_inches="tight"),
                                  out_dir / f"performance_profile.{ext}"))
    plt.close(fig)

    summary = summarize(df)
    fig, ax = plt.subplots(figsize=(6, 4))
    for m, g in summary.groupby("method"):
        g = g.groupby("customers").wall_time.median().sort_index()
        ax.plot(g.index, g.values, marker="o", label=m)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("customers")
    ax.set_ylabel("wall time (s)")
    ax.set_title("Time vs problem size")
    ax.legend()
    ax.grid(alpha=0.3, which="both")
    for ext in ("png", "svg"):
        written.append(write_with(lambda p, e=ext: fig.savefig(p, format=e, bbox_inches="tight"),
                                  out_dir / f"scaling.{ext}"))
    plt.close(fig)
    return written


def write_markdown_report(results: str | Path, out: str | Path, title: str = "Benchmark results") -> str:
    df, meta = load_results(results)
    text = f"# {title}\n\n{machine_line(meta)}\n\n"
    if meta:
        text += f"Time limit per run: {meta.get('time_limit')} s; requested relative gap: {meta.get('rel_gap')}; " \
                f"repeats: {meta.get('repeat')}. Times are medians over repeats; each run is a fresh process.\n\n"
    text += markdown_table(summarize(df)) + "\n"
    write_text(text, out)
    return text


README_START = "<!-- performance:start (generated by `contactplan bench report RESULTS --readme README.md`) -->"
README_END = "<!-- performance:end -->"


def readme_performance(results: str | Path) -> str:
    """The README's performance block: one line per (instance, method) of a committed result file."""
    df, meta = load_results(results)
    summary = summarize(df)
    rows = []
    for _, r in summary.iterrows():
        rows.append([r.instance, f"{int(r.customers):,}", r.method, r.status, _fmt(r.wall_time, "time"),
                     _fmt(r.solve_time, "time"), _fmt(r.gap, "gap"), _fmt(r.peak_rss_mb, "mb")])
    limits = ""
    if meta:
        limits = (f" Time limit {meta.get('time_limit')} s per run, requested gap {meta.get('rel_gap')}, "
                  f"{meta.get('repeat')} run(s) each, every run a fresh process.")
    rel = Path(results).as_posix()
    return (f"{README_START}\n{machine_line(meta)}{limits} Source: [`{rel}`]({rel}).\n\n"
            + text_table(["instance", "n", "method", "status", "wall s", "solve s", "gap", "peak RSS MB"], rows)
            + f"\n{README_END}")


def update_readme(results: str | Path, readme: str | Path) -> None:
    """Replace the generated performance block of ``readme`` (between the markers) atomically."""
    path = Path(readme)
    if not path.is_file():
        raise InputError("--readme", f"file {str(path)!r} does not exist")
    text = path.read_text()
    if README_START not in text or README_END not in text:
        raise InputError("--readme", f"{path} has no performance markers ({README_START!r} … {README_END!r})")
    head, rest = text.split(README_START, 1)
    tail = rest.split(README_END, 1)[1]
    write_text(head + readme_performance(results) + tail, path)
