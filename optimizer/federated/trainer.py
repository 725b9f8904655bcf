"""``FederatedTrainer``: FedAvg/FedProx with client sampling, DP, secure aggregation and rollback.

The maths is in :mod:`formulations.federated`; the per-client step is
:func:`optimizer.federated.client.client_contribution`. Clients run in an
in-process loop (default) or as tasks on Dask (``executor="dask"`` starts a
``LocalCluster``; a ``distributed.Client`` can be passed instead).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from formulations.errors import InputError
from formulations.federated import ClientData, budget_spend, fairness_gap, log_loss, sigmoid
from optimizer.federated.client import RoundSpec, client_contribution
from optimizer.federated.compression import payload_bytes, shared_keep_mask
from optimizer.federated.secure_agg import QuorumError, SecureAggregationRound


def _as_validation(validation: Any) -> ClientData | None:
    if validation is None or isinstance(validation, ClientData):
        return validation
    X, y = validation
    return ClientData(np.asarray(X), np.asarray(y), name="validation")


class FederatedTrainer:
    """Federated logistic response model (FedAvg / FedProx, optional user- or client-level DP).

    Parameters
    ----------
    n_rounds : int
        Communication rounds T.
    local_epochs : int
        Local full-batch gradient epochs E (``dp_unit="user"`` uses one step).
    local_lr, server_lr, server_momentum : float
        Local step η_ℓ, server step η_s, server momentum β (0 = plain FedAvg).
    server_optimizer : {"sgd", "adam"}
        ``"sgd"``: θ ← θ − η_s v, v ← βv + ḡ (FedAvg / FedAvgM). ``"adam"``: FedAdam
        (Reddi et al. 2021) treating ḡ as the pseudo-gradient, first moment β =
        ``server_momentum``, second moment ``adam_beta2``, adaptivity ``adam_tau``;
        post-processing of the (noised) aggregate, so DP is unaffected.
    adam_beta2, adam_tau : float
    mu : float
        FedProx proximal weight (0 = FedAvg).
    l2 : float
        L2 regularisation λ₂ of the log-loss.
    clients_per_round : float, optional
        Expected number of sampled clients m (None = all clients every round).
    sampling_weights : sequence of float, optional
        q_k of the sampling probabilities π_k ∝ q_k (default: row counts).
    min_clients : int
        Minimum sampled clients per round (topped up uniformly; not under DP,
        where top-ups would break the Poisson-sampling analysis).
    dropout_rate : float
        Probability that a sampled client drops out (straggler) in a round.
    quorum : int, optional
        Minimum survivors; below it the round aborts (default 1, or the
        secure-aggregation quorum).
    dp_unit : {"client", "user"}
        What differential privacy protects: a whole client, or one user
        (customer) inside a client.
    user_sampling_rate : float
        q for ``dp_unit="user"`` (each user's Poisson inclusion probability).
    clip_norm : float
        C (``inf`` = no clipping; DP needs a finite C).
    noise_multiplier : float
        σ (0 = no noise). Ignored when ``target_epsilon`` is given.
    target_epsilon : float, optional
        Calibrate σ with dp-accounting for this ε at ``delta`` (``inf`` = no noise).
    delta : float
        δ of the guarantee.
    accountant : {"rdp", "pld"}
    noise_at : {"server", "clients"}
        Add N(0, σ²C²) once to the aggregated sum, or N(0, σ²C²/quorum) at each client.
    secure_aggregation : bool
        Aggregate through pairwise masks in fixed point (exact sum, server sees only the sum).
    frac_bits, modulus_bits : int
        Fixed-point format of secure aggregation.
    keep_prob : float
        Sparsification keep-probability p (1 = dense).
    quantize_bits : {None, 8}
        Optional 8-bit stochastic quantisation of uploads.
    rollback_tolerance : float, optional
        Reject a round whose validation loss exceeds (1 + tol) × best so far.
    max_drift : float, optional
        Reject a round whose client-statistics drift d_t exceeds this.
    max_rollbacks : int
        Consecutive rejected rounds before falling back to the deployed model.
    deployed_coef : array, optional
        Last deployed model (fallback; default the initial θ = 0).
    checkpoint_dir : path, optional
        Also write every accepted checkpoint there (atomic ``round_XXXX.npz``).
    executor : {"loop", "dask"} or distributed.Client
    client_update_hook : callable, optional
        ``hook(round, client_index, update) -> update``: simulate faulty or
        poisoned clients (applied to what the client uploads).
    budget_price : float
        λ ≥ 0 of the optional budget term λ(b(θ) − β), b(θ) = mean_i c_i σ(θᵀf_i)
        with the clients' ``costs`` (1 if absent). 0 = off.
    budget_per_row : float, optional
        β (budget per row); shifts the value of the term only (not the gradient).
        Used by :meth:`objective_terms`; None = 0.
    fairness_weight : float
        γ ≥ 0 of the optional fairness term γ·Ψ, Ψ over the clients' ``segments``,
        computed per client and weighted by rows (see :mod:`formulations.federated`). 0 = off.
    random_state : int, optional
    verbose : bool
        Show a rich progress bar.

    Attributes
    ----------
    coef_ : ndarray (d,)
    noise_multiplier_, sampling_rate_, epsilon_ : float
    dp_ : bool
        Noise is added (σ > 0), so ``epsilon_`` is finite.
    clipped_ : bool
        Updates are clipped and averaged with the fixed denominator (finite C or a budget set).
    history_ : pandas.DataFrame
        One row per round: sampled, survivors, aborted, val_loss, drift,
        upload_bytes, rejected, rolled_back_to.
    checkpoints_ : list of (round, coef)
    n_rollbacks_ : int
    fell_back_ : bool
    bytes_per_round_ : float
    """

    def __init__(self, n_rounds: int = 50, local_epochs: int = 1, local_lr: float = 0.5, server_lr: float = 1.0,
                 server_momentum: float = 0.0, server_optimizer: str = "sgd", adam_beta2: float = 0.99,
                 adam_tau: float = 1e-3, mu: float = 0.0, l2: float = 1e-4,
                 clients_per_round: float | None = None, sampling_weights: Sequence[float] | None = None,
                 min_clients: int = 1, dropout_rate: float = 0.0, quorum: int | None = None,
                 dp_unit: str = "client", user_sampling_rate: float = 1.0, clip_norm: float = math.inf,
                 noise_multiplier: float = 0.0, target_epsilon: float | None = None, delta: float = 1e-5,
                 accountant: str = "rdp", noise_at: str = "server", secure_aggregation: bool = False,
                 frac_bits: int = 24, modulus_bits: int = 64, keep_prob: float = 1.0,
                 quantize_bits: int | None = None, rollback_tolerance: float | None = None,
                 max_drift: float | None = None, max_rollbacks: int = 3, deployed_coef: np.ndarray | None = None,
                 checkpoint_dir: str | Path | None = None, executor: Any = "loop",
                 client_update_hook: Callable[[int, int, np.ndarray], np.ndarray] | None = None,
                 budget_price: float = 0.0, budget_per_row: float | None = None, fairness_weight: float = 0.0,
                 random_state: int | None = None, verbose: bool = False) -> None:
        self.n_rounds = n_rounds
        self.local_epochs = local_epochs
        self.local_lr = local_lr
        self.server_lr = server_lr
        self.server_momentum = server_momentum
        self.server_optimizer = server_optimizer
        self.adam_beta2 = adam_beta2
        self.adam_tau = adam_tau
        self.mu = mu
        self.l2 = l2
        self.clients_per_round = clients_per_round
        self.sampling_weights = sampling_weights
        self.min_clients = min_clients
        self.dropout_rate = dropout_rate
        self.quorum = quorum
        self.dp_unit = dp_unit
        self.user_sampling_rate = user_sampling_rate
        self.clip_norm = clip_norm
        self.noise_multiplier = noise_multiplier
        self.target_epsilon = target_epsilon
        self.delta = delta
        self.accountant = accountant
        self.noise_at = noise_at
        self.secure_aggregation = secure_aggregation
        self.frac_bits = frac_bits
        self.modulus_bits = modulus_bits
        self.keep_prob = keep_prob
        self.quantize_bits = quantize_bits
        self.rollback_tolerance = rollback_tolerance
        self.max_drift = max_drift
        self.max_rollbacks = max_rollbacks
        self.deployed_coef = deployed_coef
        self.checkpoint_dir = checkpoint_dir
        self.executor = executor
        self.client_update_hook = client_update_hook
        self.budget_price = budget_price
        self.budget_per_row = budget_per_row
        self.fairness_weight = fairness_weight
        self.random_state = random_state
        self.verbose = verbose

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor parameters (scikit-learn convention)."""
        import inspect

        return {name: getattr(self, name) for name in inspect.signature(type(self).__init__).parameters
                if name != "self"}

    def set_params(self, **params: Any) -> "FederatedTrainer":
        """Set constructor parameters; returns self."""
        valid = self.get_params()
        for key, value in params.items():
            if key not in valid:
                raise InputError(key, f"unknown parameter of FederatedTrainer")
            setattr(self, key, value)
        return self

    # ------------------------------------------------------------------------------------------
    def _validate(self, clients: Sequence[ClientData]) -> None:
        if not clients:
            raise InputError("client_datasets", "expected at least one client")
        d = clients[0].d
        for k, c in enumerate(clients):
            if not isinstance(c, ClientData):
                raise InputError("client_datasets", f"expected ClientData, got {type(c).__name__} at index {k}")
            if c.d != d:
                raise InputError("client_datasets", f"expected {d} features in every client, got {c.d} at index {k}")
        if int(self.n_rounds) < 1:
            raise InputError("n_rounds", f"expected a positive integer, got {self.n_rounds}")
        if self.dp_unit not in ("client", "user"):
            raise InputError("dp_unit", f"expected 'client' or 'user', got {self.dp_unit!r}")
        if self.server_optimizer not in ("sgd", "adam"):
            raise InputError("server_optimizer", f"expected 'sgd' or 'adam', got {self.server_optimizer!r}")
        if self.noise_at not in ("server", "clients"):
            raise InputError("noise_at", f"expected 'server' or 'clients', got {self.noise_at!r}")
        if not (0 < self.keep_prob <= 1):
            raise InputError("keep_prob", f"expected a number in (0, 1], got {self.keep_prob}")
        if self.quantize_bits not in (None, 8):
            raise InputError("quantize_bits", f"expected None or 8, got {self.quantize_bits}")
        if not (0 <= self.dropout_rate < 1):
            raise InputError("dropout_rate", f"expected a number in [0, 1), got {self.dropout_rate}")
        if not (0 < self.user_sampling_rate <= 1):
            raise InputError("user_sampling_rate", f"expected a number in (0, 1], got {self.user_sampling_rate}")
        if self.clients_per_round is not None and not (0 < self.clients_per_round <= len(clients)):
            raise InputError("clients_per_round",
                             f"expected a number in (0, {len(clients)}], got {self.clients_per_round}")
        if self.quorum is not None and not (1 <= int(self.quorum) <= len(clients)):
            raise InputError("quorum", f"expected 1 <= quorum <= {len(clients)}, got {self.quorum}")
        for name in ("budget_price", "fairness_weight"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0):
                raise InputError(name, f"expected a finite number >= 0, got {value}")
        if self.budget_per_row is not None and not np.isfinite(self.budget_per_row):
            raise InputError("budget_per_row", f"expected a finite number or None, got {self.budget_per_row}")
        if (self.budget_price or self.fairness_weight) and self.dp_unit == "user" and (
                self.noise_multiplier > 0 or np.isfinite(self.clip_norm) or self.target_epsilon is not None):
            raise InputError("dp_unit", "budget/fairness terms are not supported with user-level DP "
                                        "(per-user gradients); use dp_unit='client' or turn the terms off")
        if self.fairness_weight and all(c.segment_index_ is None for c in clients):
            raise InputError("fairness_weight", "expected segments on at least one client, got none")

    def _inclusion_probabilities(self, clients: Sequence[ClientData]) -> np.ndarray:
        K = len(clients)
        if self.clients_per_round is None:
            return np.ones(K)
        q = np.asarray(self.sampling_weights if self.sampling_weights is not None
                       else [c.n for c in clients], dtype=np.float64)
        if q.shape != (K,) or np.any(q <= 0) or not np.all(np.isfinite(q)):
            raise InputError("sampling_weights", f"expected {K} positive finite weights, got {q}")
        # π_k = min(1, m q_k / Σq), redistributing the excess of capped clients
        pi = np.zeros(K)
        free = np.ones(K, dtype=bool)
        budget = float(self.clients_per_round)
        for _ in range(K):
            pi[free] = budget * q[free] / q[free].sum()
            over = free & (pi > 1)
            if not over.any():
                break
            pi[over] = 1.0
            free &= ~over
            budget = float(self.clients_per_round) - (K - free.sum())
        return np.minimum(pi, 1.0)

    def _privacy(self, clients: Sequence[ClientData], pi: np.ndarray) -> None:
        from optimizer.federated.accountant import calibrate_noise, privacy_epsilon

        self.sampling_rate_ = float(self.user_sampling_rate if self.dp_unit == "user" else pi.max())
        if self.target_epsilon is not None:
            self.noise_multiplier_ = calibrate_noise(self.target_epsilon, self.sampling_rate_, int(self.n_rounds),
                                                     self.delta, self.accountant)
        else:
            self.noise_multiplier_ = float(self.noise_multiplier)
        self.dp_ = self.noise_multiplier_ > 0
        # clipped aggregation (fixed denominator) whenever C is finite or a privacy budget is set
        self.clipped_ = self.dp_ or bool(np.isfinite(self.clip_norm)) or self.target_epsilon is not None
        if self.noise_multiplier_ > 0 and not np.isfinite(self.clip_norm):
            raise InputError("clip_norm", "differential privacy needs a finite clip norm C")
        self.epsilon_ = (privacy_epsilon(self.noise_multiplier_, self.sampling_rate_, int(self.n_rounds), self.delta,
                                         self.accountant) if self.noise_multiplier_ > 0 else math.inf)

    def _map(self, pool: Any, theta: np.ndarray, data_refs: list, spec: RoundSpec, keep: np.ndarray,
             seeds: list, ids: list[int]) -> list[np.ndarray]:
        hook = self.client_update_hook
        if pool is None:
            return [client_contribution(theta, data_refs[k], spec, keep, seeds[k], k, hook) for k in ids]
        futures = [pool.submit(client_contribution, theta, data_refs[k], spec, keep, seeds[k], k, hook, pure=False)
                   for k in ids]
        return pool.gather(futures)

    def _server_step(self, state: np.ndarray, gbar: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray]:
        new = np.empty_like(state)
        if self.server_optimizer == "sgd":
            new[0] = self.server_momentum * state[0] + gbar
            new[1] = 0.0
            return new, new[0]
        new[0] = self.server_momentum * state[0] + (1 - self.server_momentum) * gbar
        new[1] = self.adam_beta2 * state[1] + (1 - self.adam_beta2) * gbar**2
        return new, new[0] / (np.sqrt(new[1]) + self.adam_tau)

    def _checkpoint(self, rnd: int, theta: np.ndarray, velocity: np.ndarray) -> None:
        self.checkpoints_.append((rnd, theta.copy(), velocity.copy()))
        if self.checkpoint_dir is not None:
            from optimizer.io import atomic_path

            target = Path(self.checkpoint_dir) / f"round_{rnd:04d}.npz"
            with atomic_path(target) as tmp:
                with open(tmp, "wb") as fh:
                    np.savez(fh, coef=theta, velocity=velocity, round=rnd)

    def _restore(self) -> tuple[int, np.ndarray, np.ndarray]:
        rnd, theta, velocity = self.checkpoints_[-1]
        if self.checkpoint_dir is not None:
            with np.load(Path(self.checkpoint_dir) / f"round_{rnd:04d}.npz") as z:
                return rnd, z["coef"].copy(), z["velocity"].copy()
        return rnd, theta.copy(), velocity.copy()

    # ------------------------------------------------------------------------------------------
    def fit(self, client_datasets: Sequence[ClientData], validation: Any = None) -> "FederatedTrainer":
        """Train on ``client_datasets`` (one :class:`ClientData` per client).

        ``validation`` — a ``ClientData`` or ``(X, y)`` held by the server (a
        small public/holdout set) used for rollback decisions and the history.
        """
        import pandas as pd

        clients = list(client_datasets)
        self._validate(clients)
        val = _as_validation(validation)
        K, d = len(clients), clients[0].d
        pi = self._inclusion_probabilities(clients)
        self._privacy(clients, pi)
        dp, sigma, C = self.clipped_, self.noise_multiplier_, float(self.clip_norm)
        quorum = int(self.quorum) if self.quorum is not None else 1
        n_total = sum(c.n for c in clients)
        with_stats = not self.dp_                 # client statistics are not noised: tracked without DP only
        if self.max_drift is not None and self.dp_:
            raise InputError("max_drift", "drift tracking uses un-noised client statistics; not available under DP")
        if dp and self.dp_unit == "user":
            denom = self.user_sampling_rate * n_total
        else:
            denom = float(pi.sum())
        root = np.random.SeedSequence(self.random_state)
        rng, secret_rng = (np.random.default_rng(s) for s in root.spawn(2))   # sampling/noise; pairwise seeds
        theta = np.zeros(d) if self.deployed_coef is None else np.asarray(self.deployed_coef, float).copy()
        deployed = theta.copy()
        velocity = np.zeros((2, d))                  # server optimiser state: first and second moments
        self.checkpoints_ = []
        self._checkpoint(0, theta, velocity)
        best_val = log_loss(theta, val.X, val.y) if val is not None else math.inf
        s0 = None
        rows, consecutive, self.n_rollbacks_, self.fell_back_ = [], 0, 0, False

        pool, own_cluster = None, None
        if self.executor == "dask":
            from distributed import Client, LocalCluster

            own_cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None)
            pool = Client(own_cluster)
        elif self.executor not in ("loop", None):
            pool = self.executor
        data_refs = pool.scatter(clients, broadcast=False) if pool is not None else clients
        progress = None
        if self.verbose:
            from rich.progress import Progress

            progress = Progress(transient=True)
            progress.start()
            task = progress.add_task("federated rounds", total=int(self.n_rounds))
        try:
            for t in range(1, int(self.n_rounds) + 1):
                if progress is not None:
                    progress.update(task, completed=t - 1)
                sampled = np.flatnonzero(rng.random(K) < pi)
                if not dp and sampled.size < self.min_clients:
                    extra = rng.permutation(np.setdiff1d(np.arange(K), sampled))[: self.min_clients - sampled.size]
                    sampled = np.sort(np.concatenate([sampled, extra]))
                if self.dp_unit == "user" and dp:
                    sampled = np.arange(K)               # silos all take part; users are sampled inside
                alive = sampled[rng.random(sampled.size) >= self.dropout_rate]
                keep = shared_keep_mask(d, self.keep_prob, rng)
                seeds = root.spawn(K)                    # fresh per round, identical for loop and Dask
                n_keep = int(keep.sum())
                row = {"round": t, "sampled": int(sampled.size), "survivors": int(alive.size), "aborted": False,
                       "val_loss": np.nan, "drift": np.nan, "upload_bytes": 0, "rejected": False,
                       "rolled_back_to": -1}
                sa_quorum = max(quorum, 1)
                if alive.size < sa_quorum or alive.size == 0:
                    row["aborted"] = True
                    rows.append(row)
                    continue
                spec = RoundSpec(t, int(self.local_epochs), float(self.local_lr), float(self.l2), float(self.mu),
                                 self.dp_unit, dp, float(self.user_sampling_rate), C,
                                 sigma * C / math.sqrt(sa_quorum) if (dp and self.noise_at == "clients") else 0.0,
                                 float(self.keep_prob), self.quantize_bits, with_stats,
                                 float(self.budget_price), float(self.fairness_weight))
                vectors = self._map(pool, theta, data_refs, spec, keep, seeds, alive.tolist())
                if self.secure_aggregation:
                    # the round starts with every sampled client; the dropped ones never send
                    sa = SecureAggregationRound(int(sampled.size), vectors[0].size, sa_quorum, self.frac_bits,
                                                self.modulus_bits, secret_rng.integers(2**63))
                    slot = {int(k): i for i, k in enumerate(sampled)}
                    masked = {slot[int(k)]: sa.mask(slot[int(k)], v) for k, v in zip(alive, vectors)}
                    try:
                        total = sa.decode(sa.aggregate(masked))
                    except QuorumError:
                        row["aborted"] = True
                        rows.append(row)
                        continue
                else:
                    total = np.sum(vectors, axis=0)
                bits = self.modulus_bits if self.secure_aggregation else None
                n_extra = vectors[0].size - n_keep          # drift statistics and row count, never quantised
                row["upload_bytes"] = int(alive.size * (payload_bytes(n_keep, self.quantize_bits, bits)
                                                        + payload_bytes(n_extra, None, bits)))
                upd = total[:n_keep]
                if dp and self.noise_at == "server" and sigma > 0:
                    upd = upd + rng.normal(0.0, sigma * C, n_keep)
                gbar = np.zeros(d)
                if dp:
                    gbar[keep] = upd / denom
                    if self.dp_unit == "user":
                        gbar += self.local_lr * self.l2 * theta   # data-independent L2 step
                else:
                    gbar[keep] = upd / total[-1]
                if with_stats:
                    stats = total[n_keep:-1] / total[-1]
                    s0 = stats if s0 is None else s0
                    row["drift"] = float(np.linalg.norm(stats - s0))
                new_velocity, step = self._server_step(velocity, gbar, t)
                new_theta = theta - self.server_lr * step
                reject = not np.all(np.isfinite(new_theta))
                if val is not None:
                    row["val_loss"] = log_loss(new_theta, val.X, val.y) if not reject else math.inf
                    tol = self.rollback_tolerance
                    if tol is not None and row["val_loss"] > best_val * (1 + tol):
                        reject = True
                if self.max_drift is not None and row["drift"] > self.max_drift:
                    reject = True
                if reject:
                    consecutive += 1
                    self.n_rollbacks_ += 1
                    back_round, theta, velocity = self._restore()
                    row.update(rejected=True, rolled_back_to=back_round)
                    rows.append(row)
                    if consecutive >= self.max_rollbacks:
                        theta, self.fell_back_ = deployed.copy(), True
                        break
                    continue
                consecutive = 0
                theta, velocity = new_theta, new_velocity
                if val is not None:
                    best_val = min(best_val, row["val_loss"])
                self._checkpoint(t, theta, velocity)
                rows.append(row)
        finally:
            if progress is not None:
                progress.stop()
            if own_cluster is not None:
                pool.close()
                own_cluster.close()
        self.coef_ = theta
        self.history_ = pd.DataFrame(rows)
        used = self.history_.loc[~self.history_["aborted"], "upload_bytes"] if rows else pd.Series([], dtype=float)
        self.bytes_per_round_ = float(used.mean()) if len(used) else 0.0
        self.n_features_in_ = d
        return self

    # ------------------------------------------------------------------------------------------
    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Logit θᵀf."""
        return np.asarray(X, dtype=np.float64) @ self.coef_

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities, shape (n, 2) (scikit-learn layout); column 1 is p = σ(θᵀf)."""
        p = sigmoid(self.decision_function(X))
        return np.column_stack([1 - p, p])

    def loss(self, X: np.ndarray, y: np.ndarray) -> float:
        """Mean log-loss (no regularisation) on (X, y)."""
        return log_loss(self.coef_, np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64))

    def objective_terms(self, client_datasets: Sequence[ClientData]) -> dict[str, float]:
        """Row-weighted terms of the objective at ``coef_`` over ``client_datasets`` (an evaluation helper).

        Returns ``log_loss`` (unregularised), ``budget_spend`` b(θ), ``budget_penalty``
        λ(b(θ) − β) and ``fairness_gap`` Ψ_fed = Σ_k (n_k/N) Ψ_k (the per-client
        fairness term that is trained).
        """
        return objective_terms(self.coef_, client_datasets, float(self.budget_price),
                               float(self.budget_per_row or 0.0))


def objective_terms(theta: np.ndarray, client_datasets: Sequence[ClientData], budget_price: float = 0.0,
                    budget_per_row: float = 0.0) -> dict[str, float]:
    """Row-weighted log-loss, budget spend/penalty and per-client fairness gap of θ (see the method)."""
    clients = list(client_datasets)
    n = np.array([c.n for c in clients], dtype=np.float64)
    w = n / n.sum()
    spend = float(sum(wk * budget_spend(theta, c.X, c.costs) for wk, c in zip(w, clients)))
    return {"log_loss": float(sum(wk * log_loss(theta, c.X, c.y) for wk, c in zip(w, clients))),
            "budget_spend": spend, "budget_penalty": budget_price * (spend - budget_per_row),
            "fairness_gap": float(sum(wk * fairness_gap(theta, c.X, c.segment_index_, c.n_segments_)
                                      for wk, c in zip(w, clients)))}


__all__ = ["FederatedTrainer", "objective_terms"]
