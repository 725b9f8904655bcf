r"""Budget-constrained Lagrangian decision policy for real-time next-best-action.

The weekly plan (:mod:`formulations.assignment`) covers batch campaigns. Per
event (a customer opens the app, calls the contact centre) a decision is
needed in microseconds that still respects the week's budget and capacities.
This module is the specification of that policy; the numba kernels are in
:mod:`solvers._policy_kernels` (the NumPy functions below are their twins),
the price fitting and the online simulation in :mod:`solvers.policy`, the
runtime API in :mod:`optimizer.policy`.

Sets and data
-------------
contexts
    :math:`x \sim \mathcal D` (the traffic); a sample :math:`x_1..x_n`.
actions
    :math:`a \in \{0, 1, \dots, A\}`; :math:`a = 0` is *no contact*,
    :math:`1..A` are channel x offer combinations.
scores
    :math:`u(x, a)`: expected uplift value of action *a* in context *x*
    (column 0 is the value of not contacting, usually 0).
eligibility
    :math:`m(x, a) \in \{0, 1\}`; a score of :math:`-\infty` also marks an
    action that is not allowed. No contact is always eligible:
    :math:`m(x, 0) = 1` (a mask's column 0 is ignored), so a context whose
    actions are all ineligible gets action 0 with propensity 1.
resources
    :math:`k` rows; :math:`A_a \in \mathbb R^k_{\ge 0}` is the use of each
    resource by action *a* (money cost, one unit of a channel's capacity,
    ...), :math:`A_0 = 0`; :math:`b \in \mathbb R^k_{> 0}` the allowed
    *average* use per decision (budget / expected decisions, capacity share).
temperature
    :math:`\tau \ge 0`.

Policy
------
.. math::

    \pi_\lambda(a \mid x) = \frac{m(x,a)\, \exp\bigl((u(x,a) - \lambda^\top A_a)/\tau\bigr)}
                                 {\sum_b m(x,b)\, \exp\bigl((u(x,b) - \lambda^\top A_b)/\tau\bigr)}

a softmax over the eligible actions of the *reduced scores*
:math:`r_\lambda(x,a) = u(x,a) - \lambda^\top A_a`. As :math:`\tau \to 0` it
becomes the argmax policy (ties to the lowest action index); ``temperature=0``
is that policy exactly, with propensity 1.

Problem and Lagrangian
----------------------
.. math::

    \max_\pi \; \mathbb E_x\Bigl[\sum_a \pi(a|x)\, u(x,a) + \tau H(\pi(\cdot|x))\Bigr]
    \quad \text{s.t.} \quad \mathbb E_x\Bigl[\sum_a \pi(a|x) A_a\Bigr] \le b,

with :math:`H` the Shannon entropy (the regulariser whose maximiser is the
softmax; at :math:`\tau = 0` this is the LP relaxation of the per-event
assignment). The Lagrangian is
:math:`L(\pi, \lambda) = \mathbb E[u^\top\pi + \tau H(\pi)] - \lambda^\top(\mathbb E[A\pi] - b)`.
For fixed :math:`\lambda` it separates per context, and by the Gibbs
variational principle

.. math::

    \max_{\pi(\cdot|x)} \sum_a \pi_a r_\lambda(x,a) + \tau H(\pi)
    = \varphi_\tau(x, \lambda) = \tau \log \sum_a m(x,a)\, e^{r_\lambda(x,a)/\tau}
    \quad (\max_a r_\lambda(x,a) \text{ at } \tau = 0),

attained by :math:`\pi_\lambda`. The dual function

.. math::

    D(\lambda) = \lambda^\top b + \mathbb E_x[\varphi_\tau(x, \lambda)], \qquad \lambda \ge 0,

is **convex** in :math:`\lambda` (a log-sum-exp or a max of affine functions
of :math:`\lambda`, averaged). For :math:`\tau > 0` it is smooth with
:math:`\nabla D = b - \mathbb E[A \pi_\lambda]` and
:math:`\nabla^2 D = \tau^{-1}\,\mathbb E[\operatorname{Cov}_{\pi_\lambda}(A)] \succeq 0`;
at :math:`\tau = 0` it is piecewise linear and :math:`b - \mathbb E[A\pi_\lambda]`
is a subgradient. Weak duality: :math:`P(\pi) \le D(\lambda)` for every
feasible :math:`\pi` and :math:`\lambda \ge 0`; the gap at :math:`\lambda` is

.. math::

    D(\lambda) - P(\pi_\lambda) = \lambda^\top\bigl(b - \mathbb E[A\pi_\lambda]\bigr).

No contact is strictly feasible (:math:`A_0 = 0 < b`, Slater), so strong
duality holds: the optimal policy is :math:`\pi_{\lambda^*}` with
:math:`\lambda^* \in \arg\min_{\lambda \ge 0} D` and complementary slackness
:math:`\lambda^*_j\,(b_j - \mathbb E[A_j \pi_{\lambda^*}]) = 0` — each
constraint is tight or its price is 0 (slack).

Expected cost (closed form)
    For fixed :math:`\lambda`, the expected use per decision is
    :math:`\bar c(\lambda) = \frac1n \sum_i \sum_a \pi_\lambda(a|x_i)\, A_a`.

Price box
    Raising :math:`\lambda_j` beyond
    :math:`\bar\lambda_j = \max_{x,a:\,A_{ja}>0}
    \bigl(u(x,a) - u(x,0) + \tau \log^+ (N_j A_{ja}/b_j)\bigr)^+ / A_{ja}`
    (:math:`N_j` = number of actions using resource *j*) makes the expected
    use of *j* smaller than :math:`b_j` whatever the other prices, so
    :math:`\partial D/\partial\lambda_j > 0` there and
    :math:`0 \le \lambda^*_j \le \bar\lambda_j`.

Batch price (exact, with a bound)
---------------------------------
On a sample the dual :math:`D_n` is minimised over the box.

* :math:`k = 1`: the expected cost :math:`\bar c(\lambda)` is non-increasing
  (:math:`d\bar c/d\lambda = -\tau^{-1}\mathbb E[\operatorname{Var}_\pi(A)]`;
  at :math:`\tau = 0` each context's chosen cost cannot rise with the price).
  If :math:`\bar c(0) \le b` then :math:`\lambda^* = 0` (slack). Otherwise
  the root of :math:`\bar c(\lambda) = b` is bracketed in
  :math:`[0, \bar\lambda]` and found by Brent's method (:math:`\tau > 0`) or
  bisection (:math:`\tau = 0`, a step function: the smallest price with
  :math:`\bar c \le b`). The returned price is the feasible end of the final
  bracket; the certified gap is :math:`\lambda(b - \bar c(\lambda))`.
* :math:`k > 1`, :math:`\tau > 0`: :math:`D_n` is smooth; L-BFGS-B (scipy)
  over the box, stopped when the projected gradient — the constraint
  violation — is below the tolerance relative to each budget.
* :math:`k > 1`, :math:`\tau = 0`: the level bundle method of
  :mod:`solvers.bundle` over the box; the cutting-plane minimum is a lower
  bound on :math:`\min D_n`, the smallest evaluated :math:`D_n` an upper
  bound; it stops when they are within the tolerance.
* For :math:`k > 1` a feasible policy gives a further lower bound:
  :math:`\pi^\theta = (1-\theta)\pi_\lambda + \theta e_0` with
  :math:`\theta = \max_j (1 - b_j/\bar c_j)^+`, whose value is at least
  :math:`(1-\theta)P(\pi_\lambda) + \theta\,\mathbb E[u(x,0)]` (P is
  concave, :math:`H(e_0) = 0`).

Online price (projected dual ascent)
------------------------------------
Over a stream :math:`x_1, x_2, \dots` decide with the current prices, then

.. math::

    \lambda_{t+1} = \bigl[\lambda_t + \eta_t\,(g_t - b)\bigr]_+ , \qquad
    g_t = A_{a_t} \text{ (realised use, default) or } A\pi_{\lambda_t}(x_t) \text{ (expected)},

with a non-increasing step schedule :math:`\eta_t` (constant by default;
:math:`\eta_j = \text{step}\cdot\lambda^{\text{ref}}_j / b_j`, per resource).

Tracking result (deterministic, any traffic sequence, any draws). Since
:math:`\lambda_{t+1} \ge \lambda_t + \eta_t (g_t - b)`, summation by parts
gives for every window :math:`s \le t < T`

.. math::

    \sum_{t=s}^{T-1} (g_t - b) \;\le\; \frac{\lambda_T}{\eta_{T-1}} - \frac{\lambda_s}{\eta_s}
    \;\le\; \frac{\lambda_T}{\eta_{T-1}},

so the average over-use on any window of :math:`W` events is at most
:math:`\lambda_T/(\eta_{T-1} W)`. With a constant step and prices that stay
positive on the window (the budget binds), the update is never projected and
the sum is exactly :math:`(\lambda_T - \lambda_s)/\eta`, so the under-use is
bounded the same way: :math:`|\overline{g} - b| \le \max_t\lambda_t/(\eta W)`.
With realised feedback the bound holds for the realised spend itself; with
expected feedback it holds for the expected spend and the realised spend
differs by a martingale, :math:`O(\max_a A_a \sqrt{W})` (Azuma). A step
:math:`\eta \propto 1/\sqrt T` also gives :math:`O(\sqrt T)` regret
against the best fixed price in hindsight on i.i.d. traffic (Balseiro, Lu,
Mirrokni, *The best of many worlds: dual mirror descent for online
allocation problems*, Operations Research 2023); a constant step keeps
tracking a drifting optimal price.

Diversity and exploration (:mod:`formulations.policy_learning`)
---------------------------------------------------------------
* Diversity: :math:`s'(x,\cdot) = s(x,\cdot) - \gamma\, q(x)^\top Q`, with
  :math:`Q` the item similarity (:math:`(A+1)\times(A+1)`, row and column 0
  are ignored) and :math:`q(x)` the recent exposure of the unit.
* Exploration: upper-confidence scores :math:`u = \hat\mu + \kappa\hat\sigma`.
* Policy gradient for a linear score model :math:`u_\theta(x,a) = \phi(x,a)^\top\theta`
  on the Lagrangian reward :math:`\tilde r = r - \lambda^\top A_a`:
  :math:`G = (\tilde r - \beta(x))\,\nabla_\theta \log \pi(a|x)` with a
  baseline :math:`\beta`, where
  :math:`\nabla_\theta \log\pi(a|x) = (\phi(x,a) - \sum_b \pi_b \phi(x,b))/\tau`;
  its mean is the analytic gradient
  :math:`\mathbb E_x \sum_a \pi_a \bar r_a (\phi_a - \bar\phi)/\tau`.

Fallback
--------
A unit whose scores are missing (NaN or :math:`+\infty` on an eligible
action, or a non-finite no-contact score) or any unit while the model is
flagged stale gets the *fallback policy*: no contact (action 0, propensity
1) by default, or a fixed action distribution renormalised over the
eligible actions. See :mod:`optimizer.policy`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from formulations import _validate as v
from formulations.errors import InputError

# reason codes of a decision (Decision.reasons)
REASON_POLICY = 0          # drawn from the Lagrangian policy
REASON_MISSING = 1         # scores missing for the unit: fallback policy
REASON_STALE = 2           # model flagged stale: fallback policy
REASON_CONTROL = 3         # unit in the control / holdout group: no contact
REASON_NAMES = ("policy", "fallback_missing", "fallback_stale", "control")


@dataclass(frozen=True, eq=False)
class ResourceModel:
    """Resource use per action and the allowed average use per decision.

    Parameters
    ----------
    costs : array_like (A+1,) or (k, A+1)
        Use of each resource by each action; column 0 (no contact) must be 0.
        Non-negative and finite.
    budget : float or array_like (k,)
        Allowed average use per decision; positive and finite.
    names : sequence of str, optional
        Resource names (default ``budget`` for k = 1, else ``r0..``).
    """

    costs: np.ndarray
    budget: np.ndarray
    names: tuple = ()

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        c = v.numeric_array("costs", self.costs, ndim=(1, 2))
        if c.ndim == 1:
            c = c[None, :]
        k, a1 = c.shape
        if k == 0 or a1 < 2:
            raise InputError("costs", f"expected shape (A+1,) or (k, A+1) with A >= 1 and k >= 1, got {c.shape}")
        v.check_finite_nonnegative("costs", c)
        if (c[:, 0] != 0).any():
            j = int(np.flatnonzero(c[:, 0] != 0)[0])
            raise InputError("costs", f"expected 0 in column 0 (no contact), got {c[j, 0]!r} at index ({j}, 0)")
        b = np.atleast_1d(v.numeric_array("budget", self.budget, ndim=(0, 1)))
        if b.shape != (k,):
            raise InputError("budget", f"expected {'a number' if k == 1 else f'shape ({k},)'} "
                                       f"(one value per cost row), got shape {np.shape(self.budget)}")
        bad = ~np.isfinite(b) | (b <= 0)
        if bad.any():
            j = int(np.flatnonzero(bad)[0])
            raise InputError("budget", f"expected positive finite numbers (average use allowed per decision), "
                                       f"got {b[j]!r} at index {j}")
        default = ("budget",) if k == 1 else tuple(f"r{j}" for j in range(k))
        names = v.labels("names", list(self.names) if self.names else None, length=k, default=default)
        set_(self, "costs", np.ascontiguousarray(c, dtype=np.float64))
        set_(self, "budget", np.ascontiguousarray(b, dtype=np.float64))
        set_(self, "names", tuple(str(x) for x in names))

    @property
    def n_resources(self) -> int:
        return int(self.costs.shape[0])

    @property
    def n_columns(self) -> int:
        """A + 1: actions including no contact."""
        return int(self.costs.shape[1])

    def price_cost(self, prices: np.ndarray) -> np.ndarray:
        r"""The price of each action, :math:`\lambda^\top A_a` (A+1,)."""
        return np.asarray(prices, dtype=np.float64) @ self.costs


def check_temperature(value: Any) -> float:
    """A finite temperature >= 0 (0 = argmax policy)."""
    try:
        t = float(value)
    except (TypeError, ValueError):
        raise InputError("temperature", f"expected a number >= 0, got {value!r}") from None
    if not np.isfinite(t) or t < 0:
        raise InputError("temperature", f"expected a finite number >= 0 (0 = argmax policy), got {value!r}")
    return t


def check_prices(value: Any, k: int, field: str = "prices") -> np.ndarray:
    """k non-negative finite prices as float64."""
    p = np.atleast_1d(v.numeric_array(field, value, ndim=(0, 1)))
    if p.shape != (k,):
        raise InputError(field, f"expected {k} price(s) (one per cost row), got shape {p.shape}")
    v.check_finite_nonnegative(field, p)
    return np.ascontiguousarray(p, dtype=np.float64)


def check_scores(value: Any, n_columns: int, field: str = "scores") -> np.ndarray:
    """A (n, A+1) score array (a single row (A+1,) becomes (1, A+1)); float32 is kept.

    NaN and infinities are allowed here (they select the fallback or mark an
    action as not allowed); the shape and the numeric type are checked.
    """
    arr = v.numeric_array(field, value, ndim=(1, 2), keep_float32=True)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.shape[1] != n_columns:
        raise InputError(field, f"expected shape (n, {n_columns}) (column 0 = no contact, one column per action "
                                f"of costs), got {arr.shape}")
    return arr


def check_eligible(value: Any, shape: tuple[int, int], field: str = "eligible") -> np.ndarray | None:
    """A boolean mask of ``shape`` (None = everything eligible)."""
    if value is None:
        return None
    e = np.asarray(value)
    if e.ndim == 1 and shape[0] == 1:
        e = e[None, :]
    if e.dtype != np.bool_:
        if e.dtype.kind in "iu" and (e.size == 0 or ((e == 0) | (e == 1)).all()):
            e = e.astype(bool)
        else:
            raise InputError(field, f"expected a boolean mask, got values of type {e.dtype}")
    if e.shape != shape:
        raise InputError(field, f"expected shape {shape} (the shape of scores), got {e.shape}")
    return e


# ---------------------------------------------------------------------------
# NumPy reference (twins of the kernels in solvers._policy_kernels)
# ---------------------------------------------------------------------------

def allowed_mask(scores: np.ndarray, eligible: np.ndarray | None) -> np.ndarray:
    """m(x, a): eligible, score not -inf; column 0 always allowed."""
    ok = scores != -np.inf
    if eligible is not None:
        ok &= eligible
    ok[:, 0] = True
    return ok


def missing_rows(scores: np.ndarray, eligible: np.ndarray | None) -> np.ndarray:
    """Rows whose scores are missing: NaN/+inf on an allowed action or a non-finite column 0."""
    ok = allowed_mask(scores, eligible)
    bad = (np.isnan(scores) | np.isposinf(scores)) & ok
    return bad.any(axis=1) | ~np.isfinite(scores[:, 0])


def reduced_scores(scores: np.ndarray, eligible: np.ndarray | None, price_cost: np.ndarray) -> np.ndarray:
    """r(x, a) = u(x, a) - lambda^T A_a on allowed actions, -inf elsewhere (float64)."""
    r = scores.astype(np.float64) - np.asarray(price_cost, dtype=np.float64)[None, :]
    return np.where(allowed_mask(scores, eligible), r, -np.inf)


def policy_weights(scores: np.ndarray, eligible: np.ndarray | None, price_cost: np.ndarray,
                   temperature: float) -> np.ndarray:
    """Unnormalised softmax weights exp((r - max r)/tau) (one-hot argmax at tau = 0)."""
    r = reduced_scores(scores, eligible, price_cost)
    best = r.max(axis=1, keepdims=True)
    if temperature == 0.0:
        w = np.zeros_like(r)
        w[np.arange(r.shape[0]), np.argmax(r, axis=1)] = 1.0     # first maximum: lowest index
        return w
    with np.errstate(invalid="ignore", over="ignore"):
        return np.where(np.isfinite(r), np.exp((r - best) / temperature), 0.0)


def policy_probabilities(scores: np.ndarray, eligible: np.ndarray | None, price_cost: np.ndarray,
                         temperature: float) -> np.ndarray:
    """pi_lambda(a | x) for every row (n, A+1); rows with missing scores are NaN."""
    w = policy_weights(scores, eligible, price_cost, temperature)
    with np.errstate(invalid="ignore"):
        p = w / np.cumsum(w, axis=1)[:, -1:]
    p[missing_rows(scores, eligible)] = np.nan
    return p


def draw_actions(weights: np.ndarray, uniforms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse-CDF draw: the first action whose cumulative weight exceeds ``uniform * total``.

    Returns (actions, propensities). Same rule as the kernel (sequential sums).
    """
    cum = np.cumsum(weights, axis=1)
    total = cum[:, -1]
    target = np.asarray(uniforms, dtype=np.float64) * total
    above = cum > target[:, None]
    # guard against rounding at the top end: fall back to the last action with weight
    last = weights.shape[1] - 1 - np.argmax((weights > 0)[:, ::-1], axis=1)
    actions = np.where(above.any(axis=1), np.argmax(above, axis=1), last)
    props = weights[np.arange(weights.shape[0]), actions] / total
    return actions.astype(np.int64), props


