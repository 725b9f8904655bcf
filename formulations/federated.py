r"""Federated, differentially private training of a logistic response model.

This module is the specification; :mod:`optimizer.federated` follows it.

Data and model
--------------
There are :math:`K` clients (regions, brands, legal entities). Client
:math:`k` holds rows :math:`(f_i, y_i)_{i \in D_k}` with features
:math:`f_i \in \mathbb{R}^d`, a binary response :math:`y_i \in \{0,1\}` and a
*user* (customer) id :math:`u(i)`; every user lives in exactly one client. The
response model is logistic, :math:`p_i = \sigma(\theta^\top f_i)`. With
:math:`N = \sum_k n_k` rows, the training objective is the L2-regularised
log-loss

.. math::

    L(\theta) = \sum_k \frac{n_k}{N} L_k(\theta), \qquad
    L_k(\theta) = \frac{1}{n_k}\sum_{i\in D_k} \ell(\theta; f_i, y_i)
                  + \frac{\lambda_2}{2}\lVert\theta\rVert^2,

    \ell(\theta; f, y) = -y\log\sigma(\theta^\top f) - (1-y)\log(1-\sigma(\theta^\top f)),
    \qquad \nabla_\theta \ell = (\sigma(\theta^\top f) - y)\, f .

The issue's planning objective :math:`J(\theta,\lambda,\gamma) = -E[u] +
\lambda^\top(b(\theta)-\beta) + \gamma\Psi(\theta)` uses the fitted response
model downstream (budget prices :math:`\lambda` and fairness weight
:math:`\gamma` belong to :mod:`formulations.lagrangian` and
:mod:`formulations.fairness`); by default the federated part learns :math:`\theta` by
minimising :math:`L`, i.e. :math:`-E[u]` enters only through the fitted
probabilities. The intercept is a column of ones in :math:`f`; :math:`\lambda_2`
also applies to it (keeps every local problem strongly convex).

Optional budget and fairness terms
----------------------------------
The budget and fairness terms of :math:`J` can be trained too. Every row may
carry a contact cost :math:`c_i \ge 0` (default 1) and a segment label
:math:`s(i)` (default: one segment). With :math:`p_i = \sigma(\theta^\top f_i)`
and :math:`\dot p_i = p_i(1-p_i)`:

* **Budget.** :math:`b(\theta) = \frac1N\sum_i c_i p_i` — the expected contact
  spend per row if every predicted responder is contacted; a single
  (scalar) budget with price :math:`\lambda \ge 0` (``budget_price``) and
  budget per row :math:`\beta` (``budget_per_row``). Penalty
  :math:`\lambda(b(\theta)-\beta)`, gradient :math:`\frac{\lambda}{N}\sum_i
  c_i \dot p_i f_i`; :math:`\beta` shifts the value only. :math:`b` is a mean
  over rows, so it splits exactly over clients:
  :math:`b = \sum_k \frac{n_k}{N} b_k`.
* **Fairness.** On a set of rows with segment shares :math:`w_s = n_s/n`,
  segment mean rates :math:`\bar p_s` and overall mean
  :math:`\bar p = \sum_s w_s \bar p_s`,

  .. math:: \Psi(\theta) = \sum_s w_s(\bar p_s - \bar p)^2, \qquad
            \nabla\Psi = \frac{2}{n}\sum_i (\bar p_{s(i)} - \bar p)\,\dot p_i\, f_i

  (the :math:`\nabla\bar p` part vanishes because
  :math:`\sum_s w_s(\bar p_s - \bar p) = 0`). :math:`\Psi` couples all rows of a
  segment, so a global :math:`\Psi` would need the segment sums of every client
  at the current :math:`\theta` (an extra secure-aggregation exchange per local
  step). **We use the per-client version instead**: client :math:`k` computes
  :math:`\Psi_k` on its own rows and segment shares, and the trained term is
  :math:`\Psi_{\mathrm{fed}} = \sum_k \frac{n_k}{N}\Psi_k` ("fair within every
  region"). It equals the global :math:`\Psi` when there is one client, and
  otherwise differs from it by the between-client part (segments whose mix
  varies across clients); it is not an unbiased estimate of the global
  :math:`\Psi`.

Client :math:`k`'s local objective becomes
:math:`L_k + \lambda(b_k - \beta) + \gamma\Psi_k`, so the FedAvg equivalence
below holds for :math:`L + \lambda(b-\beta) + \gamma\Psi_{\mathrm{fed}}`. The terms
are trained on the FedAvg/FedProx path (no DP or client-level DP); user-level
DP (per-user gradients) supports neither here (:math:`\Psi_k` is not a sum
over users; the budget term, which is, is simply not wired into that path),
and the trainer rejects that combination.

FedAvg and FedProx (one round :math:`t`)
---------------------------------------
1. The server samples a set :math:`S_t` of clients: client :math:`k` is
   included independently with probability :math:`\pi_k = \min(1, m\,q_k/\sum_j q_j)`
   (Poisson sampling, :math:`m` = expected clients per round, :math:`q_k`
   = user-given importance, default :math:`n_k`); if fewer than
   ``min_clients`` are drawn the draw is topped up uniformly. Dropouts
   (stragglers) then leave with probability ``dropout_rate``.
2. Each surviving client runs :math:`E` local epochs of full-batch gradient
   descent with step :math:`\eta_\ell` from :math:`\theta^t` on

   .. math:: h_k(w) = L_k(w) + \frac{\mu}{2}\lVert w-\theta^t\rVert^2

   (:math:`\mu = 0` is FedAvg, :math:`\mu>0` FedProx) and returns the update
   :math:`g_k = \theta^t - w_k` (a descent *displacement*).
3. The server forms :math:`\bar g = \sum_{k\in S_t} w_k g_k` with
   :math:`w_k = n_k / \sum_{j\in S_t} n_j`, and steps
   :math:`\theta^{t+1} = \theta^t - \eta_s\,v^{t+1}`,
   :math:`v^{t+1} = \beta v^t + \bar g` (server momentum :math:`\beta`, FedAvgM;
   :math:`\beta=0` is plain FedAvg).

**Equivalence.** With :math:`E=1`, :math:`\mu=0`, :math:`\beta=0`,
:math:`\eta_s=1`, full participation and no clipping/noise,
:math:`\bar g = \eta_\ell\sum_k \frac{n_k}{N}\nabla L_k(\theta^t) = \eta_\ell \nabla L(\theta^t)`:
one round is exactly one step of centralised gradient descent.

Differential privacy (clipping + Gaussian noise)
------------------------------------------------
Two privacy units are supported; both use the same arithmetic.

* ``dp_unit="client"`` (DP-FedAvg, McMahan et al. 2018): the protected unit is a
  whole client. Clip :math:`\tilde g_k = g_k\min(1, C/\lVert g_k\rVert)`.
* ``dp_unit="user"`` (user = customer, inside every client): each client draws
  every one of its users independently with probability :math:`q`, computes
  one gradient per sampled user at :math:`\theta^t`,
  :math:`a_u = \eta_\ell\sum_{i:u(i)=u}\nabla\ell(\theta^t; f_i, y_i)`, clips each
  to norm :math:`C` and sends the sum :math:`\tilde g_k = \sum_u \mathrm{clip}_C(a_u)`
  (one local step; the data-independent L2 term is added by the server).

The server never sees an individual :math:`\tilde g_k` (secure aggregation,
below); it sees only

.. math:: S_t = \sum_{k} \tilde g_k + z_t,\qquad z_t \sim N(0, \sigma^2 C^2 I_d),

and uses :math:`\bar g = S_t / m` with a **fixed** denominator :math:`m`
(expected number of sampled units: :math:`m=\sum_k\pi_k` clients, or
:math:`m = q\cdot N` rows for user DP; :math:`\eta_\ell\lambda_2\theta^t` is
added afterwards). Adding or removing one unit changes :math:`\sum\tilde g_k`
by at most :math:`C` in L2 norm (sensitivity :math:`C`) whatever the data,
because of the clip and because the denominator does not depend on who was
sampled; the noise std on the sum is :math:`\sigma C`, hence the effective
noise on the average update is :math:`\sigma C/m` — it shrinks with the number
of units per round while the privacy cost depends only on :math:`\sigma`, the
sampling rate and the number of rounds.

**Where the noise is added.** ``noise_at="server"``: once, by the aggregator,
to the securely aggregated sum before it is used or stored (trusted-aggregator
DP; the server sees the un-noised sum for an instant). ``noise_at="clients"``
(distributed DP): each surviving client adds :math:`N(0,\sigma^2C^2/Q)` to its
own clipped update *before* masking, where :math:`Q` is the secure-aggregation
quorum; since a round aborts with fewer than :math:`Q` survivors, the summed
noise has variance :math:`\ge \sigma^2C^2` and nobody (not even the server)
ever sees an un-noised sum. The privacy accountant (dp-accounting, RDP and PLD)
treats the :math:`T` rounds as the composition of :math:`T` Poisson-subsampled
Gaussian mechanisms with rate :math:`q` and noise multiplier :math:`\sigma`.

Secure aggregation (pairwise masks, fixed point modulo :math:`2^b`)
-------------------------------------------------------------------
Encode :math:`x \mapsto \bar x = \mathrm{round}(x\,2^F) \bmod 2^b` (two's complement,
:math:`b\in\{32,64\}`, :math:`F` fractional bits). Every pair :math:`i<j` of the
round's clients shares a seed :math:`s_{ij}` (in production from a
Diffie–Hellman key agreement; here drawn from each pair's private generator);
:math:`\mathrm{PRG}(s)` expands it into :math:`d` uniform words. Client
:math:`i` sends

.. math:: y_i = \bar x_i + \sum_{j>i}\mathrm{PRG}(s_{ij}) - \sum_{j<i}\mathrm{PRG}(s_{ij}) \pmod{2^b}.

Each :math:`y_i` alone is uniform on :math:`\mathbb{Z}_{2^b}^d` (a one-time pad)
whatever :math:`x_i`. For the survivors :math:`U` the masks between two
survivors cancel in :math:`\sum_{i\in U} y_i`; the masks shared with a dropped
client :math:`j` do not, so if :math:`|U|\ge Q` every survivor :math:`i` reveals
:math:`s_{ij}` for each dropped :math:`j` and the server subtracts
:math:`\pm\mathrm{PRG}(s_{ij})`, obtaining :math:`\sum_{i\in U}\bar x_i \bmod 2^b`
bit for bit. If :math:`|U|<Q` the round aborts before any seed is revealed.
Decoding maps words :math:`\ge 2^{b-1}` to negatives and divides by
:math:`2^F`; it is exact while :math:`|\sum x_i|\,2^F < 2^{b-1}`.
(Not simulated: Shamir sharing of the seeds and the self-masks of Bonawitz et
al. 2017 that protect against a client that is declared dropped and then
arrives late.)

Communication
-------------
Random sparsification with keep-probability :math:`p`:
:math:`\hat g_j = g_j\,\xi_j/p`, :math:`\xi_j\sim\mathrm{Bernoulli}(p)`, is
unbiased, :math:`E[\hat g] = g`. The keep-mask is shared by all clients of a
round (derived from the round seed), so secure aggregation still adds aligned
coordinates and no indices are sent. Optional 8-bit quantisation (stochastic
rounding to 256 levels between the vector's min and max) is unbiased too.
Under DP, compression is applied *before* clipping so the sensitivity stays
:math:`C`. Bytes per client per round: :math:`4d` dense float32; :math:`4pd`
sparse; :math:`pd + 8` with 8-bit; :math:`(b/8)\,pd` under secure aggregation.

Drift and safety
----------------
Client statistics :math:`s_t` (sample-weighted mean feature vector and
response rate of the round's clients, aggregated like the updates) are
tracked as :math:`d_t = \lVert s_t - s_0\rVert`. Every accepted round is a
checkpoint. If the validation loss exceeds ``(1 + rollback_tolerance)`` times
the best so far, or :math:`d_t` exceeds ``max_drift``, the round is rejected
and :math:`\theta` rolls back to the last good checkpoint; after
``max_rollbacks`` consecutive rejections training stops and the model falls
back to the last deployed one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from formulations.errors import InputError


@dataclass(frozen=True)
class ClientData:
    """One client's rows: features ``X`` (n, d), responses ``y`` in {0,1}, user ids.

    Validated once at construction; nothing downstream re-validates.

    Parameters
    ----------
    X : ndarray of shape (n, d)
        Features, finite; include a column of ones for the intercept.
    y : ndarray of shape (n,)
        0/1 responses.
    users : ndarray of shape (n,), optional
        Integer user (customer) ids; default: every row is its own user.
    name : str
        Client name (region, brand).
    costs : ndarray of shape (n,), optional
        Contact cost c_i >= 0 of every row (budget term); default 1 per row.
    segments : ndarray of shape (n,), optional
        Integer segment labels (fairness term); default: one segment.
    """

    X: np.ndarray
    y: np.ndarray
    users: np.ndarray | None = None
    name: str = "client"
    costs: np.ndarray | None = None
    segments: np.ndarray | None = None
    user_index_: np.ndarray = field(init=False, repr=False)
    n_users_: int = field(init=False, repr=False)
    segment_index_: np.ndarray | None = field(init=False, repr=False)
    n_segments_: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        X = np.ascontiguousarray(self.X, dtype=np.float64)
        if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
            raise InputError(f"{self.name}.X", f"expected a non-empty 2-D array (n, d), got shape {X.shape}")
        bad = np.argwhere(~np.isfinite(X))
        if bad.size:
            where = tuple(int(i) for i in bad[0])
            raise InputError(f"{self.name}.X", f"expected finite values, got {X[where]} at index {where}")
        y = np.asarray(self.y)
        if y.shape != (X.shape[0],):
            raise InputError(f"{self.name}.y", f"expected shape ({X.shape[0]},), got {y.shape}")
        off = np.flatnonzero((y != 0) & (y != 1))
        if off.size:
            raise InputError(f"{self.name}.y", f"expected 0/1 values, got {y[off[0]]} at index {int(off[0])}")
        users = np.arange(X.shape[0]) if self.users is None else np.asarray(self.users)
        if users.shape != (X.shape[0],) or not np.issubdtype(users.dtype, np.integer):
            raise InputError(f"{self.name}.users",
                             f"expected integer ids of shape ({X.shape[0]},), got {users.dtype} {users.shape}")
        _, index = np.unique(users, return_inverse=True)
        costs = None
        if self.costs is not None:
            costs = np.asarray(self.costs)
            if costs.shape != (X.shape[0],) or not np.issubdtype(costs.dtype, np.number):
                raise InputError(f"{self.name}.costs",
                                 f"expected numbers of shape ({X.shape[0]},), got {costs.dtype} {costs.shape}")
            costs = costs.astype(np.float64)
            off = np.flatnonzero(~np.isfinite(costs) | (costs < 0))
            if off.size:
                raise InputError(f"{self.name}.costs",
                                 f"expected finite values >= 0, got {costs[off[0]]} at index {int(off[0])}")
        seg_index, n_seg = None, 1
        if self.segments is not None:
            segments = np.asarray(self.segments)
            if segments.shape != (X.shape[0],) or not np.issubdtype(segments.dtype, np.integer):
                raise InputError(f"{self.name}.segments",
                                 f"expected integer labels of shape ({X.shape[0]},), got {segments.dtype} "
                                 f"{segments.shape}")
            _, seg_index = np.unique(segments, return_inverse=True)
            seg_index = seg_index.astype(np.int64)
            n_seg = int(seg_index.max()) + 1
            object.__setattr__(self, "segments", segments)
        object.__setattr__(self, "X", X)
        object.__setattr__(self, "y", y.astype(np.float64))
        object.__setattr__(self, "users", users)
        object.__setattr__(self, "costs", costs)
        object.__setattr__(self, "user_index_", index.astype(np.int64))
        object.__setattr__(self, "n_users_", int(index.max()) + 1)
        object.__setattr__(self, "segment_index_", seg_index)
        object.__setattr__(self, "n_segments_", n_seg)

    @property
    def n(self) -> int:
        """Number of rows."""
        return int(self.X.shape[0])

    @property
    def d(self) -> int:
        """Number of features."""
        return int(self.X.shape[1])

    def statistics(self) -> np.ndarray:
        """Client statistics :math:`s`: mean feature vector and response rate."""
        return np.append(self.X.mean(axis=0), self.y.mean())


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function."""
    out = np.empty_like(z, dtype=np.float64)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


