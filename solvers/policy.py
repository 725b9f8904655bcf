"""Batch decisions, exact batch prices and the online price of the Lagrangian policy.

The maths (policy, dual, price box, bounds, tracking result) is in
:mod:`formulations.policy`; the kernels are in :mod:`solvers._policy_kernels`.

* :func:`decide_batch` — one decision per row at fixed prices (parallel
  numba kernel above :data:`SERIAL_BELOW` rows, a serial one below: thread
  start-up would dominate a single decision).
* :func:`evaluate` — the dual function D, the expected use (closed form) and
  the primal value at fixed prices, over a sample.
* :func:`fit_prices` — the batch price: ``argmin_{lambda >= 0} D`` by an exact
  bracketed root search for one resource (Brent's method for tau > 0,
  bisection for the step function at tau = 0), for several by L-BFGS-B on
  the smooth dual (tau > 0) or the level bundle method of
  :mod:`solvers.bundle` (tau = 0); always with a certified interval
  ``[lower_bound, dual_value]`` around the optimal (regularised) value.
* :func:`run_online` — sequential decisions with projected dual ascent (the
  kernel runs the whole stream; used by benchmarks and the CLI).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from formulations.errors import InputError
from formulations.policy import DualPoint, ResourceModel, missing_rows, price_upper_bounds
from solvers import _policy_kernels as K

NAME = "policy"
CHUNK = 4096                # rows per parallel work item
SERIAL_BELOW = 65_536       # decision batches smaller than this use the serial kernel
EVALUATE_PARALLEL = 262_144  # dual evaluations on at least this many rows use the parallel kernel
# A parallel region costs a thread hand-off; on a loaded machine that was measured at tens of
# milliseconds (20,000 rows: 0.5 ms serial, 50-80 ms parallel), so small inputs stay on one thread.
BUNDLE_GAP = 1e-6     # relative dual interval at which the bundle method (tau = 0, k > 1) stops
NO_MASK = np.ones((1, 1), dtype=np.bool_)


def is_available() -> bool:
    return True


def kernel_inputs(scores: np.ndarray, eligible: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, bool]:
    """C-contiguous scores (float32 kept, other types float64) and mask (a dummy when None)."""
    if scores.dtype not in (np.float32, np.float64):
        scores = scores.astype(np.float64)
    scores = np.ascontiguousarray(scores)
    if eligible is None:
        return scores, NO_MASK, False
    return scores, np.ascontiguousarray(eligible, dtype=np.bool_), True


@dataclass(frozen=True, eq=False)
class BatchDecisions:
    """Kernel output: one action, its propensity and the reason code per row."""

    actions: np.ndarray        # (n,) int64
    propensities: np.ndarray   # (n,) float64
    reasons: np.ndarray        # (n,) int8, see formulations.policy.REASON_NAMES


def decide_batch(scores: np.ndarray, eligible: np.ndarray | None, price_cost: np.ndarray, temperature: float,
                 uniforms: np.ndarray, fallback: np.ndarray, force_fallback: bool = False,
                 parallel: bool | None = None) -> BatchDecisions:
    """Decide every row at fixed prices.

    Parameters
    ----------
    scores : ndarray (n, A+1)
        float32 or float64, validated by the caller.
    eligible : ndarray of bool (n, A+1) or None
    price_cost : ndarray (A+1,)
        lambda^T A_a per action.
    temperature : float
    uniforms : ndarray (n,)
        Draws in [0, 1).
    fallback : ndarray (A+1,)
        Fallback action distribution (e_0 = no contact).
    force_fallback : bool
        Use the fallback for every row (model flagged stale).
    parallel : bool, optional
        Force the parallel (True) or serial (False) kernel; default by size.
    """
    s, e, has_mask = kernel_inputs(scores, eligible)
    n = s.shape[0]
    actions = np.empty(n, dtype=np.int64)
    props = np.empty(n, dtype=np.float64)
    reasons = np.empty(n, dtype=np.int8)
    u = np.ascontiguousarray(uniforms, dtype=np.float64)
    if parallel is None:
        parallel = n >= SERIAL_BELOW
    if parallel:
        K.decide_parallel(s, e, has_mask, price_cost, float(temperature), u, fallback, bool(force_fallback),
                          actions, props, reasons, CHUNK)
    else:
        K.decide_serial(s, e, has_mask, price_cost, float(temperature), u, fallback, bool(force_fallback),
                        actions, props, reasons)
    return BatchDecisions(actions, props, reasons)


def evaluate(scores: np.ndarray, eligible: np.ndarray | None, resources: ResourceModel, prices: np.ndarray,
             temperature: float) -> DualPoint:
    """D(prices), the mean expected use and P(pi) over rows (kernel twin of ``formulations.policy.dual_point``)."""
    s, e, has_mask = kernel_inputs(scores, eligible)
    n = s.shape[0]
    prices = np.ascontiguousarray(prices, dtype=np.float64)
    price_cost = resources.price_cost(prices)
    if n >= EVALUATE_PARALLEL:
        phi, use, primal = K.evaluate_prices(s, e, has_mask, resources.costs, price_cost, float(temperature), CHUNK)
    else:
        phi, use, primal = K.evaluate_prices_serial(s, e, has_mask, resources.costs, price_cost, float(temperature))
    use = use / n
    value = float(prices @ resources.budget + phi / n)
    return DualPoint(value, use, float(primal / n), resources.budget - use)


@dataclass
class PriceFit:
    """The batch price and the numbers that certify it.

    Attributes
    ----------
    prices : ndarray (k,)
        The fitted prices (the feasible end of the final bracket for k = 1).
    dual_value : float
        D(prices): an upper bound on the optimal regularised value per decision.
    lower_bound : float
        A lower bound on that optimum (value of a feasible policy, or the
        cutting-plane minimum).
    gap : float
        ``(dual_value - lower_bound) / max(|dual_value|, 1e-12)``.
    expected_use : ndarray (k,)
        Mean expected use per decision at ``prices`` (closed form).
    budget : ndarray (k,)
    slack : ndarray of bool (k,)
        True where the constraint does not bind (price 0 and use <= budget).
    bracket : tuple of float or None
        Final (infeasible, feasible) price bracket for k = 1.
    price_box : ndarray (k,)
        Upper bounds of the search box.
    method : str
        ``slack``, ``brent``, ``bisection`` or ``level-bundle``.
    iterations : int
        Dual evaluations.
    n_contexts, n_skipped : int
        Rows used and rows skipped for missing scores.
    wall_time : float
    """

    prices: np.ndarray
    dual_value: float
    lower_bound: float
    gap: float
    expected_use: np.ndarray
    budget: np.ndarray
    slack: np.ndarray
    bracket: tuple | None
    price_box: np.ndarray
    method: str
    iterations: int
    n_contexts: int
    n_skipped: int
    wall_time: float
    history: list = field(default_factory=list, repr=False)

    @property
    def tightness(self) -> np.ndarray:
        """Relative use against budget, ``expected_use / budget - 1`` (0 = tight)."""
        return self.expected_use / self.budget - 1.0


def _relative_gap(upper: float, lower: float) -> float:
    return max(upper - lower, 0.0) / max(abs(upper), 1e-12)


def _shrunk_lower_bound(point: DualPoint, budget: np.ndarray, no_contact_value: float) -> float:
    """Value of (1 - theta) pi + theta e_0, theta = max_j (1 - b_j / use_j)^+ (a feasible policy)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(point.expected_use > budget, 1.0 - budget / point.expected_use, 0.0)
    theta = float(np.max(ratio)) if ratio.size else 0.0
    return (1.0 - theta) * point.primal + theta * no_contact_value