@dataclass(frozen=True)
class DualPoint:
    """D(lambda) on a sample and the pieces of its gradient.

    Attributes
    ----------
    value : float
        D(lambda) = lambda^T b + mean phi_tau.
    expected_use : ndarray (k,)
        Mean expected resource use E[A pi_lambda] (the closed form).
    primal : float
        P(pi_lambda) = mean (u^T pi + tau H(pi)).
    gradient : ndarray (k,)
        b - expected_use.
    """

    value: float
    expected_use: np.ndarray
    primal: float
    gradient: np.ndarray


def dual_point(scores: np.ndarray, eligible: np.ndarray | None, resources: ResourceModel, prices: np.ndarray,
               temperature: float) -> DualPoint:
    """Evaluate D, the expected use and P at ``prices`` (rows with missing scores must be removed first)."""
    prices = np.asarray(prices, dtype=np.float64)
    r = reduced_scores(scores, eligible, resources.price_cost(prices))
    best = r.max(axis=1)
    if temperature == 0.0:
        a = np.argmax(r, axis=1)
        pi = np.zeros_like(r)
        pi[np.arange(r.shape[0]), a] = 1.0
        phi = best
        entropy = np.zeros(r.shape[0])
    else:
        with np.errstate(invalid="ignore"):
            z = np.where(np.isfinite(r), (r - best[:, None]) / temperature, -np.inf)
        w = np.exp(z)
        total = w.sum(axis=1)
        pi = w / total[:, None]
        phi = best + temperature * np.log(total)
        with np.errstate(invalid="ignore"):
            entropy = -np.sum(np.where(pi > 0, pi * (z - np.log(total)[:, None]), 0.0), axis=1)
    u = np.where(pi > 0, scores.astype(np.float64), 0.0)
    use = (pi @ resources.costs.T).mean(axis=0)
    primal = float(np.mean(np.sum(pi * u, axis=1) + temperature * entropy))
    value = float(prices @ resources.budget + phi.mean())
    return DualPoint(value, use, primal, resources.budget - use)