def log_loss(theta: np.ndarray, X: np.ndarray, y: np.ndarray, l2: float = 0.0) -> float:
    """Mean log-loss :math:`\\frac1n\\sum\\ell + \\frac{\\lambda_2}{2}\\lVert\\theta\\rVert^2`."""
    z = X @ theta
    # log(1+e^z) - y z, stable
    loss = np.logaddexp(0.0, z) - y * z
    return float(loss.mean() + 0.5 * l2 * theta @ theta)


def log_loss_grad(theta: np.ndarray, X: np.ndarray, y: np.ndarray, l2: float = 0.0) -> np.ndarray:
    """Gradient of :func:`log_loss`: :math:`\\frac1n X^\\top(\\sigma(X\\theta)-y) + \\lambda_2\\theta`."""
    r = sigmoid(X @ theta) - y
    return X.T @ r / X.shape[0] + l2 * theta


def per_user_gradients(theta: np.ndarray, X: np.ndarray, y: np.ndarray, user_index: np.ndarray,
                       n_users: int) -> np.ndarray:
    """Per-user summed gradients :math:`\\sum_{i:u(i)=u}(\\sigma(\\theta^\\top f_i)-y_i) f_i`, shape (U, d)."""
    r = sigmoid(X @ theta) - y
    out = np.zeros((n_users, X.shape[1]))
    np.add.at(out, user_index, X * r[:, None])
    return out


