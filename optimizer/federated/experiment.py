"""Privacy–utility sweep: federated DP training vs a centralised fit, over target ε.

For each target ε the noise multiplier σ is calibrated with dp-accounting
(RDP) for the run's (q, T, δ); the federated model is trained with user-level
DP (a user = a customer; every region samples its customers with rate q,
clips each customer's gradient to C and the server adds N(0, σ²C²) to the
securely aggregated sum) and its log-loss on held-out customers is compared
with the centralised L-BFGS fit of the same regularised log-loss on the pooled
training rows. ε = ∞ runs the same clipped pipeline without noise.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from formulations.errors import InputError
from formulations.federated import ClientData, log_loss

DEFAULT_EPSILONS = (0.5, 1.0, 2.0, 4.0, 8.0, math.inf)


@dataclass(frozen=True)
class SweepConfig:
    """Settings of the DP-FedAvg runs (defaults chosen on the 20 000-customer C360 run; see docs/federated.md)."""

    n_rounds: int = 300
    user_sampling_rate: float = 0.1
    clip_norm: float = 5.0
    delta: float = 1e-5
    server_lr: float = 0.05
    server_momentum: float = 0.9
    l2: float = 1e-4
    secure_aggregation: bool = True
    accountant: str = "rdp"

    def trainer_kwargs(self) -> dict:
        return dict(n_rounds=self.n_rounds, dp_unit="user", user_sampling_rate=self.user_sampling_rate,
                    clip_norm=self.clip_norm, delta=self.delta, local_lr=1.0, server_lr=self.server_lr,
                    server_momentum=self.server_momentum, server_optimizer="adam", l2=self.l2,
                    secure_aggregation=self.secure_aggregation, accountant=self.accountant)


def parse_epsilons(text: str) -> tuple[float, ...]:
    """``"0.5,1,inf"`` → (0.5, 1.0, inf); errors name ``--epsilons``."""
    out = []
    for part in text.split(","):
        part = part.strip().lower()
        try:
            value = math.inf if part in ("inf", "∞", "infinity") else float(part)
        except ValueError:
            raise InputError("--epsilons", f"expected comma-separated numbers or inf, got {part!r}") from None
        if not value > 0:
            raise InputError("--epsilons", f"expected every ε > 0, got {part!r}")
        out.append(value)
    if not out:
        raise InputError("--epsilons", "expected at least one ε")
    return tuple(out)


def load_regions(data: str, n_regions: int = 8, customers: int = 20_000, seed: int = 0,
                 workdir: str | Path | None = None) -> tuple[list[ClientData], ClientData, str]:
    """Clients and test set: ``data`` is a C360 directory, ``"c360"`` (generate one) or ``"synthetic"``."""
    from optimizer.federated.data import c360_regions, synthetic_regions

    if data == "synthetic":
        clients, test = synthetic_regions(n_regions=n_regions, seed=seed)
        return clients, test, f"synthetic ({n_regions} regions)"
    if data == "c360":
        import tempfile

        from optimizer.c360.generator import generate_c360

        with tempfile.TemporaryDirectory(dir=workdir) as tmp:
            generate_c360(Path(tmp) / "c360", customers, 12, seed)
            clients, test = c360_regions(Path(tmp) / "c360", n_regions=n_regions, seed=seed)
        return clients, test, f"Customer 360 generator ({customers:,} customers, seed {seed}, {n_regions} regions)"
    clients, test = c360_regions(data, n_regions=n_regions, seed=seed)
    return clients, test, f"Customer 360 directory {data} ({n_regions} regions)"


def privacy_sweep(clients: Sequence[ClientData], test: ClientData, epsilons: Sequence[float] = DEFAULT_EPSILONS,
                  config: SweepConfig = SweepConfig(), seeds: Sequence[int] = (0,),
                  progress: Callable[[str], None] | None = None):
    """Run the sweep; returns a pandas DataFrame, one row per target ε (means over ``seeds``).

    σ is calibrated once per ε; ``seconds_per_run`` is the training time of one run.
    Columns: ``epsilon_target, noise_multiplier, epsilon, accountant, log_loss, log_loss_std,
    centralised_log_loss, gap_pct, seconds_per_run``.
    """
    import pandas as pd

    from optimizer.federated import FederatedTrainer, calibrate_noise
    from optimizer.federated.baseline import fit_centralised, pool_clients

    X, y = pool_clients(clients)
    central = log_loss(fit_centralised(X, y, l2=config.l2), test.X, test.y)
    rows = []
    for eps in epsilons:
        losses, secs, trainer = [], [], None
        sigma = calibrate_noise(eps, config.user_sampling_rate, config.n_rounds, config.delta, config.accountant)
        for seed in seeds:
            t0 = time.perf_counter()
            trainer = FederatedTrainer(noise_multiplier=sigma, random_state=seed, **config.trainer_kwargs())
            trainer.fit(clients)
            secs.append(time.perf_counter() - t0)
            losses.append(trainer.loss(test.X, test.y))
        rows.append({"epsilon_target": eps, "noise_multiplier": trainer.noise_multiplier_,
                     "epsilon": trainer.epsilon_, "accountant": config.accountant,
                     "log_loss": float(np.mean(losses)),
                     "log_loss_std": float(np.std(losses)), "centralised_log_loss": central,
                     "gap_pct": 100.0 * (float(np.mean(losses)) / central - 1.0),
                     "seconds_per_run": float(np.mean(secs))})
        if progress is not None:
            progress(f"ε={eps:g}: log-loss {rows[-1]['log_loss']:.5f} ({rows[-1]['gap_pct']:+.2f}% vs centralised)")
    df = pd.DataFrame(rows)
    df.attrs["config"] = asdict(config)
    df.attrs["n_train_rows"] = int(X.shape[0])
    df.attrs["n_test_rows"] = test.n
    return df


def plot_sweep(df, path: str | Path, title: str = "") -> Path:
    """Log-loss vs ε (log axis; ε = ∞ drawn at the right edge) with the centralised line and ±2% band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from optimizer.io import write_with

    finite = df[np.isfinite(df["epsilon_target"])]
    inf = df[~np.isfinite(df["epsilon_target"])]
    central = float(df["centralised_log_loss"].iloc[0])
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.errorbar(finite["epsilon_target"], finite["log_loss"], yerr=finite["log_loss_std"], marker="o",
                label="federated, user-level DP")
    x_inf = (finite["epsilon_target"].max() if len(finite) else 1.0) * 3
    if len(inf):
        ax.errorbar([x_inf], inf["log_loss"], yerr=inf["log_loss_std"], marker="s", color="C2", linestyle="none",
                    label="federated, ε = ∞ (clipped, no noise)")
    ax.axhline(central, color="k", lw=1, label="centralised (L-BFGS)")
    ax.axhspan(central, central * 1.02, color="0.85", label="within 2%")
    ax.set_xscale("log")
    ax.set_xlabel("target ε (δ = {:g})".format(df.attrs.get("config", {}).get("delta", 1e-5)))
    ax.set_ylabel("test log-loss")
    if len(inf):
        ax.annotate("ε = ∞", (x_inf, float(inf["log_loss"].iloc[0])), textcoords="offset points", xytext=(0, 8),
                    ha="center", fontsize=8)
    import textwrap

    ax.set_title("\n".join(textwrap.wrap(title or "privacy–utility trade-off", 60)), fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    target = Path(path)
    write_with(lambda tmp: fig.savefig(tmp, format="png", dpi=120), target)
    plt.close(fig)
    return target


__all__ = ["DEFAULT_EPSILONS", "SweepConfig", "parse_epsilons", "load_regions", "privacy_sweep", "plot_sweep"]
