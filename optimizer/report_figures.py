"""Figures of the planner report, rendered by matplotlib as self-contained SVG data URIs.

Each function returns ``data:image/svg+xml;base64,...`` for an ``<img>`` tag:
the SVG has its text as paths (no fonts needed), no external references, and
a fixed hash salt and no date, so the same plan gives the same bytes.
"""

from __future__ import annotations

import base64
import io
from typing import Sequence

import numpy as np
import pandas as pd

_RC = {"svg.fonttype": "path", "svg.hashsalt": "contactplan-report", "font.size": 9, "axes.titlesize": 10}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _uri(fig) -> str:
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    plt.close(fig)
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _heatmap(values: np.ndarray, text: list[list[str]], closed: np.ndarray, rows: Sequence[str],
             cols: Sequence[str], title: str, cbar: str, cmap: str) -> str:
    plt = _plt()
    with plt.rc_context(_RC):
        M, T = values.shape
        fig, ax = plt.subplots(figsize=(1.6 + 0.85 * T, 1.1 + 0.45 * M), layout="constrained")
        shown = np.ma.masked_array(values, mask=closed | ~np.isfinite(values))
        cm = plt.get_cmap(cmap).with_extremes(bad="#d9d9d9")
        vmax = float(np.nanmax(np.where(closed, np.nan, values))) if np.any(~closed & np.isfinite(values)) else 1.0
        im = ax.imshow(shown, cmap=cm, aspect="auto", vmin=0.0, vmax=max(vmax, 1e-12))
        for m in range(M):
            for t in range(T):
                v = values[m, t]
                dark = np.isfinite(v) and not closed[m, t] and v > 0.6 * vmax
                ax.text(t, m, text[m][t], ha="center", va="center", fontsize=7, color="white" if dark else "black")
        ax.set_xticks(range(T), [str(c) for c in cols])
        ax.set_yticks(range(M), [str(r) for r in rows])
        ax.set_title(title)
        fig.colorbar(im, ax=ax, label=cbar, fraction=0.04, pad=0.02)
        return _uri(fig)


def utilization_figure(channels: Sequence[str], days: Sequence[str], used: np.ndarray, capacity: np.ndarray) -> str:
    """Heatmap of used / capacity per channel-day, annotated ``used/capacity`` (closed cells grey)."""
    closed = capacity < 1
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(closed, np.nan, used / np.where(closed, 1, capacity))
    text = [[("closed" if closed[m, t] else f"{int(used[m, t])}/{capacity[m, t]:.0f}") for t in range(used.shape[1])]
            for m in range(used.shape[0])]
    return _heatmap(share, text, closed, channels, days, "Utilization: used / capacity", "share of capacity used",
                    "Blues")


def price_figure(channels: Sequence[str], days: Sequence[str], price: np.ndarray, capacity: np.ndarray) -> str:
    """Heatmap of capacity shadow prices (value of one more slot)."""
    closed = capacity < 1
    text = [[("closed" if closed[m, t] else f"{price[m, t]:.3g}") for t in range(price.shape[1])]
            for m in range(price.shape[0])]
    return _heatmap(price, text, closed, channels, days, "Shadow price of one more slot", "utility per slot",
                    "Oranges")


def utility_figure(planned: np.ndarray, unplanned: np.ndarray, best_contacted: np.ndarray,
                   best_not_contacted: np.ndarray) -> str:
    """Two histograms: per contact (planned vs allowed-but-unplanned) and per customer (best option)."""
    plt = _plt()
    from matplotlib import ticker

    with plt.rc_context(_RC):
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), layout="constrained")
        for ax, (a, b, la, lb, title) in zip(axes, [
                (planned, unplanned, "planned contacts", "allowed, not planned", "Utility per option"),
                (best_contacted, best_not_contacted, "contacted customers", "not contacted",
                 "Best option utility per customer")]):
            both = np.concatenate([a, b]) if a.size + b.size else np.zeros(1)
            lo, hi = np.percentile(both, [0.5, 99.5]) if both.size > 1 else (0.0, 1.0)
            if hi <= lo:
                hi = lo + 1.0
            bins = np.linspace(lo, hi, 41)
            # one step artist per group (pre-binned): cheap to draw and to write as SVG at any n
            for values, label, color, alpha in ((b, lb, "#9e9e9e", 0.55), (a, la, "#1f77b4", 0.75)):
                counts, _ = np.histogram(np.clip(values, lo, hi), bins=bins)
                ax.stairs(counts, bins, fill=True, alpha=alpha, color=color, label=f"{label} ({values.size:,})",
                          baseline=0.5)
            ax.set_yscale("log")
            ax.set_ylim(bottom=0.5)
            # plain tick labels: the default 10^k labels go through mathtext, the slowest part of the figure
            ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else ""))
            ax.yaxis.set_minor_formatter(ticker.NullFormatter())
            ax.set_xlabel("utility")
            ax.set_ylabel("count (log)")
            ax.set_title(title)
            ax.legend(fontsize=7)
            ax.grid(alpha=0.3)
        return _uri(fig)


def contacts_figure(counts: np.ndarray) -> str:
    """Bar chart: number of customers with 0, 1, 2, ... contacts."""
    plt = _plt()
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(5, 3), layout="constrained")
        k = np.arange(counts.size)
        ax.bar(k, counts, color="#1f77b4")
        for x, c in zip(k, counts):
            ax.annotate(f"{int(c):,}", (x, c), ha="center", va="bottom", fontsize=7)
        ax.set_xticks(k)
        ax.set_xlabel("contacts in the plan")
        ax.set_ylabel("customers")
        ax.set_title("Contacts per customer")
        ax.grid(axis="y", alpha=0.3)
        return _uri(fig)


def fairness_figure(table: pd.DataFrame) -> str:
    """Contact rate per segment (bars) against its target (markers), one panel per channel group."""
    plt = _plt()
    with plt.rc_context(_RC):
        groups = list(dict.fromkeys(table["channels"]))
        fig, axes = plt.subplots(1, len(groups), figsize=(min(5.5 * len(groups), 16), 3.6), squeeze=False,
                                 layout="constrained")
        for ax, g in zip(axes[0], groups):
            sub = table[table["channels"] == g]
            x = np.arange(len(sub))
            ax.bar(x, sub["rate"], color="#2ca02c", label="rate")
            ax.scatter(x, sub["target"], marker="_", s=300, color="black", label="target", zorder=3)
            ax.set_xticks(x, [str(s) for s in sub["segment"]], rotation=30, ha="right")
            ax.set_ylabel("contacts per customer")
            ax.set_title(f"Segment contact rates: {g}")
            ax.grid(axis="y", alpha=0.3)
            ax.legend(fontsize=7)
        return _uri(fig)


def frontier_figure(df: pd.DataFrame, x: str, xlabel: str, title: str, current: float | None) -> str:
    """Objective (best plan known) and bound against ``x``; the current setting marked."""
    plt = _plt()
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(6, 3.6), layout="constrained")
        ax.fill_between(df[x], df["best_objective"], df["best_bound"], color="#1f77b4", alpha=0.15,
                        label="certified interval (plan .. bound)")
        ax.plot(df[x], df["best_objective"], marker="o", color="#1f77b4", label="objective (best plan)")
        ax.plot(df[x], df["best_bound"], ls="--", color="#ff7f0e", label="bound")
        if current is not None:
            ax.axvline(current, color="black", lw=0.8, ls=":", label="this plan")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("objective")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        return _uri(fig)
