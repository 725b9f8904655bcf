"""Benchmark of the evaluation toolkit; writes ``benchmarks/evaluation.md``.

Sections (each prints a Markdown table):

1. Monte Carlo over independent synthetic logs with a known true value:
   bias (in units of its Monte-Carlo error), standard deviation, RMSE and the
   coverage of the 95% normal interval of every estimator — Bernoulli rewards
   and continuous rewards (where a good reward model removes most noise);
2. speed of :func:`off_policy_value` (normal and Poisson-bootstrap intervals,
   numba kernel vs its NumPy twin) for n = 10^4 .. 10^6 rows;
3. delayed conversions: naive vs exponential-MLE vs Kaplan-Meier rates over
   simulated censored logs (bias, coverage);
4. decision-trace reading speed.

Run: ``.venv/bin/python benchmarks/bench_evaluation.py [--quick]``. Timings
are wall-clock medians on a shared 2-core machine (other engineers' jobs were
running), so treat them as upper bounds.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from optimizer.evaluation import (ExponentialDelayModel, KaplanMeierConversion, cross_fit_reward_table,  # noqa: E402
                                  expected_reward, off_policy_value, read_decision_traces,
                                  write_decision_traces)
from optimizer.evaluation._bootstrap_kernels import bootstrap_ratios_numpy  # noqa: E402
from optimizer.io import write_text  # noqa: E402

N_CONTEXTS, N_ACTIONS = 6, 4


from optimizer.bench.report import text_table as table  # noqa: E402


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2 ** 20


def machine() -> str:
    import numba

    return (f"{platform.platform()}, Python {platform.python_version()}, {psutil.cpu_count()} cores, "
            f"numpy {np.__version__}, numba {numba.__version__}; shared machine (other jobs running)")


# --------------------------------------------------------------------------- 1. Monte Carlo


def bandit():
    rng = np.random.default_rng(42)
    mu = rng.uniform(0.05, 0.6, (N_CONTEXTS, N_ACTIONS))
    z = rng.normal(0.0, 1.0, (N_CONTEXTS, N_ACTIONS))
    pi_log = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    pi_target = np.exp(6 * mu) / np.exp(6 * mu).sum(axis=1, keepdims=True)
    return mu, pi_log, pi_target, float((pi_target * mu).sum(axis=1).mean())


def monte_carlo(n_seeds: int, n: int, noise: float | None) -> tuple[float, list[list]]:
    mu, pi_log, pi_target, truth = bandit()
    names = ["ips", "ips clip 3", "snips", "dm", "dr", "switch-dr", "dr (wrong model)"]
    est = {k: [] for k in names}
    cover = {k: 0 for k in names}
    for seed in range(n_seeds):
        rng = np.random.default_rng(seed)
        x = rng.integers(0, N_CONTEXTS, n)
        a = (rng.random(n)[:, None] > np.cumsum(pi_log[x], axis=1)).sum(axis=1)
        r = (rng.random(n) < mu[x, a]).astype(float) if noise is None else mu[x, a] + rng.normal(0, noise, n)
        p, q = pi_log[x, a], pi_target[x, a]
        mu_hat = cross_fit_reward_table(x, a, r, N_CONTEXTS, N_ACTIONS, random_state=seed)
        m, d = mu_hat[np.arange(n), a], expected_reward(pi_target[x], mu_hat)
        runs = {"ips": off_policy_value(r, p, q, "ips"), "ips clip 3": off_policy_value(r, p, q, "ips", clip=3.0),
                "snips": off_policy_value(r, p, q, "snips"), "dm": off_policy_value(r, p, q, "dm", m, d),
                "dr": off_policy_value(r, p, q, "dr", m, d), "switch-dr": off_policy_value(r, p, q, "switch-dr", m, d),
                "dr (wrong model)": off_policy_value(r, p, q, "dr", np.full(n, 0.9), np.full(n, 0.9))}
        for k, res in runs.items():
            est[k].append(res.value)
            cover[k] += res.covers(truth)
    rows = []
    ips_var = np.var(est["ips"], ddof=1)
    for k in names:
        v = np.asarray(est[k])
        mc = v.std(ddof=1) / np.sqrt(v.size)
        rows.append([k, f"{v.mean():.5f}", f"{v.mean() - truth:+.5f}", f"{(v.mean() - truth) / mc:+.1f}",
                     f"{v.std(ddof=1):.5f}", f"{np.var(v, ddof=1) / ips_var:.2f}",
                     f"{np.sqrt(np.mean((v - truth) ** 2)):.5f}", f"{cover[k] / n_seeds:.3f}"])
    return truth, rows


# --------------------------------------------------------------------------- 2. speed


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def speed(sizes: list[int], n_bootstrap: int) -> list[list]:
    rows = []
    rng = np.random.default_rng(0)
    off_policy_value(np.ones(100), np.full(100, 0.5), np.full(100, 0.5), "ips", ci="bootstrap", n_bootstrap=20)
    for n in sizes:
        r = (rng.random(n) < 0.1).astype(float)
        p = rng.uniform(0.05, 1.0, n)
        q = rng.uniform(0.0, 1.0, n)
        m, d = np.full(n, 0.1), np.full(n, 0.1)
        base = rss_mb()
        t_norm = timed(lambda: off_policy_value(r, p, q, "dr", m, d), 5)
        t_boot = timed(lambda: off_policy_value(r, p, q, "dr", m, d, ci="bootstrap", n_bootstrap=n_bootstrap), 3)
        t_snips = timed(lambda: off_policy_value(r, p, q, "snips", ci="bootstrap", n_bootstrap=n_bootstrap), 3)
        if n <= 20_000:
            phi = d + q / p * (r - m)
            t_twin = timed(lambda: bootstrap_ratios_numpy(phi, np.ones(n), n_bootstrap, 0), 1)
            twin = f"{t_twin:.3f}"
        else:
            twin = "— (memory: B × n)"
        rows.append([f"{n:,}", f"{1e3 * t_norm:.2f}", f"{t_boot:.3f}", f"{t_snips:.3f}", twin,
                     f"{n * n_bootstrap / t_boot / 1e6:.0f}", f"{rss_mb() - base:+.0f}"])
    return rows


# --------------------------------------------------------------------------- 3. delayed conversions


def delayed(n_seeds: int, n: int) -> list[list]:
    rate, lam, window, horizon = 0.08, 0.25, 20.0, 15.0
    within = rate * (1 - np.exp(-lam * horizon))
    out = {"naive (converted so far / units)": [], "exponential MLE (eventual rate)": [],
           "exponential MLE, within 15 days": [], "Kaplan-Meier, within 15 days": []}
    cover = {k: 0 for k in out}
    times = {"exponential MLE (eventual rate)": [], "Kaplan-Meier, within 15 days": []}
    for seed in range(n_seeds):
        rng = np.random.default_rng(seed)
        e = rng.uniform(0.05, window, n)
        will = rng.random(n) < rate
        delay = rng.exponential(1 / lam, n)
        c = will & (delay <= e)
        d = np.where(c, delay, np.nan)
        t = time.perf_counter()
        expo = ExponentialDelayModel().fit(e, c, d)
        times["exponential MLE (eventual rate)"].append(time.perf_counter() - t)
        t = time.perf_counter()
        km = KaplanMeierConversion(horizon=horizon).fit(e, c, d)
        times["Kaplan-Meier, within 15 days"].append(time.perf_counter() - t)
        lo, hi = expo.conversion_rate_ci()[0]
        out["naive (converted so far / units)"].append(c.mean())
        out["exponential MLE (eventual rate)"].append(expo.conversion_rate_[0])
        cover["exponential MLE (eventual rate)"] += lo <= rate <= hi
        out["exponential MLE, within 15 days"].append(expo.rate_within(horizon)[0])
        cover["exponential MLE, within 15 days"] += (lo * (1 - np.exp(-expo.delay_rate_ * horizon)) <= within
                                                      <= hi * (1 - np.exp(-expo.delay_rate_ * horizon)))
        klo, khi = km.conversion_rate_ci()[0]
        out["Kaplan-Meier, within 15 days"].append(km.conversion_rate_[0])
        cover["Kaplan-Meier, within 15 days"] += klo <= within <= khi
    rows = []
    for k, v in out.items():
        v = np.asarray(v)
        truth = within if "15 days" in k else rate
        rows.append([k, f"{truth:.5f}", f"{v.mean():.5f}", f"{(v.mean() - truth) / truth:+.2%}",
                     f"{v.std(ddof=1):.5f}", "—" if k.startswith("naive") else f"{cover[k] / n_seeds:.3f}",
                     f"{1e3 * np.median(times[k]):.1f}" if k in times else "—"])
    return rows


# --------------------------------------------------------------------------- 4. traces


def traces_speed(n: int) -> list[list]:
    rng = np.random.default_rng(0)
    acts = rng.integers(0, 5, n)
    records = [{"decision_id": f"d{i}", "unit_id": f"c{i}", "timestamp": 1.7e9 + i, "action": int(acts[i]),
                "propensity": 0.2, "prices": [1.5, 0.2], "model_version": "v1", "arm": "treatment",
                "reason": "policy", "reward": int(rng.random() < 0.05)} for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.jsonl"
        t = time.perf_counter()
        write_decision_traces(records, path)
        t_write = time.perf_counter() - t
        size = path.stat().st_size
        t = time.perf_counter()
        traces = read_decision_traces(path)
        t_read = time.perf_counter() - t
    return [[f"{traces.n:,}", f"{size / 2 ** 20:.1f}", f"{t_write:.2f}", f"{t_read:.2f}",
             f"{traces.n / t_read:,.0f}"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer seeds and sizes (a smoke run)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "evaluation.md"))
    args = parser.parse_args()
    seeds, delay_seeds = (100, 40) if args.quick else (1000, 200)
    sizes = [10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000]
    sections = [f"# Evaluation toolkit benchmark\n\nMachine: {machine()}.\n"
                f"Run: `.venv/bin/python benchmarks/bench_evaluation.py{' --quick' if args.quick else ''}` "
                f"({time.strftime('%Y-%m-%d')}).\n"]

    headers = ["estimator", "mean", "bias", "bias / MC error", "sd", "var / var(IPS)", "RMSE", "95% CI coverage"]
    for noise, label in ((None, "Bernoulli rewards"), (0.05, "continuous rewards, noise sd 0.05")):
        t = time.perf_counter()
        truth, rows = monte_carlo(seeds, 2000, noise)
        text = (f"## 1. Synthetic logs with known truth: {label}\n\n{seeds} independent logs of 2,000 rows "
                f"(6 contexts, 4 actions, softmax logging policy, greedier target policy; max weight 5.4); "
                f"true value {truth:.5f}. Reward model: cross-fitted shrinkage table over (context, action); "
                f"'wrong model' predicts 0.9 everywhere. {time.perf_counter() - t:.0f} s.\n\n"
                + table(headers, rows) + "\n")
        print(text)
        sections.append(text)

    rows = speed(sizes, 1000)
    text = ("## 2. Speed of `off_policy_value` (DR; 1,000 Poisson-bootstrap replicates)\n\n"
            "Median wall time. 'kernel' is the numba Poisson-bootstrap kernel on 2 threads; 'twin' the plain "
            "NumPy twin the tests compare it with (it materialises B × n multiplicities).\n\n"
            + table(["rows", "normal CI (ms)", "bootstrap DR (s)", "bootstrap SNIPS (s)", "NumPy twin (s)",
                     "kernel draws / s (M)", "RSS change (MB)"], rows) + "\n")
    print(text)
    sections.append(text)

    rows = delayed(delay_seeds, 20_000)
    text = (f"## 3. Delayed conversions under censoring\n\n{delay_seeds} simulated logs of 20,000 exposures spread "
            "uniformly over the last 20 days; eventual conversion rate 8%, exponential delay with mean 4 days "
            "(λ = 0.25/day); a unit is seen converted only if its delay fits in its elapsed time.\n\n"
            + table(["estimate", "truth", "mean", "relative bias", "sd", "95% CI coverage", "fit time (ms)"], rows)
            + "\n")
    print(text)
    sections.append(text)

    rows = traces_speed(100_000 if not args.quick else 20_000)
    text = ("## 4. Decision traces (JSON lines, the decision policy's format)\n\n"
            + table(["decisions", "file (MB)", "write (s)", "read + validate (s)", "decisions / s read"], rows)
            + "\n")
    print(text)
    sections.append(text)
    sections.append(f"Peak RSS of the benchmark process: {psutil.Process().memory_info().rss / 2 ** 20:.0f} MB "
                    "(current at the end; the bootstrap kernel allocates only its B outputs).\n")
    write_text("\n".join(sections), args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
