r"""What are call-centre and branch data worth? A seed experiment on the Customer 360 generator.

For each seed: generate raw sources with hidden truth (:func:`optimizer.c360.generate_c360`), build
the Customer 360 (:func:`optimizer.c360.build_c360`) once per configuration (granularity
:math:`\Delta`, data latency *L*), read the logged contacts with their point-in-time state
(:func:`optimizer.uplift.c360_data.load_build`) and split the customers at random into a training
and a held-out half (same split for every configuration).

Models: the pooled :class:`~optimizer.uplift.LogisticResponse` on the *full* state (CRM, digital,
call-centre and branch features) and on the *digital-only* state (CRM and digital), same penalty.

Quantities (per configuration)

* :math:`\ell` — log-loss of each model on the held-out contacts;
  :math:`\Delta\ell = \ell_{full} - \ell_{digital}` (negative: offline data help).
* :math:`J` — the *true* expected value of the plan built from a model: the plan week's
  :class:`~formulations.assignment.PlanningProblem` of the build
  (:func:`optimizer.c360.planning_problem`: eligibility, contact caps, capacities, costs, budget),
  with the utilities replaced by :math:`u_{imt} = \hat\tau_{im} V - c_m`
  (:func:`~optimizer.uplift.utilities_from_models`), solved, and valued under the generator's truth:
  :math:`J = \sum_{(i,m,t) \in \text{plan}} (\tau_{im} V - c_m)` with :math:`\tau` the true uplift
  (``truth/customers.parquet``). :math:`\Delta J = J_{full} - J_{digital}`. :math:`J^*` is the
  value of the plan built from the true uplift (an upper reference).
* Latency sensitivity :math:`\Delta J(L) = J(0) - J(L)` for the full model, at the reference
  granularity. The build's latency applies to *every* source (the pipeline has one latency).
* Granularity sensitivity: :math:`\ell` and *J* with daily and weekly features at :math:`L = 0`.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from formulations.c360 import CONTACT_CHANNELS
from formulations.errors import InputError

LATENCIES = (0, 1, 3, 7, 14)
GRANULARITIES = ("day", "week")


@dataclass
class OfflineValueResult:
    """Tables of :func:`run_offline_value` (one row per seed and configuration).

    Attributes
    ----------
    runs : DataFrame
        ``seed, granularity, latency_days, model, log_loss, auc, J, J_share`` (``J / J*``),
        ``contacts`` (planned) and, for the oracle, ``J_bound`` (the planner's upper bound on the best
        true value: no plan of any model can exceed it).
    meta : dict
    """

    runs: pd.DataFrame
    meta: dict = field(default_factory=dict)

    def offline_table(self) -> pd.DataFrame:
        """Δℓ and ΔJ per seed (reference granularity, L = 0), plus the mean over seeds."""
        r = self.runs[(self.runs["granularity"] == self.meta["granularity"]) & (self.runs["latency_days"] == 0)]
        w = r.pivot_table(index="seed", columns="model", values=["log_loss", "J"])
        t = pd.DataFrame({"log_loss_full": w[("log_loss", "full")], "log_loss_digital": w[("log_loss", "digital")],
                          "delta_log_loss": w[("log_loss", "full")] - w[("log_loss", "digital")],
                          "J_full": w[("J", "full")], "J_digital": w[("J", "digital")],
                          "delta_J": w[("J", "full")] - w[("J", "digital")], "J_oracle": w[("J", "oracle")]})
        return _with_mean(t)

    def latency_table(self) -> pd.DataFrame:
        """J(L) and ΔJ(L) = J(0) − J(L) of the full model (mean over seeds), with ℓ."""
        r = self.runs[(self.runs["granularity"] == self.meta["granularity"]) & (self.runs["model"] == "full")]
        j0 = r[r["latency_days"] == 0].set_index("seed")["J"]
        r = r.assign(delta_J=[j0[s] - j for s, j in zip(r["seed"], r["J"])])
        return r.groupby("latency_days")[["log_loss", "J", "delta_J"]].mean().reset_index()

    def granularity_table(self) -> pd.DataFrame:
        """ℓ and J by granularity and model at L = 0 (mean over seeds)."""
        r = self.runs[(self.runs["latency_days"] == 0) & (self.runs["model"] != "oracle")]
        return r.groupby(["granularity", "model"])[["log_loss", "auc", "J"]].mean().reset_index()


def _with_mean(t: pd.DataFrame) -> pd.DataFrame:
    t = t.reset_index()
    t["seed"] = t["seed"].astype(str)
    if len(t) > 1:
        mean = t.drop(columns=["seed"]).mean().to_frame().T.assign(seed="mean")
        t = pd.concat([t, mean[t.columns]], ignore_index=True)
    return t


def _evaluate_build(raw: Path, out: Path, train_ids: set, value: float, l2: float, method: str,
                    include_oracle: bool) -> list[dict]:
    from dataclasses import replace

    from optimizer.api import solve
    from optimizer.c360.planning import planning_problem
    from optimizer.uplift.c360_data import DIGITAL_ONLY, FULL, feature_columns, load_build, true_uplift
    from optimizer.uplift.metrics import log_loss, roc_auc
    from optimizer.uplift.models import LogisticResponse
    from optimizer.uplift.utilities import utilities_from_models

    data = load_build(raw, out)
    c = data.contacts
    is_train = c["customer_id"].isin(train_ids).to_numpy()
    train, test = c[is_train], c[~is_train]
    base = planning_problem(out, value=value)
    if list(base.customer_ids) != list(data.customer_ids):
        raise InputError("OUT_DIR", "eligibility and customer order disagree")
    tau_true = true_uplift(raw, data.customer_ids)
    cost = np.asarray(base.cost, dtype=np.float64)
    T = base.utility.shape[2]

    def true_value(plan) -> float:
        idx = plan.assignment_indices
        return float((tau_true[idx[:, 0], idx[:, 1]] * value - cost[idx[:, 1]]).sum()) if idx.size else 0.0

    rows = []
    for name, groups in (("full", FULL), ("digital", DIGITAL_ONLY)):
        cols = feature_columns(groups)
        model = LogisticResponse(l2=l2).fit(train[cols], train["responded"], train["action"],
                                            n_channels=len(CONTACT_CHANNELS), channel_names=CONTACT_CHANNELS)
        p = model.predict_proba(test[cols], test["action"].to_numpy())
        u = utilities_from_models(model, data.plan_state[cols], cost=cost, value=value, n_days=T)
        plan = solve(replace(base, utility=u), method=method)
        rows.append({"model": name, "log_loss": log_loss(test["responded"], p), "auc": roc_auc(test["responded"], p),
                     "J": true_value(plan), "contacts": plan.n_contacts, "n_train": int(len(train)),
                     "n_test": int(len(test))})
    if include_oracle:
        u = utilities_from_models(tau_true, cost=cost, value=value, n_days=T)
        plan = solve(replace(base, utility=u), method=method)
        rows.append({"model": "oracle", "log_loss": np.nan, "auc": np.nan, "J": true_value(plan),
                     "J_bound": np.nan if plan.bound is None else float(plan.bound), "contacts": plan.n_contacts, "n_train": int(len(train)), "n_test": int(len(test))})
    return rows


def run_offline_value(n_customers: int = 10_000, n_weeks: int = 12, seeds: Sequence[int] = (0,), *,
                      latencies: Sequence[float] = LATENCIES, granularity: str = "day",
                      other_granularity: bool = True, value: float = 80.0, l2: float = 1.0, method: str = "dual",
                      workdir: str | Path | None = None,
                      progress: Callable[[str], None] | None = None) -> OfflineValueResult:
    """Run the experiment of the module docstring.

    Parameters
    ----------
    n_customers, n_weeks : int
        Size of each generated data set.
    seeds : sequence of int
        One generated data set (and train / held-out split) per seed.
    latencies : sequence of float
        Data latencies L (days) of the latency sweep; 0 is always included.
    granularity : {"day", "week"}
        Reference feature granularity (the latency sweep uses it).
    other_granularity : bool
        Also build the other granularity at L = 0.
    value : float
        Value V of a response.
    l2 : float
        Penalty of the response models.
    method : str
        Planner method.
    workdir : path, optional
        Where raw data and builds go (default: a temporary directory, removed afterwards).
    progress : callable, optional
        ``progress(message)`` before each step.
    """
    from optimizer.c360 import BuildOptions, build_c360, generate_c360

    if granularity not in GRANULARITIES:
        raise InputError("--granularity", f"expected day or week, got {granularity!r}")
    if int(n_customers) < 200:
        raise InputError("--customers", f"expected at least 200 customers, got {n_customers}")
    lat = sorted({0.0, *(float(x) for x in latencies)})
    if any(not np.isfinite(x) or x < 0 for x in lat):
        raise InputError("--latencies", f"expected latencies >= 0 days, got {list(latencies)}")
    if not seeds:
        raise InputError("--seeds", "expected at least one seed")
    configs = [(granularity, x) for x in lat]
    if other_granularity:
        configs.append(("week" if granularity == "day" else "day", 0.0))
    start = time.perf_counter()
    say = progress or (lambda msg: None)
    rows = []
    with tempfile.TemporaryDirectory(prefix="offline_value_") as tmp:
        root = Path(workdir) if workdir is not None else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        for seed in seeds:
            raw = root / f"raw_seed{seed}"
            say(f"seed {seed}: generating {n_customers:,} customers x {n_weeks} weeks")
            generate_c360(raw, int(n_customers), int(n_weeks), seed=int(seed))
            train_ids: set | None = None
            for g, x in configs:
                out = root / f"c360_seed{seed}_{g}_L{x:g}"
                say(f"seed {seed}: build granularity={g} latency={x:g}d, fit full / digital-only, plan")
                build_c360(raw, out, BuildOptions(granularity=g, latency_days=x))
                if train_ids is None:
                    ids = np.sort(pd.read_parquet(out / "customers.parquet", columns=["customer_id"])["customer_id"]
                                  .to_numpy(dtype=object))
                    pick = np.random.default_rng([int(seed), 2024]).random(ids.size) < 0.5
                    train_ids = set(ids[pick].tolist())
                for r in _evaluate_build(raw, out, train_ids, value, l2, method,
                                         include_oracle=(x == 0.0)):
                    rows.append({"seed": int(seed), "granularity": g, "latency_days": x, **r})
    runs = pd.DataFrame(rows)
    oracle = runs[runs["model"] == "oracle"].set_index(["seed", "granularity"])["J"]
    runs["J_share"] = [j / oracle.get((s, g), np.nan) for s, g, j in zip(runs["seed"], runs["granularity"], runs["J"])]
    meta = {"customers": int(n_customers), "weeks": int(n_weeks), "seeds": [int(s) for s in seeds],
            "granularity": granularity, "latencies": lat, "value": value, "l2": l2, "method": method,
            "seconds": time.perf_counter() - start}
    return OfflineValueResult(runs=runs, meta=meta)


def save_plots(result: OfflineValueResult, out_dir: str | Path) -> list[Path]:
    """``offline_value.png`` (ℓ and J by model) and ``latency.png`` (J(L)), written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from optimizer.io import write_with

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    off = result.offline_table()
    off = off[off["seed"] == ("mean" if (off["seed"] == "mean").any() else off["seed"].iloc[0])].iloc[0]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    axes[0].bar(["full", "digital-only"], [off["log_loss_full"], off["log_loss_digital"]], color=["C0", "C1"])
    axes[0].set_ylabel("held-out log-loss")
    axes[0].set_ylim(min(off["log_loss_full"], off["log_loss_digital"]) * 0.97,
                     max(off["log_loss_full"], off["log_loss_digital"]) * 1.01)
    axes[1].bar(["full", "digital-only", "oracle"], [off["J_full"], off["J_digital"], off["J_oracle"]],
                color=["C0", "C1", "C2"])
    axes[1].set_ylabel("true plan value J")
    fig.suptitle(f"Value of call-centre and branch data (Δℓ = {off['delta_log_loss']:.4f}, ΔJ = {off['delta_J']:.1f})")
    fig.tight_layout()
    paths.append(write_with(lambda tmp: fig.savefig(tmp, format="png", dpi=110), out / "offline_value.png"))
    plt.close(fig)

    lat = result.latency_table()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(lat["latency_days"], lat["J"], marker="o")
    ax.set_xlabel("data latency L (days)")
    ax.set_ylabel("true plan value J (full model)")
    ax.set_title("Latency sensitivity")
    fig.tight_layout()
    paths.append(write_with(lambda tmp: fig.savefig(tmp, format="png", dpi=110), out / "latency.png"))
    plt.close(fig)
    return paths
