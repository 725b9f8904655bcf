"""What one client computes in a round (a plain function, so Dask can ship it to a worker).

Returns the vector the client would upload (before masking): the kept update
coordinates, then — for drift tracking — its row-weighted statistics and its
row count. Randomness comes from a seed derived from (random_state, round,
client), so the in-process loop and Dask produce identical numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from formulations.federated import ClientData, clip_rows, local_update, per_user_gradients
from optimizer.federated.compression import dequantize_8bit, quantize_8bit, sparsify


@dataclass(frozen=True)
class RoundSpec:
    """Everything a client needs to know about the round (no data)."""

    round: int
    local_epochs: int
    local_lr: float
    l2: float
    mu: float
    dp_unit: str
    dp: bool
    user_sampling_rate: float
    clip_norm: float
    client_noise_std: float          # std of the noise this client adds (noise_at="clients"), else 0
    keep_prob: float
    quantize_bits: int | None
    with_stats: bool
    budget_price: float = 0.0        # λ of the optional budget term (0 = off)
    fairness_weight: float = 0.0     # γ of the optional fairness term (0 = off)


def client_contribution(theta: np.ndarray, data: ClientData, spec: RoundSpec, keep: np.ndarray,
                        seed: np.random.SeedSequence, index: int,
                        hook: Callable[[int, int, np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """Upload vector of client ``index`` for this round (see module docstring).

    Layout: ``[update on kept coordinates, (n_k * s_k, n_k) if spec.with_stats]``.
    Without DP the update is ``n_k * g_k`` (the server divides by Σ n_k);
    under DP it is the clipped (and, with ``noise_at="clients"``, noised) update.
    """
    rng = np.random.default_rng(seed)
    if spec.dp and spec.dp_unit == "user":
        sampled_users = rng.random(data.n_users_) < spec.user_sampling_rate
        rows = sampled_users[data.user_index_]
        if rows.any():
            G = per_user_gradients(theta, data.X[rows], data.y[rows], data.user_index_[rows], data.n_users_)
            G = G[np.unique(data.user_index_[rows])] * spec.local_lr
        else:
            G = np.zeros((0, data.d))
        G = G[:, keep] / spec.keep_prob if spec.keep_prob < 1 else G[:, keep]
        update = clip_rows(G, spec.clip_norm).sum(axis=0) if G.shape[0] else np.zeros(int(keep.sum()))
    else:
        g = local_update(theta, data, spec.local_epochs, spec.local_lr, spec.l2, spec.mu, spec.budget_price,
                         spec.fairness_weight)
        update = sparsify(g, keep, spec.keep_prob)
        if spec.dp:
            update = clip_rows(update, spec.clip_norm)
        else:
            update = data.n * update
    if hook is not None:   # a faulty or malicious client may send anything (it skips its own clipping)
        update = np.asarray(hook(spec.round, index, update), dtype=np.float64)
    if spec.quantize_bits == 8:
        update = dequantize_8bit(*quantize_8bit(update, rng))
    if spec.client_noise_std > 0:
        update = update + rng.normal(0.0, spec.client_noise_std, update.size)
    if spec.with_stats:
        return np.concatenate([update, data.n * data.statistics(), [data.n]])
    return update


__all__ = ["RoundSpec", "client_contribution"]
