"""Level bundle master problems on HiGHS (a small LP and a small QP per iteration).

Minimises a convex function f over a box [0, upper] from cuts
f(y) >= f_j + g_j (y - y_j). Two persistent HiGHS models are kept and grown
by one row per cut:

* the cutting-plane LP  ``min z  s.t.  g_j y - z <= g_j y_j - f_j``  gives
  ``min_y max_j cut_j(y)``, a lower bound on ``min f``;
* the projection QP  ``min 1/2 |y - c|^2  s.t.  g_j y <= level - f_j + g_j y_j``
  gives the next point; an infeasible QP proves ``min f > level``.

The projection is first solved as a least-distance programme (Lawson and
Hanson, *Solving Least Squares Problems*, ch. 23): with z = y - c and the
cuts and the box written A z >= r, the nonnegative least-squares problem
``min |E u - e|, u >= 0`` with ``E = [Aᵀ; rᵀ]`` and e the last unit vector
(scipy's ``nnls``, an exact active-set method) gives z = -res[:-1]/res[-1],
and a zero residual proves the level set empty. On the 10k weekly instance
that takes 0.25–0.45 ms per projection against 0.7–1.9 ms for HiGHS's QP
solver (same points within 2e-6 over a whole solve). A point that misses a
constraint by more than ``LDP_TOL`` (scaled units), or an emptiness claim,
is checked by the HiGHS QP, which stays the reference.

Values are divided by a fixed scale (the magnitude of the first value) so the
master works with numbers of order one.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import nnls

LDP_TOL = 1e-7       # constraint violation (scaled units) above which an LDP point is re-solved by HiGHS


def least_distance(G: np.ndarray, b: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                   center: np.ndarray) -> np.ndarray | None:
    """The point of {G y <= b, lower <= y <= upper} closest to ``center`` (None: the set is empty).

    Least-distance programming through NNLS (see the module docstring); no
    feasibility check here — callers verify the point.
    """
    d = center.shape[0]
    eye = np.eye(d)
    A = np.vstack([-G, -eye, eye])                        # A z >= r with z = y - center
    r = np.concatenate([G @ center - b, center - upper, lower - center])
    E = np.vstack([A.T, r[None, :]])
    e = np.zeros(d + 1)
    e[-1] = 1.0
    u, _ = nnls(E, e, maxiter=50 * E.shape[1])
    res = E @ u - e
    if abs(res[-1]) <= 1e-12:
        return None
    return center - res[:d] / res[-1]


class LevelBundle:
    """Cutting-plane model, its minimum and level-set projections."""

    def __init__(self, dim: int, alpha: float = 0.3, max_cuts: int = 200, upper: np.ndarray | None = None,
                 lower: np.ndarray | None = None) -> None:
        import highspy

        from solvers.highs_direct import quiet_banner

        quiet_banner()                   # HiGHS prints its banner at the process's first Highs()
        self.dim = dim
        self.alpha = alpha
        self.max_cuts = max_cuts
        self.scale: float | None = None
        self.dim = dim
        self.points: list[np.ndarray] = []
        self.values: list[float] = []
        self.grads: list[np.ndarray] = []
        self._hs = highspy
        inf = highspy.kHighsInf
        self._inf = inf
        self._G = np.zeros((0, dim))          # the cuts g_j y <= rhs_j + level (scaled), as arrays
        self._rhs = np.zeros(0)
        self.lp = self._new()
        self.upper = np.ones(dim) if upper is None else np.asarray(upper, dtype=np.float64)
        self.lower = np.zeros(dim) if lower is None else np.asarray(lower, dtype=np.float64)
        self.lp.addVars(dim + 1, np.r_[self.lower, -inf], np.r_[self.upper, inf])
        self.lp.changeColsCost(dim + 1, np.arange(dim + 1, dtype=np.int32), np.r_[np.zeros(dim), 1.0])
        self.qp = self._new()
        self.qp.addVars(dim, self.lower, self.upper)
        if dim:
            self.qp.passHessian(dim, dim, highspy.HessianFormat.kTriangular, np.arange(dim + 1, dtype=np.int32),
                                np.arange(dim, dtype=np.int32), np.ones(dim))

    def _new(self):
        h = self._hs.Highs()
        h.setOptionValue("output_flag", False)
        # a degenerate master must never stall the solve: cap work per call (a failed QP falls back
        # to Kelley's point, a failed LP to no lower bound)
        h.setOptionValue("qp_iteration_limit", 20 * self.dim + 2000)
        h.setOptionValue("simplex_iteration_limit", 50 * self.dim + 5000)
        h.setOptionValue("time_limit", 5.0)
        return h

    def __len__(self) -> int:
        return len(self.values)

    def add_cut(self, y: np.ndarray, f: float, g: np.ndarray) -> None:
        if self.scale is None:
            self.scale = max(abs(f), 1.0)
        fs, gs = f / self.scale, np.asarray(g, dtype=np.float64) / self.scale
        if len(self.values) >= self.max_cuts:
            self._prune()
        self.points.append(np.asarray(y, dtype=np.float64).copy())
        self.values.append(fs)
        self.grads.append(gs)
        rhs = float(gs @ y - fs)
        self._G = np.vstack([self._G, gs[None, :]])
        self._rhs = np.append(self._rhs, rhs)
        idx = np.arange(self.dim + 1, dtype=np.int32)
        self.lp.addRow(-self._inf, rhs, self.dim + 1, idx, np.r_[gs, -1.0])
        self.qp.addRow(-self._inf, self._inf, self.dim, idx[:-1], gs)

    def _prune(self) -> None:
        """Drop the 40% of cuts lying furthest below the model at the best point (one batch)."""
        best = int(np.argmin(self.values))
        y = self.points[best]
        cuts = np.array([f + g @ (y - p) for f, g, p in zip(self.values, self.grads, self.points)])
        slack = cuts.max() - cuts
        slack[best] = -np.inf
        k = max(1, int(0.4 * len(cuts)))
        drop = np.sort(np.argsort(-slack, kind="stable")[:k]).astype(np.int32)
        keep = np.setdiff1d(np.arange(len(cuts)), drop)
        self.points = [self.points[i] for i in keep]
        self.values = [self.values[i] for i in keep]
        self.grads = [self.grads[i] for i in keep]
        self._G, self._rhs = self._G[keep], self._rhs[keep]
        self.lp.deleteRows(drop.size, drop)
        self.qp.deleteRows(drop.size, drop)

    def model_minimum(self) -> float:
        """min over the box of the cutting-plane model (a lower bound on min f)."""
        self.lp.run()
        if self.lp.getModelStatus() != self._hs.HighsModelStatus.kOptimal:
            return -np.inf
        return float(self.lp.getInfo().objective_function_value) * self.scale

    def model_minimizer(self) -> np.ndarray:
        """The point where the last cutting-plane LP attained its minimum (Kelley's point)."""
        return np.clip(np.asarray(self.lp.getSolution().col_value[:self.dim], dtype=np.float64), self.lower, self.upper)

    def project(self, center: np.ndarray, level: float) -> tuple[str, np.ndarray | None]:
        """Closest point to ``center`` where every cut is <= ``level``.

        Returns ``("ok", y)``, ``("infeasible", None)`` when no point of the box
        reaches the level (then min f > level), or ``("failed", None)`` when
        HiGHS stopped for another reason.
        """
        k = len(self.values)
        upper = self._rhs + level / self.scale
        c = np.asarray(center, dtype=np.float64)
        if k:
            y = least_distance(self._G, upper, self.lower, self.upper, c)
            if y is not None and (self._G @ y - upper).max() <= LDP_TOL:
                return "ok", np.clip(y, self.lower, self.upper)
        self.qp.changeRowsBounds(k, np.arange(k, dtype=np.int32), np.full(k, -self._inf), upper)
        self.qp.changeColsCost(self.dim, np.arange(self.dim, dtype=np.int32), -c)
        self.qp.run()
        status = self.qp.getModelStatus()
        S = self._hs.HighsModelStatus
        if status == S.kInfeasible:
            return "infeasible", None
        if status != S.kOptimal:
            return "failed", None
        return "ok", np.clip(np.asarray(self.qp.getSolution().col_value, dtype=np.float64), self.lower, self.upper)