def fit_prices(scores: np.ndarray, eligible: np.ndarray | None, resources: ResourceModel, temperature: float, *,
               start: np.ndarray | None = None, rel_tol: float = 1e-9, max_iter: int = 300) -> PriceFit:
    """Minimise the dual D over lambda >= 0 on a sample of contexts (see the module docstring).

    Rows with missing scores are skipped (counted in ``n_skipped``).
    """
    t0 = time.perf_counter()
    missing = missing_rows(scores, eligible)
    skipped = int(missing.sum())
    if skipped:
        scores = scores[~missing]
        eligible = None if eligible is None else eligible[~missing]
    n = int(scores.shape[0])
    if n == 0:
        raise InputError("scores", "expected at least one row with complete scores to fit prices")
    box = price_upper_bounds(scores, eligible, resources, temperature)
    no_contact = float(np.mean(scores[:, 0], dtype=np.float64))
    b = resources.budget
    k = resources.n_resources
    history: list = []

    def ev(p: np.ndarray) -> DualPoint:
        point = evaluate(scores, eligible, resources, p, temperature)
        history.append((p.copy(), point.value, point.expected_use.copy()))
        return point

    zero = np.zeros(k)
    p0 = ev(zero)
    if (p0.expected_use <= b).all():          # lambda = 0 is optimal: every constraint is slack
        return PriceFit(zero, p0.value, p0.primal, _relative_gap(p0.value, p0.primal), p0.expected_use, b,
                        np.ones(k, bool), None, box, "slack", 1, n, skipped, time.perf_counter() - t0, history)
    if k == 1:
        fit = _fit_one(ev, history, box[0], b[0], temperature, rel_tol, max_iter)
    elif temperature > 0.0:
        fit = _fit_smooth(ev, p0, box, b, no_contact, start, rel_tol, max_iter)
    else:
        fit = _fit_bundle(ev, p0, box, b, no_contact, start, max(rel_tol, BUNDLE_GAP), max_iter)
    prices, point, lower, bracket, method = fit
    slack = (prices == 0) & (point.expected_use <= b)
    return PriceFit(prices, point.value, lower, _relative_gap(point.value, lower), point.expected_use, b, slack,
                    bracket, box, method, len(history), n, skipped, time.perf_counter() - t0, history)


