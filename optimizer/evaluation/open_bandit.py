"""Real-data check of the estimators on the Open Bandit Dataset sample.

Data (``data/open_bandit/``): two logging policies ran on the same traffic of a
fashion site's 3-slot recommendation widget (80 items): uniform random
(``pi_rand(a | pos) = 1/80``) and Bernoulli Thompson Sampling (BTS, context
free; the logged ``propensity_score`` is ``pi_bts(a | pos)`` at that time).
Each row is one impression ``(item a, position pos, click r)``; a policy's
value is its click rate per impression, and each log's own mean click rate is
its *on-policy* value ``V``.

Protocol (Saito et al. 2021, "relative estimation error")
---------------------------------------------------------
Estimate one policy's value from the *other* policy's log and compare with its
on-policy value, ``relative error = V_hat / V - 1``. Directions:

1. **BTS from the random log** — ``w = pi_bts(a | pos) / (1/80)``. The target
   probabilities are the BTS policy's distribution over (item, position):
   ``pi_bts(a, pos) = P(a is ranked pos-th)`` when ``theta_a ~ Beta(alpha_a, beta_a)``
   and items are ranked by ``theta``, computed by Monte Carlo (``n_sim`` draws)
   from the production prior that ships with the Open Bandit Pipeline
   (``bts_prior.json``; the OBP protocol). A sensitivity row uses instead the
   BTS log's own (item, position) frequencies, an unbiased estimate of the
   week-averaged BTS policy (BTS updated its posterior during the week, so its
   logged propensities vary).
2. **Random from the BTS log** — ``w = (1/80) / propensity_score``, exact
   propensities on both sides.

The reward model for DM/DR/switch-DR is the cross-fitted shrinkage table
``mu(pos, item)`` of :mod:`optimizer.evaluation.reward_model`, fitted on the
evaluation log only. Estimator intervals are Poisson-bootstrap percentile
intervals of :func:`off_policy_value`. The interval of the relative error is a
joint bootstrap: each replicate resamples both logs independently (and, for
the frequency variant, re-estimates the target probabilities from the
resampled BTS log), so it carries the noise of the estimate, of the "truth"
and of the target policy. With about 40 clicks per log these intervals are
wide; that is the honest answer on a 10,000-row sample.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from formulations.errors import InputError
from optimizer.evaluation._bootstrap_kernels import poisson_multiplicities_numpy
from optimizer.evaluation.off_policy import METHODS, off_policy_value
from optimizer.evaluation.reward_model import cross_fit_tables

N_ITEMS = 80
LEN_LIST = 3
POLICIES = ("random", "bts")


@dataclass(frozen=True)
class BanditLog:
    """One logging policy's impressions (positions 0-based)."""

    policy: str
    item: np.ndarray
    position: np.ndarray
    click: np.ndarray
    propensity: np.ndarray

    @property
    def n(self) -> int:
        return int(self.item.shape[0])

    @property
    def click_rate(self) -> float:
        return float(self.click.mean())


def open_bandit_dir() -> Path:
    from optimizer.io import project_data_dir

    return project_data_dir() / "open_bandit"


def load_open_bandit(data_dir: str | Path | None = None) -> dict[str, BanditLog]:
    """Read ``random/all.csv`` and ``bts/all.csv`` (only the columns the estimators use)."""
    root = Path(data_dir) if data_dir is not None else open_bandit_dir()
    logs = {}
    for policy in POLICIES:
        path = root / policy / "all.csv"
        if not path.is_file():
            raise InputError("--data", f"file {str(path)!r} does not exist (expected the Open Bandit sample)")
        df = pd.read_csv(path, usecols=["item_id", "position", "click", "propensity_score"])
        item = df["item_id"].to_numpy(np.int64)
        pos = df["position"].to_numpy(np.int64) - 1
        if item.min() < 0 or item.max() >= N_ITEMS or pos.min() < 0 or pos.max() >= LEN_LIST:
            raise InputError("--data", f"{str(path)!r}: item_id must be in 0..79 and position in 1..3")
        logs[policy] = BanditLog(policy, item, pos, df["click"].to_numpy(np.float64),
                                 df["propensity_score"].to_numpy(np.float64))
    return logs