def clip_rows(G: np.ndarray, clip_norm: float) -> np.ndarray:
    """Scale every row to L2 norm at most ``clip_norm`` (``inf`` = no clipping)."""
    if not np.isfinite(clip_norm):
        return G
    norms = np.linalg.norm(G, axis=-1, keepdims=True)
    return G * np.minimum(1.0, clip_norm / np.maximum(norms, 1e-300))


def _costs(data_costs: np.ndarray | None, n: int) -> np.ndarray:
    return np.ones(n) if data_costs is None else data_costs


def budget_spend(theta: np.ndarray, X: np.ndarray, costs: np.ndarray | None = None) -> float:
    """Budget use per row :math:`b(\\theta) = \\frac1n\\sum_i c_i\\sigma(\\theta^\\top f_i)` (c = 1 if None)."""
    return float(np.mean(_costs(costs, X.shape[0]) * sigmoid(X @ theta)))


def budget_spend_grad(theta: np.ndarray, X: np.ndarray, costs: np.ndarray | None = None) -> np.ndarray:
    """Gradient of :func:`budget_spend`: :math:`\\frac1n\\sum_i c_i p_i(1-p_i) f_i`."""
    p = sigmoid(X @ theta)
    return X.T @ (_costs(costs, X.shape[0]) * p * (1 - p)) / X.shape[0]