def price_upper_bounds(scores: np.ndarray, eligible: np.ndarray | None, resources: ResourceModel,
                       temperature: float) -> np.ndarray:
    r"""The price box :math:`\bar\lambda_j` of the module docstring (k,), at least a tiny positive number."""
    ok = allowed_mask(scores, eligible)
    ok[:, 0] = False
    finite = ok & np.isfinite(scores)
    delta = np.where(finite, scores.astype(np.float64) - scores[:, :1].astype(np.float64), -np.inf)
    best_delta = delta.max(axis=0) if delta.shape[0] else np.full(delta.shape[1], -np.inf)
    out = np.zeros(resources.n_resources)
    for j in range(resources.n_resources):
        use = resources.costs[j]
        cols = np.flatnonzero(use > 0)
        for a in cols:
            if not np.isfinite(best_delta[a]):
                continue
            slack = temperature * max(0.0, float(np.log(cols.size * use[a] / resources.budget[j])))
            out[j] = max(out[j], (max(best_delta[a], 0.0) + slack) / use[a])
    return np.maximum(out * (1.0 + 1e-9), 1e-12)


def online_dual_ascent(scores: np.ndarray, eligible: np.ndarray | None, resources: ResourceModel,
                       start_prices: np.ndarray, steps: np.ndarray, temperature: float, uniforms: np.ndarray,
                       realised: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Plain-loop twin of the online kernel: decide, then lambda <- [lambda + eta (g - b)]_+.

    Rows with missing scores take no contact and still update the prices.
    Returns (actions, propensities, prices after each event (n, k)).
    """
    n = scores.shape[0]
    lam = np.asarray(start_prices, dtype=np.float64).copy()
    actions = np.zeros(n, dtype=np.int64)
    props = np.ones(n)
    path = np.zeros((n, resources.n_resources))
    missing = missing_rows(scores, eligible)
    for t in range(n):
        row = scores[t:t + 1]
        elig = None if eligible is None else eligible[t:t + 1]
        if missing[t]:
            use = np.zeros(resources.n_resources)
        else:
            w = policy_weights(row, elig, resources.price_cost(lam), temperature)
            a, p = draw_actions(w, uniforms[t:t + 1])
            actions[t], props[t] = a[0], p[0]
            use = resources.costs[:, a[0]] if realised else (w[0] / w[0].sum()) @ resources.costs.T
        lam = np.maximum(lam + steps * (use - resources.budget), 0.0)
        path[t] = lam
    return actions, props, path