def _fit_one(ev, history: list, top: float, b: float, temperature: float, rel_tol: float, max_iter: int):
    """k = 1: the root of use(lambda) = b in [0, top]; returns the feasible end of the bracket."""
    lo, hi = 0.0, float(top)
    p_hi = ev(np.array([hi]))
    while p_hi.expected_use[0] > b and hi < 1e300:   # cannot happen for a valid box; stay honest anyway
        lo, hi = hi, hi * 4.0
        p_hi = ev(np.array([hi]))
    if temperature > 0.0:
        from scipy.optimize import brentq

        # Brent converges superlinearly on the smooth use(lambda): ask for (nearly) machine precision
        xtol = max(1e-15 * hi, 1e-300)
        root = brentq(lambda lam: ev(np.array([lam])).expected_use[0] - b, lo, hi, xtol=xtol,
                      rtol=max(min(rel_tol, 1e-12), 4 * np.finfo(float).eps), maxiter=max_iter)
        point = ev(np.array([root]))
        step = max(xtol, 4 * np.finfo(float).eps * root)
        while point.expected_use[0] > b and root < hi:   # step to the feasible side of the root
            root = min(root + step, hi)
            step *= 2.0
            point = ev(np.array([root]))
        if root >= hi:
            root, point = hi, p_hi
        lo = max([lo] + [float(p[0]) for p, _, use in history if use[0] > b and p[0] <= root])
        hi, hi_point, method = root, point, "brent"
    else:
        hi_point = p_hi
        for _ in range(max_iter):
            if hi - lo <= rel_tol * hi:      # bracket relative to the price itself
                break
            mid = 0.5 * (lo + hi)
            pm = ev(np.array([mid]))
            if pm.expected_use[0] > b:
                lo = mid
            else:
                hi, hi_point = mid, pm
        method = "bisection"
    # pi at the feasible end is a feasible policy: its value is a lower bound
    return np.array([hi]), hi_point, hi_point.primal, (float(lo), float(hi)), method


def _fit_smooth(ev, p0: DualPoint, box: np.ndarray, b: np.ndarray, no_contact: float, start, rel_tol: float,
                max_iter: int):
    """k > 1, tau > 0: D is smooth and convex; L-BFGS-B over y = lambda / box in [0, 1]^k.

    The projected-gradient tolerance makes every constraint tight to about
    ``rel_tol`` relative to its budget (or its price 0).
    """
    from scipy.optimize import minimize

    k = box.size
    cache: dict = {}

    def fun(y: np.ndarray):
        point = ev(np.clip(y, 0.0, 1.0) * box)
        cache[y.tobytes()] = point
        return point.value, point.gradient * box

    y0 = np.zeros(k) if start is None else np.clip(np.asarray(start, dtype=np.float64) / box, 0.0, 1.0)
    gtol = rel_tol * float(np.min(b * box))
    out = minimize(fun, y0, jac=True, method="L-BFGS-B", bounds=[(0.0, 1.0)] * k,
                   options={"maxiter": max_iter, "gtol": gtol, "ftol": 1e-16, "maxcor": 20})
    y = np.clip(out.x, 0.0, 1.0)
    point = cache.get(out.x.tobytes()) or ev(y * box)
    best = point if point.value <= p0.value else p0
    lower = max(_shrunk_lower_bound(point, b, no_contact), _shrunk_lower_bound(p0, b, no_contact))
    prices = y * box if best is point else np.zeros(k)
    return prices, best, lower, None, "l-bfgs-b"


