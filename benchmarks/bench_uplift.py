"""Benchmark of the response / uplift models (issue 9); writes ``benchmarks/uplift.md``.

Sections (each prints a Markdown table):

1. ``solvers``   — L2 logistic regression on response-model designs (one-hot channel × state
   interactions): Newton with the numba kernel, Newton with the NumPy/BLAS twin, scipy L-BFGS-B;
   wall time (median of 3), iterations, final loss gap to the best, peak RSS;
2. ``recovery``  — coefficient recovery on the Customer 360 generator (correctly specified design,
   ``truth_contacts``): max |θ̂ − θ|, max |z|, Wald statistic (31 df) per size and seed;
3. ``hillstrom`` — the real-data demo for each plan objective (visit, conversion, spend);
4. ``offline``   — the offline-value experiment (Δℓ, ΔJ, latency, granularity).

Run: ``.venv/bin/python benchmarks/bench_uplift.py [--sections solvers,recovery,...] [--quick]``.
Timings are wall clock on a shared 2-core machine (other engineers' jobs running; load average
printed next to each table), so treat them as upper bounds.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from optimizer.io import write_text  # noqa: E402

OUT = ROOT / "benchmarks" / "uplift.md"


from optimizer.bench.report import text_table as table  # noqa: E402


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2 ** 20


def machine() -> str:
    import numba

    return (f"{platform.platform()}, Python {platform.python_version()}, {psutil.cpu_count()} cores, "
            f"numpy {np.__version__}, numba {numba.__version__}; shared machine (other jobs running)")


def solvers_section(quick: bool) -> str:
    from formulations.uplift import response_design
    from solvers.logistic import fit_logistic

    rows = []
    sizes = [(20_000, 6), (100_000, 6), (100_000, 13)] if not quick else [(20_000, 6)]
    fit_logistic(np.ones((10, 2)), np.r_[np.zeros(5), np.ones(5)], method="newton")      # compile / load cache
    for n, p in sizes:
        rng = np.random.default_rng(n + p)
        S = rng.normal(size=(n, p))
        a = rng.integers(0, 6, n)
        F = response_design(S, a, 5)
        theta = rng.normal(scale=0.3, size=F.shape[1])
        theta[0] = -2.0
        y = (rng.random(n) < 1 / (1 + np.exp(-F @ theta))).astype(float)
        fits = {}
        for method in ("newton", "newton-numpy", "lbfgs"):
            times = []
            for _ in range(3):
                fit = fit_logistic(F, y, 1.0, method=method)
                times.append(fit.seconds)
            fits[method] = (fit, float(np.median(times)))
        best = min(f.loss for f, _ in fits.values())
        for method, (fit, sec) in fits.items():
            rows.append([f"{n:,}", F.shape[1], method, f"{sec:.3f}", fit.n_iter, f"{fit.loss - best:.2e}",
                         f"{fit.grad_norm:.1e}", f"{rss_mb():.0f}"])
    return ("## 1. Logistic solvers (response-model designs, M = 5 channels, λ = 1)\n\n" + load() + "\n\n"
            + table(["rows", "coefficients", "method", "seconds (median of 3)", "iterations", "loss − best",
                     "max |gradient|", "RSS MB"], rows))


def recovery_section(quick: bool) -> str:
    from scipy import stats

    from formulations.c360 import CONTACT_CHANNELS
    from optimizer.c360 import generate_c360
    from optimizer.uplift import LogisticResponse
    from optimizer.uplift.c360_data import TRUTH_INTERACT, TRUTH_STATE, true_response_coefficients, truth_contacts

    rows = []
    truth = true_response_coefficients()
    runs = [(5_000, 1), (5_000, 2), (5_000, 3), (20_000, 1), (20_000, 2), (50_000, 1)] if not quick else [(5_000, 1)]
    sizes = [n for n, _ in runs]
    detail = None
    with tempfile.TemporaryDirectory() as tmp:
        for n, seed in runs:
            raw = Path(tmp) / f"raw{n}_{seed}"
            generate_c360(raw, n, 12, seed=seed)
            c = truth_contacts(raw)
            t0 = time.perf_counter()
            m = LogisticResponse(l2=1e-3, interact=list(TRUTH_INTERACT)).fit(
                c[list(TRUTH_STATE)], c["responded"], c["action"], n_channels=5, channel_names=CONTACT_CHANNELS)
            sec = time.perf_counter() - t0
            true = np.array([truth[k] for k in m.feature_names_])
            err = m.coef_ - true
            z = err / m.standard_errors_
            wald = float(err @ np.linalg.solve(m.covariance_, err))
            rows.append([f"{n:,}", seed, f"{len(c):,}", f"{np.abs(err).max():.3f}",
                         m.feature_names_[int(np.abs(err).argmax())], f"{np.abs(err[:11]).max():.3f}",
                         f"{np.abs(z).max():.2f}", f"{wald:.1f}", f"{stats.chi2.sf(wald, len(true)):.3f}",
                         f"{sec:.2f}"])
            if n == sizes[-1] and seed == 1:
                detail = [[k, f"{truth[k]:+.3f}", f"{v:+.3f}", f"{s:.3f}"]
                          for k, v, s in zip(m.feature_names_, m.coef_, m.standard_errors_)]
    text = ("## 2. Coefficient recovery on the Customer 360 generator\n\n" + load() + "\n\n"
            "Correctly specified design (`truth_contacts`: the generator's own state columns; 31 coefficients, "
            "λ = 1e-3). `max abs err (main)` is over the intercept, state main effects and channel main effects "
            "(first 11 coefficients).\n\n"
            + table(["customers", "seed", "contacts", "max abs err", "where", "max abs err (main)", "max |z|",
                     "Wald (31 df)", "p-value", "fit s"], rows))
    if detail:
        text += (f"\n\nCoefficients at {sizes[-1]:,} customers, seed 1:\n\n"
                 + table(["coefficient", "true", "fitted", "std. error"], detail))
    return text


def hillstrom_section(quick: bool) -> str:
    from optimizer.uplift.hillstrom import run_hillstrom, summary_lines

    parts = ["## 3. Hillstrom e-mail experiment (real data, held-out IPS)\n\n" + load()]
    for objective in (("visit", "conversion", "spend") if not quick else ("visit",)):
        r = run_hillstrom(objective=objective)
        m = r.meta
        parts.append(f"### Plan maximises predicted {objective} uplift\n\n"
                     f"{m['n_test']:,} held-out customers, capacity {m['capacity_share']:.0%} = {m['capacity']:,} "
                     f"e-mails; planned {m['emails_planned']:,} ({m['emails_by_arm']}), method {m['plan_method']}, "
                     f"status {m['plan_status']}, {m['seconds']:.0f} s. Value per customer "
                     f"(95% normal CI):\n\n" + r.markdown() + "\n\n" + "\n".join(f"- {s}" for s in summary_lines(r)))
        if objective == "visit":
            a = r.arm_uplift
            parts.append("Held-out uplift per arm and Qini of the model's ranking (95% bootstrap CI):\n\n" + table(
                ["arm", "outcome", "observed uplift", "mean predicted", "Qini", "CI"],
                [[x.arm, x.outcome, f"{x.observed_uplift:.4f}", f"{x.predicted_uplift:.4f}",
                  "" if np.isnan(x.qini) else f"{x.qini:.4f}",
                  "" if np.isnan(x.qini) else f"[{x.qini_low:.4f}, {x.qini_high:.4f}]"] for x in a.itertuples()]))
    return "\n\n".join(parts)


def offline_section(quick: bool) -> str:
    from optimizer.uplift.offline_value import run_offline_value

    n, seeds = (10_000, (0, 1)) if not quick else (2_000, (0,))
    r = run_offline_value(n, 12, seeds, progress=lambda msg: print("  " + msg, flush=True))

    def md(df):
        return table(list(df.columns), [[f"{x:.4f}" if isinstance(x, float) else x for x in row]
                                        for row in df.itertuples(index=False)])
    return (f"## 4. Value of offline data (generator with ground truth)\n\n{load()}\n\n"
            f"{n:,} customers x 12 weeks, seeds {list(seeds)}, V = 80, planner method dual, "
            f"{r.meta['seconds']:.0f} s.\n\n### Δℓ and ΔJ (daily features, L = 0)\n\n" + md(r.offline_table())
            + "\n\n### Latency (full model, daily features)\n\n" + md(r.latency_table())
            + "\n\n### Granularity (L = 0)\n\n" + md(r.granularity_table()))


SECTIONS = {"solvers": solvers_section, "recovery": recovery_section, "hillstrom": hillstrom_section,
            "offline": offline_section}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--append", action="store_true", help="Append the sections to an existing --out.")
    args = parser.parse_args()
    stamp = (f"Generated by `benchmarks/bench_uplift.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
             f"{machine()}.\n")
    if args.append and args.out.is_file():
        parts = [args.out.read_text().rstrip("\n") + "\n", stamp]
    else:
        parts = ["# Uplift / response models — measured\n", stamp]
    for name in args.sections.split(","):
        t0 = time.perf_counter()
        print(f"== {name}", flush=True)
        text = SECTIONS[name](args.quick)
        print(text, flush=True)
        parts.append(text + f"\n\n(section took {time.perf_counter() - t0:.0f} s wall)\n")
    write_text("\n".join(parts), args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
