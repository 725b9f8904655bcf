"""A disaggregated ("multi-cut") level bundle method on HiGHS.

Minimises :math:`f(y) = c^\\top y + \\sum_{k=1}^K \\phi_k(y)` over a box
:math:`0 \\le y \\le u` where each :math:`\\phi_k` is convex and every
evaluation returns all values :math:`\\phi_k(y_j)` and subgradients
:math:`g_{kj}`. Instead of one cut for the sum (:mod:`solvers.bundle`) it
keeps one cut per part,

.. math::

    \\check f(y) = c^\\top y + \\sum_k z_k, \\qquad
    z_k \\ge \\phi_k(y_j) + g_{kj}^\\top (y - y_j),

a much richer model for the same number of evaluations (the multi-cut
L-shaped method of Birge & Louveaux). Per iteration:

* the LP :math:`\\min_{y, z} \\check f` gives a lower bound on :math:`\\min f`;
* the projection :math:`\\min \\|y - \\hat y\\|_\\infty` s.t. :math:`\\check f(y, z) \\le \\ell`
  (level :math:`\\ell = f_\\text{low} + \\alpha (f_\\text{up} - f_\\text{low})`)
  gives the next point; it is an LP (variables y, z, s; rows
  :math:`|y_i - \\hat y_i| \\le s`), so both masters are LPs that HiGHS's
  dual simplex re-solves warm after rows are added. (The Euclidean
  projection of :mod:`solvers.bundle` is a QP; with K cuts per iteration
  its active-set solve became the bottleneck, seconds per iteration at
  K = 100.) An infeasible projection proves :math:`\\min f > \\ell`, so
  :math:`\\ell` becomes a valid lower bound; non-Euclidean projections keep
  the level method's convergence (Ben-Tal & Nemirovski, 2005).

Both are persistent HiGHS models grown by K rows per evaluation; values are
divided by a fixed scale (the first total value) so the masters see numbers
of order one.
"""

from __future__ import annotations

import numpy as np


class MultiCutLevel:
    """Disaggregated cutting-plane model with level-set projections."""

    def __init__(self, dim: int, parts: int, linear: np.ndarray, upper: np.ndarray, alpha: float = 0.5) -> None:
        import highspy

        from solvers.highs_direct import quiet_banner

        quiet_banner()                   # HiGHS prints its banner at the process's first Highs()
        self._hs = highspy
        self.dim, self.parts, self.alpha = dim, parts, alpha
        self.linear = np.asarray(linear, dtype=np.float64)
        self.upper = np.asarray(upper, dtype=np.float64)
        self.scale: float | None = None
        self.cuts = 0
        inf = highspy.kHighsInf
        self._inf = inf
        nv = dim + parts
        lower = np.r_[np.zeros(dim), np.full(parts, -inf)]
        upper_all = np.r_[self.upper, np.full(parts, inf)]
        self.lp = self._new()
        self.lp.addVars(nv, lower, upper_all)
        # projection LP: variables (y, z, s); row 0 the level row, rows 1..2d the box |y - c| <= s
        self.proj = self._new()
        self.proj.addVars(nv + 1, np.r_[lower, 0.0], np.r_[upper_all, inf])
        self.proj.changeColsCost(nv + 1, np.arange(nv + 1, dtype=np.int32), np.r_[np.zeros(nv), 1.0])
        self._cols = np.arange(nv, dtype=np.int32)

    def _new(self):
        h = self._hs.Highs()
        h.setOptionValue("output_flag", False)
        h.setOptionValue("parallel", "off")      # small warm-started LPs: threads only add contention
        return h

    def _set_costs(self) -> None:
        d, K = self.dim, self.parts
        cost = np.r_[self.linear / self.scale, np.ones(K)]
        self.lp.changeColsCost(d + K, self._cols, cost)
        inf = self._inf
        self.proj.addRow(-inf, inf, d + K, self._cols, cost)             # level row: bounds set in project
        s_col = d + K
        starts = (np.arange(2 * d) * 2).astype(np.int32)
        index = np.empty((2 * d, 2), dtype=np.int32)
        index[:d, 0] = np.arange(d)
        index[d:, 0] = np.arange(d)
        index[:, 1] = s_col
        value = np.empty((2 * d, 2))
        value[:d] = (1.0, -1.0)       # y_i - s <= c_i
        value[d:] = (1.0, 1.0)        # y_i + s >= c_i
        self.proj.addRows(2 * d, np.full(2 * d, -inf), np.full(2 * d, inf), 4 * d, starts, index.ravel(),
                          value.ravel())

    def add_cuts(self, y: np.ndarray, values: np.ndarray, grads: np.ndarray) -> None:
        """One cut per part: z_k >= values[k] + grads[k] . (y' - y)."""
        values = np.asarray(values, dtype=np.float64)
        grads = np.asarray(grads, dtype=np.float64)
        if self.scale is None:
            self.scale = max(abs(float(values.sum() + self.linear @ y)), 1.0)
            self._set_costs()
        fs, gs = values / self.scale, grads / self.scale
        K, d = self.parts, self.dim
        rhs = gs @ y - fs
        starts = (np.arange(K) * (d + 1)).astype(np.int32)
        index = np.empty((K, d + 1), dtype=np.int32)
        index[:, :d] = np.arange(d, dtype=np.int32)
        index[:, d] = d + np.arange(K, dtype=np.int32)
        value = np.empty((K, d + 1))
        value[:, :d] = gs
        value[:, d] = -1.0
        lower = np.full(K, -self._inf)
        for h in (self.lp, self.proj):
            h.addRows(K, lower, rhs, K * (d + 1), starts, index.ravel(), value.ravel())
        self.cuts += K

    def model_minimum(self) -> tuple[float, np.ndarray | None]:
        """min of the model over the box (a lower bound on min f) and its minimiser."""
        self.lp.run()
        if self.lp.getModelStatus() != self._hs.HighsModelStatus.kOptimal:
            return -np.inf, None
        y = np.asarray(self.lp.getSolution().col_value[:self.dim], dtype=np.float64)
        return float(self.lp.getInfo().objective_function_value) * self.scale, np.clip(y, 0.0, self.upper)

    def project(self, center: np.ndarray, level: float) -> tuple[str, np.ndarray | None]:
        """A closest point (sup-norm) to ``center`` where the model is <= ``level``.

        Returns ("ok", y), ("infeasible", None) when the level set is empty
        (then min f > level) or ("failed", None).
        """
        d, inf = self.dim, self._inf
        c = np.asarray(center, dtype=np.float64)
        rows = np.arange(1 + 2 * d, dtype=np.int32)
        lower = np.r_[-inf, np.full(d, -inf), c]
        upper = np.r_[level / self.scale, c, np.full(d, inf)]
        self.proj.changeRowsBounds(rows.size, rows, lower, upper)
        self.proj.run()
        status = self.proj.getModelStatus()
        S = self._hs.HighsModelStatus
        if status == S.kInfeasible:
            return "infeasible", None
        if status != S.kOptimal:
            return "failed", None
        y = np.asarray(self.proj.getSolution().col_value[:d], dtype=np.float64)
        return "ok", np.clip(y, 0.0, self.upper)