def _fit_bundle(ev, p0: DualPoint, box: np.ndarray, b: np.ndarray, no_contact: float, start, rel_tol: float,
                max_iter: int):
    """k > 1: level bundle method over y = lambda / box in [0, 1]^k."""
    from solvers.bundle import LevelBundle

    k = box.size
    bundle = LevelBundle(k, alpha=0.3, upper=np.ones(k))
    y = np.zeros(k) if start is None else np.clip(np.asarray(start, dtype=np.float64) / box, 0.0, 1.0)
    best_f, best_y, best_point = p0.value, np.zeros(k), p0
    bundle.add_cut(np.zeros(k), p0.value, p0.gradient * box)
    f_low = max(-math.inf, _shrunk_lower_bound(p0, b, no_contact))
    for _ in range(max_iter):
        point = ev(y * box)
        if point.value < best_f:
            best_f, best_y, best_point = point.value, y, point
        bundle.add_cut(y, point.value, point.gradient * box)
        f_low = max(f_low, bundle.model_minimum(), _shrunk_lower_bound(point, b, no_contact))
        if best_f - f_low <= rel_tol * max(abs(best_f), 1e-12):
            break
        y_next = None
        for _ in range(60):
            level = f_low + bundle.alpha * (best_f - f_low)
            outcome, y_next = bundle.project(best_y, level)
            if outcome == "ok":
                break
            if outcome == "failed":
                y_next = bundle.model_minimizer()
                break
            f_low = level          # empty level set: min D > level
            y_next = None
            if best_f - f_low <= rel_tol * max(abs(best_f), 1e-12):
                break
        if y_next is None:
            break
        y = y_next
    return best_y * box, best_point, f_low, None, "level-bundle"


def step_sizes(step: float, reference_prices: np.ndarray, price_box: np.ndarray, budget: np.ndarray) -> np.ndarray:
    """Absolute dual-ascent steps eta_j = step * ref_j / b_j, ref_j = max(lambda_j, 1% of the price box)."""
    ref = np.maximum(np.asarray(reference_prices, dtype=np.float64), 0.01 * np.asarray(price_box, dtype=np.float64))
    return float(step) * ref / np.asarray(budget, dtype=np.float64)


@dataclass
class OnlineRun:
    """Result of :func:`run_online`.

    Attributes
    ----------
    actions, propensities, reasons : ndarray (n,)
    final_prices : ndarray (k,)
    price_path : ndarray (r, k)
        Prices after events ``record_every, 2 record_every, ...``.
    cumulative_use : ndarray (r, k)
        Realised use summed from the first event to the same points.
    record_every : int
    wall_time : float
    """

    actions: np.ndarray
    propensities: np.ndarray
    reasons: np.ndarray
    final_prices: np.ndarray
    price_path: np.ndarray
    cumulative_use: np.ndarray
    record_every: int
    wall_time: float


def run_online(scores: np.ndarray, eligible: np.ndarray | None, resources: ResourceModel, start_prices: np.ndarray,
               steps: np.ndarray, temperature: float, uniforms: np.ndarray, fallback: np.ndarray | None = None,
               realised: bool = True, record_every: int = 1000) -> OnlineRun:
    """Decide a stream in order, updating the prices after every event (projected dual ascent)."""
    s, e, has_mask = kernel_inputs(scores, eligible)
    n, a1 = s.shape
    k = resources.n_resources
    if fallback is None:
        fallback = np.zeros(a1)
        fallback[0] = 1.0
    record_every = max(1, int(record_every))
    r = n // record_every
    actions = np.empty(n, dtype=np.int64)
    props = np.empty(n)
    reasons = np.empty(n, dtype=np.int8)
    price_path = np.zeros((r, k))
    use_path = np.zeros((r, k))
    t0 = time.perf_counter()
    final = K.online_stream(s, e, has_mask, resources.costs, resources.budget,
                            np.ascontiguousarray(start_prices, dtype=np.float64),
                            np.ascontiguousarray(steps, dtype=np.float64), float(temperature),
                            np.ascontiguousarray(uniforms, dtype=np.float64),
                            np.ascontiguousarray(fallback, dtype=np.float64), bool(realised), record_every,
                            actions, props, reasons, price_path, use_path)
    return OnlineRun(actions, props, reasons, final, price_path, use_path, record_every, time.perf_counter() - t0)