def budget_penalty(theta: np.ndarray, X: np.ndarray, costs: np.ndarray | None, price: float,
                   per_row: float = 0.0) -> float:
    """Budget term :math:`\\lambda(b(\\theta)-\\beta)` with price ``price`` and budget per row ``per_row``."""
    return float(price * (budget_spend(theta, X, costs) - per_row))


def fairness_gap(theta: np.ndarray, X: np.ndarray, segment_index: np.ndarray | None, n_segments: int) -> float:
    """:math:`\\Psi = \\sum_s w_s(\\bar p_s-\\bar p)^2` over the rows' segments (0 for one segment)."""
    if segment_index is None:
        return 0.0
    p = sigmoid(X @ theta)
    counts = np.bincount(segment_index, minlength=n_segments).astype(np.float64)
    present = counts > 0
    means = np.bincount(segment_index, weights=p, minlength=n_segments)[present] / counts[present]
    w = counts[present] / X.shape[0]
    return float(w @ (means - p.mean()) ** 2)


def fairness_gap_grad(theta: np.ndarray, X: np.ndarray, segment_index: np.ndarray | None,
                      n_segments: int) -> np.ndarray:
    """Gradient of :func:`fairness_gap`: :math:`\\frac2n\\sum_i(\\bar p_{s(i)}-\\bar p)p_i(1-p_i) f_i`."""
    if segment_index is None:
        return np.zeros(X.shape[1])
    p = sigmoid(X @ theta)
    counts = np.maximum(np.bincount(segment_index, minlength=n_segments), 1).astype(np.float64)
    means = np.bincount(segment_index, weights=p, minlength=n_segments) / counts
    r = 2.0 * (means[segment_index] - p.mean()) * p * (1 - p)
    return X.T @ r / X.shape[0]


