r"""Real-data demo: targeting the Hillstrom e-mail experiment under an e-mail capacity.

Data: ``data/hillstrom/hillstrom.csv`` (64,000 customers, randomised one third each to
``No E-Mail`` (code 0), ``Mens E-Mail`` (1), ``Womens E-Mail`` (2); outcomes ``visit``,
``conversion``, ``spend`` over two weeks; provenance in ``data/hillstrom/README.md``).

Procedure (:func:`run_hillstrom`)

1. Split the customers at random into a training and a held-out half, stratified by arm.
2. On the training half fit one :class:`~optimizer.uplift.TLearner` per outcome (logistic for
   visit / conversion, ridge for spend) on the features ``recency``, ``log1p(history)``,
   ``mens``, ``womens``, ``newbie``, ``zip_code`` and ``channel`` (one-hot), giving the uplift
   :math:`\hat\tau_{im}` of each e-mail *m* for every held-out customer.
3. Plan with the planner: utilities :math:`u_{im1} = \hat\tau_{im}` of the chosen ``objective``
   outcome (:func:`~optimizer.uplift.utilities_from_models`, e-mail cost 0), one day, at most one
   e-mail per customer, and an e-mail capacity :math:`\lfloor \kappa n \rfloor` (``capacity_share``
   :math:`\kappa`, default 30%) written as a budget with unit cost per e-mail (both e-mails share
   it). Only customers with positive predicted uplift are e-mailed, so the plan may use less
   than the capacity.
4. Value every targeting policy :math:`\pi` on the held-out half by inverse propensity weighting
   with the known propensity 1/3 (:func:`optimizer.evaluation.off_policy_value`, method ``ips``,
   normal interval):

   .. math:: \hat V(\pi) = \frac1n \sum_i 3\, y_i\, \pi(a_i \mid x_i),

   for each outcome *y*. Policies: the plan; *random* — the same number of e-mails of each kind
   as the plan, sent to customers drawn at random (:math:`\pi(m \mid x) = k_m / n`); *best arm,
   random* — the arm with the larger average training uplift sent to a random
   :math:`\kappa` share; *best arm, everyone* and *no e-mail* as references. The difference
   plan − random is estimated row by row, :math:`\frac1n\sum_i 3 y_i (\pi_{plan} - \pi_{rand})(a_i \mid x_i)`,
   with a normal interval from the standard deviation of those terms; and, as a lower-variance
   check, doubly robust with the T-learners' outcome predictions as reward model
   (:func:`dr_difference`, still unbiased because the propensities are known).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from formulations.errors import InputError

ARMS = ("No E-Mail", "Mens E-Mail", "Womens E-Mail")
OUTCOMES = ("visit", "conversion", "spend")
FEATURES = ("recency", "log_history", "mens", "womens", "newbie", "zip_code", "channel")
COLUMNS = ("recency", "history", "mens", "womens", "zip_code", "newbie", "channel", "segment", "visit",
           "conversion", "spend")
PROPENSITY = 1.0 / 3.0


def default_path() -> Path:
    from optimizer.io import project_data_dir

    return project_data_dir() / "hillstrom" / "hillstrom.csv"


def load_hillstrom(path: str | Path | None = None) -> pd.DataFrame:
    """Read the CSV, check its columns and arms; adds ``arm`` (0, 1, 2) and ``log_history``."""
    p = default_path() if path is None else Path(path)
    if not p.is_file():
        raise InputError("--data", f"Hillstrom file {str(p)!r} not found")
    df = pd.read_csv(p)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise InputError(str(p.name), f"missing column {missing[0]!r} (expected {', '.join(COLUMNS)})")
    arm = pd.Index(ARMS).get_indexer(df["segment"])
    if (arm < 0).any():
        i = int(np.flatnonzero(arm < 0)[0])
        raise InputError("segment", f"unknown arm {df['segment'].iloc[i]!r} at row {i} (expected {', '.join(ARMS)})")
    for c in ("recency", "history", "spend"):
        bad = ~np.isfinite(pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=np.float64))
        if bad.any():
            raise InputError(c, f"expected numbers, got {df[c].iloc[int(np.flatnonzero(bad)[0])]!r} "
                                f"at row {int(np.flatnonzero(bad)[0])}")
    return df.assign(arm=arm, log_history=np.log1p(df["history"].to_numpy(dtype=np.float64)))


def stratified_split(arm: np.ndarray, test_share: float, random_state: int) -> np.ndarray:
    """Boolean mask of the held-out rows: ``round(test_share * n_arm)`` random rows of every arm."""
    if not 0.0 < test_share < 1.0:
        raise InputError("test_share", f"expected a share in (0, 1), got {test_share!r}")
    rng = np.random.default_rng(random_state)
    test = np.zeros(arm.size, dtype=bool)
    for code in np.unique(arm):
        rows = np.flatnonzero(arm == code)
        test[rng.choice(rows, int(round(test_share * rows.size)), replace=False)] = True
    return test


@dataclass
class HillstromResult:
    """Output of :func:`run_hillstrom`.

    Attributes
    ----------
    values : DataFrame
        One row per (policy, outcome): ``policy, outcome, emails, value, ci_low, ci_high``
        (``emails`` = share of held-out customers e-mailed).
    arm_uplift : DataFrame
        Per arm and outcome on the held-out half: observed uplift (treated − control mean) and,
        for visit / conversion, the Qini coefficient of the model's ranking with its bootstrap interval.
    meta : dict
        Sizes, capacity, objective, best arm, plan status, seconds.
    """

    values: pd.DataFrame
    arm_uplift: pd.DataFrame
    meta: dict = field(default_factory=dict)

    def wide(self) -> pd.DataFrame:
        """Policies × outcomes with ``value [low, high]`` strings (the printed table)."""
        v = self.values
        cells = v.assign(cell=[f"{x:.4f} [{lo:.4f}, {hi:.4f}]" if o != "spend" else f"{x:.3f} [{lo:.3f}, {hi:.3f}]"
                               for x, lo, hi, o in zip(v["value"], v["ci_low"], v["ci_high"], v["outcome"])])
        table = cells.pivot(index="policy", columns="outcome", values="cell").reindex(
            columns=list(OUTCOMES)).reindex(list(dict.fromkeys(v["policy"])))
        emails = v.drop_duplicates("policy").set_index("policy")["emails"]
        table.insert(0, "e-mailed", [("" if np.isnan(emails[p]) else f"{emails[p]:.1%}") for p in table.index])
        return table.reset_index()

    def markdown(self) -> str:
        t = self.wide()
        lines = ["| " + " | ".join(t.columns) + " |", "|" + "---|" * len(t.columns)]
        lines += ["| " + " | ".join(str(x) for x in row) + " |" for row in t.itertuples(index=False)]
        return "\n".join(lines)


def _ips(y: np.ndarray, target: np.ndarray, alpha: float) -> tuple[float, float, float]:
    from optimizer.evaluation import off_policy_value

    res = off_policy_value(y, np.full(y.size, PROPENSITY), target, method="ips", alpha=alpha)
    return res.value, res.ci[0], res.ci[1]


def _difference(y: np.ndarray, target_a: np.ndarray, target_b: np.ndarray, alpha: float) -> tuple[float, float, float]:
    from scipy import stats

    phi = y * (target_a - target_b) / PROPENSITY
    se = float(phi.std(ddof=1) / np.sqrt(phi.size))
    z = float(stats.norm.ppf(1 - alpha / 2))
    m = float(phi.mean())
    return m, m - z * se, m + z * se


def dr_difference(y: np.ndarray, arm: np.ndarray, policy_a: np.ndarray, policy_b: np.ndarray, mu: np.ndarray,
                  alpha: float) -> tuple[float, float, float]:
    """Doubly robust estimate of :math:`V(\\pi_a) - V(\\pi_b)` with a normal interval.

    ``policy_a`` / ``policy_b``: (n, K) action probabilities per held-out row; ``mu``: (n, K) outcome
    model (fitted on other rows). Per row
    :math:`\\sum_a (\\pi_a - \\pi_b)(a \\mid x_i)\\hat\\mu(x_i, a) + 3 (\\pi_a - \\pi_b)(a_i \\mid x_i)(y_i - \\hat\\mu(x_i, a_i))`;
    unbiased for any :math:`\\hat\\mu` because the propensity 1/3 is known, and equal to the IPS
    difference when :math:`\\hat\\mu = 0`.
    """
    from scipy import stats

    rows = np.arange(y.size)
    diff = policy_a - policy_b
    phi = (diff * mu).sum(axis=1) + diff[rows, arm] * (y - mu[rows, arm]) / PROPENSITY
    se = float(phi.std(ddof=1) / np.sqrt(phi.size))
    z = float(stats.norm.ppf(1 - alpha / 2))
    m = float(phi.mean())
    return m, m - z * se, m + z * se


def run_hillstrom(path: str | Path | None = None, *, capacity_share: float = 0.3, objective: str = "visit",
                  test_share: float = 0.5, l2: float = 1.0, method: str = "dual", alpha: float = 0.05,
                  n_bootstrap: int = 100, random_state: int = 0) -> HillstromResult:
    """Fit, plan and value the e-mail targeting end to end (module docstring).

    Parameters
    ----------
    path : path, optional
        The CSV (default: the shipped ``data/hillstrom/hillstrom.csv``).
    capacity_share : float
        Share of held-out customers that may receive an e-mail, in (0, 1].
    objective : {"visit", "conversion", "spend"}
        Outcome whose predicted uplift the plan maximises.
    test_share : float
        Held-out share (stratified by arm).
    l2 : float
        Penalty of the T-learners' outcome models.
    method : str
        Planner method (:func:`optimizer.solve`); default ``dual`` (the Lagrangian core, with a bound;
        on this one-row knapsack HiGHS' branch and bound is much slower).
    alpha : float
        Intervals have level 1 − alpha.
    n_bootstrap : int
        Bootstrap replicates of the Qini intervals.
    random_state : int
        Seed of the split, the random policies' draws (none: they are valued exactly) and the bootstrap.
    """
    import time

    from optimizer.api import solve
    from optimizer.uplift.metrics import qini_interval
    from optimizer.uplift.models import TLearner
    from optimizer.uplift.utilities import utilities_from_models
    from optimizer.verify import verify
    from formulations.assignment import PlanningProblem

    start = time.perf_counter()
    if objective not in OUTCOMES:
        raise InputError("--outcome", f"expected one of {', '.join(OUTCOMES)}, got {objective!r}")
    if not 0.0 < capacity_share <= 1.0:
        raise InputError("--capacity", f"expected a share in (0, 1], got {capacity_share!r}")
    df = load_hillstrom(path)
    test = stratified_split(df["arm"].to_numpy(), test_share, random_state)
    train_df, test_df = df[~test], df[test]
    cols = list(FEATURES)
    a_test = test_df["arm"].to_numpy()
    n = len(test_df)
    uplift, train_uplift, mu = {}, {}, {}
    for outcome in OUTCOMES:
        model = TLearner(l2=l2, random_state=random_state).fit(train_df[cols], train_df[outcome], train_df["arm"])
        mu[outcome] = model.predict_outcome(test_df[cols])                   # (n, 3): control, mens, womens
        uplift[outcome] = mu[outcome][:, 1:] - mu[outcome][:, :1]
        train_uplift[outcome] = model.predict(train_df[cols]).mean(axis=0)

    # ---- plan: one day, <= 1 e-mail per customer, e-mails <= capacity (a budget with unit costs)
    capacity = int(np.floor(capacity_share * n))
    u = utilities_from_models(uplift[objective], cost=[0.0, 0.0], value=1.0, n_days=1)
    problem = PlanningProblem(utility=u, capacity=np.full((2, 1), float(n)), cost=np.ones(2), budget=float(capacity),
                              max_contacts=1, customer_ids=test_df.index.to_numpy(),
                              channel_names=list(ARMS[1:]), day_labels=["send"])
    plan = solve(problem, method=method)
    if not verify(problem, plan).ok:
        raise RuntimeError("the Hillstrom plan failed verification")
    chosen = np.zeros(n, dtype=np.int64)                                     # 0 = no e-mail
    idx = plan.assignment_indices
    chosen[idx[:, 0]] = idx[:, 1] + 1

    # ---- target probabilities pi(a_i | x_i) of the logged arm under each policy
    k = np.array([(chosen == 1).sum(), (chosen == 2).sum()], dtype=np.float64)
    best = int(np.argmax(train_uplift[objective])) + 1
    share = capacity / n

    def stochastic(probs_by_arm: np.ndarray) -> np.ndarray:
        return probs_by_arm[a_test]

    policies = {
        "planned targeting": ((chosen == a_test).astype(np.float64), float((chosen > 0).mean())),
        "random targeting (same e-mails)": (stochastic(np.r_[1 - k.sum() / n, k / n]), float(k.sum() / n)),
        f"best arm ({ARMS[best]}), random {share:.0%}": (
            stochastic(np.r_[1 - share, share * (np.arange(1, 3) == best)]), share),
        f"best arm ({ARMS[best]}), everyone": ((a_test == best).astype(np.float64), 1.0),
        "no e-mail": ((a_test == 0).astype(np.float64), 0.0),
    }
    rows = []
    for name, (target, emailed) in policies.items():
        for outcome in OUTCOMES:
            v, lo, hi = _ips(test_df[outcome].to_numpy(dtype=np.float64), target, alpha)
            rows.append({"policy": name, "outcome": outcome, "emails": emailed, "value": v, "ci_low": lo, "ci_high": hi})
    plan_t, rand_t = policies["planned targeting"][0], policies["random targeting (same e-mails)"][0]
    best_t = policies[f"best arm ({ARMS[best]}), random {share:.0%}"][0]
    for label, other in (("plan − random (difference)", rand_t), (f"plan − best arm random {share:.0%} (difference)", best_t)):
        for outcome in OUTCOMES:
            v, lo, hi = _difference(test_df[outcome].to_numpy(dtype=np.float64), plan_t, other, alpha)
            rows.append({"policy": label, "outcome": outcome, "emails": np.nan, "value": v, "ci_low": lo, "ci_high": hi})
    # doubly robust difference plan - random (same e-mails): the T-learners' outcome predictions as reward model
    plan_full = np.zeros((n, 3))
    plan_full[np.arange(n), chosen] = 1.0
    rand_full = np.broadcast_to(np.r_[1 - k.sum() / n, k / n], (n, 3))
    for outcome in OUTCOMES:
        v, lo, hi = dr_difference(test_df[outcome].to_numpy(dtype=np.float64), a_test, plan_full, rand_full,
                                  mu[outcome], alpha)
        rows.append({"policy": "plan − random (difference, doubly robust)", "outcome": outcome, "emails": np.nan,
                     "value": v, "ci_low": lo, "ci_high": hi})
    values = pd.DataFrame(rows)

    arm_rows = []
    for m in (1, 2):
        rows_m = (a_test == 0) | (a_test == m)
        for j, outcome in enumerate(OUTCOMES):
            y = test_df[outcome].to_numpy(dtype=np.float64)[rows_m]
            t = (a_test[rows_m] == m).astype(int)
            rec = {"arm": ARMS[m], "outcome": outcome, "observed_uplift": float(y[t == 1].mean() - y[t == 0].mean()),
                   "predicted_uplift": float(uplift[outcome][:, m - 1].mean()), "qini": np.nan, "qini_low": np.nan,
                   "qini_high": np.nan}
            if outcome != "spend":
                q = qini_interval(y, uplift[outcome][rows_m, m - 1], t, n_bootstrap=n_bootstrap, alpha=alpha,
                                  random_state=random_state)
                rec.update(qini=q.qini, qini_low=q.ci[0], qini_high=q.ci[1])
            arm_rows.append(rec)
    meta = {"n_train": int(len(train_df)), "n_test": n, "capacity_share": capacity_share, "capacity": capacity,
            "objective": objective, "best_arm": ARMS[best], "emails_planned": int(plan.n_contacts),
            "emails_by_arm": {ARMS[1]: int(k[0]), ARMS[2]: int(k[1])}, "plan_status": str(plan.status.value)
            if hasattr(plan.status, "value") else str(plan.status), "plan_method": plan.method,
            "plan_objective": float(plan.objective), "alpha": alpha, "random_state": random_state,
            "seconds": time.perf_counter() - start}
    return HillstromResult(values=values, arm_uplift=pd.DataFrame(arm_rows), meta=meta)


def summary_lines(result: HillstromResult) -> list[str]:
    """Plain-text verdict lines: does the plan beat random targeting (interval of the difference)?"""
    v = result.values
    out = []
    for outcome in OUTCOMES:
        d = v[(v["policy"] == "plan − random (difference)") & (v["outcome"] == outcome)].iloc[0]
        verdict = ("beats" if d["ci_low"] > 0 else "is worse than" if d["ci_high"] < 0 else
                   "is not distinguishable from")
        out.append(f"{outcome}: plan {verdict} random targeting (difference {d['value']:.4g}, "
                   f"{1 - result.meta['alpha']:.0%} CI [{d['ci_low']:.4g}, {d['ci_high']:.4g}])")
    return out


def as_dict(result: HillstromResult) -> dict[str, Any]:
    return {"values": result.values.to_dict(orient="records"), "arm_uplift": result.arm_uplift.to_dict(orient="records"),
            "meta": result.meta}


def print_hillstrom(console, *, method: str = "dual", objective: str = "visit", capacity_share: float = 0.3,
                    out: str | Path | None = None, data: str | Path | None = None) -> HillstromResult:
    """Run :func:`run_hillstrom` and print its tables with rich (``contactplan demo --hillstrom``)."""
    from rich.table import Table

    with console.status("Hillstrom: fitting T-learners, planning, valuing on the held-out half ...", spinner="dots"):
        result = run_hillstrom(data, capacity_share=capacity_share, objective=objective, method=method)
    m = result.meta
    console.print(f"[bold]contactplan demo --hillstrom[/]: {m['n_train']:,} training / {m['n_test']:,} held-out "
                  f"customers, e-mail capacity {m['capacity_share']:.0%} ({m['capacity']:,}), plan maximises "
                  f"predicted {m['objective']} uplift; planned {m['emails_planned']:,} e-mails "
                  f"({', '.join(f'{k}: {v:,}' for k, v in m['emails_by_arm'].items())}), "
                  f"method {m['plan_method']}, status {m['plan_status']}")
    arms = Table(title="Held-out uplift per e-mail arm (treated − control) and Qini of the model's ranking")
    for col in ("arm", "outcome", "observed", "predicted (mean)", "Qini [95% CI]"):
        arms.add_column(col, justify="left" if col in ("arm", "outcome") else "right")
    for r in result.arm_uplift.itertuples(index=False):
        qini = "" if np.isnan(r.qini) else f"{r.qini:.4f} [{r.qini_low:.4f}, {r.qini_high:.4f}]"
        arms.add_row(r.arm, r.outcome, f"{r.observed_uplift:.4f}", f"{r.predicted_uplift:.4f}", qini)
    console.print(arms)
    table = Table(title=f"Held-out value per customer (IPS, propensity 1/3, {1 - m['alpha']:.0%} CI)")
    wide = result.wide()
    for col in wide.columns:
        table.add_column(str(col), justify="left" if col == "policy" else "right")
    for row in wide.itertuples(index=False):
        table.add_row(*[str(x) for x in row])
    console.print(table)
    for line in summary_lines(result):
        console.print(line)
    if out is not None:
        from optimizer.io import write_table

        write_table(result.values, out)
        console.print(f"wrote the value table to [bold]{out}[/]")
    return result