def load_bts_prior(data_dir: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The production BTS prior ``(alpha, beta)`` for the 80 items."""
    root = Path(data_dir) if data_dir is not None else open_bandit_dir()
    path = root / "bts_prior.json"
    if not path.is_file():
        raise InputError("--data", f"file {str(path)!r} does not exist")
    obj = json.loads(path.read_text())
    return np.asarray(obj["alpha"], dtype=np.float64), np.asarray(obj["beta"], dtype=np.float64)


def bts_action_distribution(alpha: np.ndarray, beta: np.ndarray, len_list: int = LEN_LIST, n_sim: int = 100_000,
                            random_state: int = 12345, chunk: int = 10_000) -> np.ndarray:
    """``P(item a is ranked at position k)`` under Thompson sampling from ``Beta(alpha, beta)``, by Monte Carlo.

    Returns an (n_items, len_list) array whose columns sum to 1.
    """
    rng = np.random.default_rng(random_state)
    counts = np.zeros((alpha.shape[0], len_list))
    done = 0
    while done < n_sim:
        m = min(chunk, n_sim - done)
        theta = rng.beta(alpha, beta, size=(m, alpha.shape[0]))
        top = np.argsort(-theta, axis=1)[:, :len_list]
        for k in range(len_list):
            counts[:, k] += np.bincount(top[:, k], minlength=alpha.shape[0])
        done += m
    return counts / n_sim


def action_frequencies(log: BanditLog, weights: np.ndarray | None = None) -> np.ndarray:
    """(n_items, len_list) share of impressions of each item at each position (optionally weighted)."""
    w = np.ones(log.n) if weights is None else weights
    flat = np.bincount(log.position * N_ITEMS + log.item, weights=w, minlength=LEN_LIST * N_ITEMS)
    table = flat.reshape(LEN_LIST, N_ITEMS)
    totals = table.sum(axis=1, keepdims=True)
    return (table / np.where(totals > 0, totals, 1.0)).T


@dataclass(frozen=True)
class _Direction:
    label: str
    target_policy: str
    logs_of: str
    target_spec: str
    estimate_from_truth_log: bool  # target probabilities re-estimated from the truth log in the bootstrap


@dataclass(frozen=True)
class _RewardModel:
    """Cross-fitted tables ``tables[fold, pos, item]`` and the fold of each evaluation row."""

    tables: np.ndarray
    folds: np.ndarray
    prior_strength: float
    random_state: int


def _fit_reward_model(log: BanditLog, random_state: int, prior_strength=None, sample_weight=None) -> _RewardModel:
    tables, folds, m = cross_fit_tables(log.position, log.item, log.click, LEN_LIST, N_ITEMS,
                                        prior_strength=prior_strength, random_state=random_state,
                                        sample_weight=sample_weight)
    return _RewardModel(tables, folds, m, random_state)


def _columns(log: BanditLog, pi_target: np.ndarray, model: _RewardModel):
    """Per-row ``q = pi_e(a|pos)``, ``m = mu(pos, a)`` and ``d = sum_a pi_e(a|pos) mu(pos, a)`` (out of fold)."""
    q = pi_target[log.item, log.position]
    m = model.tables[model.folds, log.position, log.item]
    by_fold = np.einsum("kpa,ap->kp", model.tables, pi_target)
    d = by_fold[model.folds, log.position]
    return q, m, d


def _pseudo_outcomes(log: BanditLog, q: np.ndarray, m: np.ndarray, d: np.ndarray, method: str,
                     tau: float | None) -> tuple[np.ndarray, np.ndarray]:
    """(numerator, denominator) per row of one estimator (its value is sum num / sum den)."""
    w = q / log.propensity
    one = np.ones(log.n)
    if method == "ips":
        return w * log.click, one
    if method == "snips":
        return w * log.click, w
    if method == "dm":
        return d, one
    if method == "dr":
        return d + w * (log.click - m), one
    return d + np.where(w <= tau, w * (log.click - m), 0.0), one


def evaluate_open_bandit(data_dir: str | Path | None = None, *, alpha: float = 0.05, n_bootstrap: int = 1000,
                         n_sim: int = 100_000, random_state: int = 0, progress=None) -> pd.DataFrame:
    """The relative-estimation-error table: one row per (direction, target probabilities, estimator).

    Columns: ``direction, target, logs, estimator, estimate, ci_low, ci_high, truth, truth_ci_low,
    truth_ci_high, rel_error, rel_ci_low, rel_ci_high, truth_in_ci, ess, n_logs, n_clicks, mean_weight``.
    """
    logs = load_open_bandit(data_dir)
    a_prior, b_prior = load_bts_prior(data_dir)
    pi_prior = bts_action_distribution(a_prior, b_prior, n_sim=n_sim)
    uniform = np.full((N_ITEMS, LEN_LIST), 1.0 / N_ITEMS)
    directions = [
        (_Direction("BTS from random log", "bts", "random", "production prior (OBP protocol)", False), pi_prior),
        (_Direction("BTS from random log", "bts", "random", "BTS log frequencies (sensitivity)", True),
         action_frequencies(logs["bts"])),
        (_Direction("random from BTS log", "random", "bts", "uniform 1/80 (exact)", False), uniform),
    ]
    rows = []
    for k, (direc, pi_target) in enumerate(directions):
        ev, truth_log = logs[direc.logs_of], logs[direc.target_policy]
        model = _fit_reward_model(ev, random_state)
        q, m, d = _columns(ev, pi_target, model)
        results = {method: off_policy_value(ev.click, ev.propensity, q, method, m, d, alpha)
                   for method in METHODS}
        truth = float(truth_log.click.mean())
        reps, truth_reps = _joint_bootstrap(direc, ev, truth_log, pi_target, model, results, n_bootstrap,
                                            seed=random_state + 100 * (k + 1))
        t_lo, t_hi = np.quantile(truth_reps, [alpha / 2, 1 - alpha / 2])
        for method, res in results.items():
            lo, hi = np.nanquantile(reps[method], [alpha / 2, 1 - alpha / 2])
            rel = reps[method] / truth_reps - 1.0
            r_lo, r_hi = np.nanquantile(rel, [alpha / 2, 1 - alpha / 2])
            rows.append({"direction": direc.label, "target": direc.target_spec, "logs": direc.logs_of,
                         "estimator": method, "estimate": res.value, "ci_low": float(lo), "ci_high": float(hi),
                         "truth": truth, "truth_ci_low": float(t_lo), "truth_ci_high": float(t_hi),
                         "rel_error": res.value / truth - 1.0, "rel_ci_low": float(r_lo),
                         "rel_ci_high": float(r_hi), "truth_in_ci": bool(lo <= truth <= hi), "ess": res.ess,
                         "n_logs": ev.n, "n_clicks": int(ev.click.sum()), "mean_weight": res.mean_weight,
                         "threshold": res.threshold})
        if progress is not None:
            progress(k + 1, len(directions))
    return pd.DataFrame(rows)


def _joint_bootstrap(direc: _Direction, ev: BanditLog, truth_log: BanditLog, pi_target: np.ndarray,
                     model: _RewardModel, results: dict, n_bootstrap: int, seed: int,
                     chunk: int = 100) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Bootstrap replicates of every estimate and of the truth.

    Each replicate resamples both logs (Poisson multiplicities, independent
    seeds), refits the reward model on the resampled evaluation log (same folds
    and prior strength) and, for the frequency variant, re-estimates the target
    probabilities from the resampled BTS log. The switch threshold stays fixed.
    """
    est = {method: np.empty(n_bootstrap) for method in results}
    truth = np.empty(n_bootstrap)
    for start in range(0, n_bootstrap, chunk):
        size = min(chunk, n_bootstrap - start)
        k_ev = poisson_multiplicities_numpy(ev.n, size, seed, first=start).astype(np.float64)
        k_tr = poisson_multiplicities_numpy(truth_log.n, size, seed + 1, first=start).astype(np.float64)
        truth[start:start + size] = (k_tr * truth_log.click).sum(axis=1) / k_tr.sum(axis=1)
        for b in range(size):
            pi_b = action_frequencies(truth_log, k_tr[b]) if direc.estimate_from_truth_log else pi_target
            model_b = _fit_reward_model(ev, model.random_state, model.prior_strength, k_ev[b])
            q, m, d = _columns(ev, pi_b, model_b)
            for method in results:
                num, den = _pseudo_outcomes(ev, q, m, d, method, results[method].threshold)
                bottom = (k_ev[b] * den).sum()
                est[method][start + b] = (k_ev[b] * num).sum() / bottom if bottom > 0 else np.nan
    return est, truth


def markdown_table(table: pd.DataFrame, meta: dict) -> str:
    """The table and its context as Markdown (for ``benchmarks/open_bandit.md``)."""
    lines = [
        "# Open Bandit Dataset: off-policy estimates vs on-policy truth",
        "",
        "Produced by `contactplan evaluate --open-bandit` "
        f"({meta['date']}, {meta['seconds']:.1f} s on a shared 2-core machine).",
        "",
        f"Data: `data/open_bandit/` (Open Bandit Dataset sample, ZOZO, CC BY 4.0): random log "
        f"{meta['n_random']:,} impressions / {meta['clicks_random']} clicks, BTS log {meta['n_bts']:,} impressions "
        f"/ {meta['clicks_bts']} clicks. Intervals: {100 * (1 - meta['alpha']):.0f}% Poisson-bootstrap percentile, "
        f"{meta['n_bootstrap']} replicates; BTS target probabilities by Monte Carlo with {meta['n_sim']:,} draws; "
        f"seed {meta['random_state']}.",
        "",
        "`estimate [CI]` is the off-policy estimate of the target policy's click rate (in %) from the other "
        "policy's log; its interval comes from a bootstrap that also refits the reward model (DM, DR, switch-DR) "
        "and, for the frequency variant, re-estimates the target probabilities in every replicate. `truth [CI]` "
        "is the target policy's observed on-policy click rate; `rel. error` is estimate / truth − 1 with a "
        "joint-bootstrap CI (both logs resampled independently). `truth in CI`: the on-policy rate lies inside "
        "the estimate's interval. `ESS` is the Kish effective sample size of the importance weights "
        "(10,000 rows per log). Explained in `docs/evaluation.md`.",
        "",
        "| direction | target probabilities | estimator | estimate [CI] | truth [CI] | rel. error [CI] "
        "| truth in CI | ESS |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in table.itertuples():
        lines.append(
            f"| {r.direction} | {r.target} | {r.estimator} | {100 * r.estimate:.3f}% "
            f"[{100 * r.ci_low:.3f}, {100 * r.ci_high:.3f}] | {100 * r.truth:.3f}% "
            f"[{100 * r.truth_ci_low:.3f}, {100 * r.truth_ci_high:.3f}] | {100 * r.rel_error:+.1f}% "
            f"[{100 * r.rel_ci_low:+.1f}, {100 * r.rel_ci_high:+.1f}] | {'yes' if r.truth_in_ci else 'no'} "
            f"| {r.ess:,.0f} |")
    lines.append("")
    return "\n".join(lines)


def run_open_bandit(data_dir=None, *, alpha=0.05, n_bootstrap=1000, n_sim=100_000, random_state=0, progress=None):
    """Evaluate and return ``(table, meta)`` with timing and data counts for the report."""
    start = time.perf_counter()
    table = evaluate_open_bandit(data_dir, alpha=alpha, n_bootstrap=n_bootstrap, n_sim=n_sim,
                                 random_state=random_state, progress=progress)
    logs = load_open_bandit(data_dir)
    meta = {"date": time.strftime("%Y-%m-%d"), "seconds": time.perf_counter() - start, "alpha": alpha,
            "n_bootstrap": n_bootstrap, "n_sim": n_sim, "random_state": random_state,
            "n_random": logs["random"].n, "clicks_random": int(logs["random"].click.sum()),
            "n_bts": logs["bts"].n, "clicks_bts": int(logs["bts"].click.sum())}
    return table, meta