def local_objective(theta: np.ndarray, data: ClientData, l2: float, budget_price: float = 0.0,
                    budget_per_row: float = 0.0, fairness_weight: float = 0.0) -> float:
    """Client objective :math:`L_k + \\lambda(b_k-\\beta) + \\gamma\\Psi_k` (no proximal term)."""
    value = log_loss(theta, data.X, data.y, l2)
    if budget_price:
        value += budget_penalty(theta, data.X, data.costs, budget_price, budget_per_row)
    if fairness_weight:
        value += fairness_weight * fairness_gap(theta, data.X, data.segment_index_, data.n_segments_)
    return value


def local_objective_grad(theta: np.ndarray, data: ClientData, l2: float, budget_price: float = 0.0,
                         fairness_weight: float = 0.0) -> np.ndarray:
    """Gradient of :func:`local_objective`; with both terms off it is exactly :func:`log_loss_grad`."""
    grad = log_loss_grad(theta, data.X, data.y, l2)
    if budget_price:
        grad = grad + budget_price * budget_spend_grad(theta, data.X, data.costs)
    if fairness_weight:
        grad = grad + fairness_weight * fairness_gap_grad(theta, data.X, data.segment_index_, data.n_segments_)
    return grad


def local_update(theta: np.ndarray, data: ClientData, epochs: int, lr: float, l2: float,
                 mu: float = 0.0, budget_price: float = 0.0, fairness_weight: float = 0.0) -> np.ndarray:
    """FedAvg/FedProx local training; returns the displacement :math:`g_k = \\theta - w_k`.

    ``budget_price`` (λ) and ``fairness_weight`` (γ) add the optional budget and
    fairness terms to the local objective (0 = plain log-loss, unchanged).
    """
    w = theta.copy()
    for _ in range(int(epochs)):
        grad = local_objective_grad(w, data, l2, budget_price, fairness_weight)
        if mu:
            grad = grad + mu * (w - theta)
        w = w - lr * grad
    return theta - w


def encode_fixed_point(x: np.ndarray, frac_bits: int, modulus_bits: int) -> np.ndarray:
    """Fixed-point words :math:`\\mathrm{round}(x 2^F) \\bmod 2^b` (two's complement)."""
    dtype = np.uint64 if modulus_bits == 64 else np.uint32
    scaled = np.rint(np.asarray(x, dtype=np.float64) * float(2 ** frac_bits))
    limit = float(2 ** (modulus_bits - 1))
    if np.any(np.abs(scaled) >= limit):
        raise InputError("update", f"value out of fixed-point range: |x|*2^{frac_bits} >= 2^{modulus_bits - 1}")
    return scaled.astype(np.int64).astype(dtype)


def decode_fixed_point(words: np.ndarray, frac_bits: int, modulus_bits: int) -> np.ndarray:
    """Inverse of :func:`encode_fixed_point` (words :math:`\\ge 2^{b-1}` are negative)."""
    signed = words.astype(np.int64) if modulus_bits == 64 else words.astype(np.int32).astype(np.int64)
    return signed.astype(np.float64) / float(2 ** frac_bits)


__all__ = ["ClientData", "sigmoid", "log_loss", "log_loss_grad", "per_user_gradients", "clip_rows",
           "budget_spend", "budget_spend_grad", "budget_penalty", "fairness_gap", "fairness_gap_grad",
           "local_objective", "local_objective_grad", "local_update", "encode_fixed_point", "decode_fixed_point"]
