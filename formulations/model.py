"""Solver-neutral sparse model: what a formulation hands to an LP/MIP backend.

A :class:`SparseModel` is the "apply" half of a reduction (cvxpy's idea): the
problem in matrix form,

.. math::

    \\max_x \\; c^\\top x \\quad \\text{s.t.} \\quad
    r_\\ell \\le A x \\le r_u, \\qquad l \\le x \\le u, \\qquad x_j \\in \\mathbb{Z}
    \\text{ for integral } j,

with ``A`` stored column-wise (CSC) so that HiGHS can take it in bulk
(``Highs.passModel``). The "invert" half is the formulation's ``decode``.
Rows carry a kind (``capacity``, ``budget``, ``limit``, ``window``) and a key
so that duals and the algebraic twins (Pyomo, CVXPY) can be matched row by row.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

ROW_KINDS = ("capacity", "budget", "limit", "window", "fairness", "penalty_link", "penalty_cut")


@dataclass(frozen=True, eq=False)
class SparseModel:
    """A maximisation MIP in matrix form.

    Attributes
    ----------
    objective : ndarray (ncols,)
        Objective coefficients ``c`` (maximised).
    matrix : scipy.sparse.csc_matrix (nrows, ncols)
        Constraint matrix ``A``.
    row_lower, row_upper : ndarray (nrows,)
        Row bounds (``-inf`` for one-sided rows).
    col_lower, col_upper : ndarray (ncols,)
        Column bounds.
    integrality : ndarray of bool (ncols,)
        True for integer columns.
    row_kind : ndarray of int8 (nrows,)
        Index into :data:`ROW_KINDS`.
    row_key : ndarray of int64 (nrows, 2)
        Kind-specific key: capacity ``(channel, day)``, budget ``(0, 0)``,
        limit ``(customer, 0)``, window ``(customer, first_day)``, fairness
        ``(row, 0)``, penalty_link ``(term, 0)``, penalty_cut ``(term, breakpoint)``.
    columns : ndarray of int64 (k, 3)
        ``(customer, channel, day)`` of each contact column; contact columns
        come first. With a fairness penalty, ``meta["penalty_terms"]`` = P
        continuous columns z_p (disparities) and P columns t_p (their squares'
        tangent model) follow them.
    """

    objective: np.ndarray
    matrix: sp.csc_matrix
    row_lower: np.ndarray
    row_upper: np.ndarray
    col_lower: np.ndarray
    col_upper: np.ndarray
    integrality: np.ndarray
    row_kind: np.ndarray
    row_key: np.ndarray
    columns: np.ndarray
    meta: dict = field(default_factory=dict)

    @property
    def num_rows(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def num_cols(self) -> int:
        return int(self.matrix.shape[1])

    @property
    def num_nonzeros(self) -> int:
        return int(self.matrix.nnz)

    @property
    def num_contacts(self) -> int:
        """Number of contact (x) columns; any further columns are continuous penalty columns."""
        return int(self.columns.shape[0])

    def rows_of_kind(self, kind: str) -> np.ndarray:
        """Indices of the rows of one kind (see :data:`ROW_KINDS`)."""
        return np.flatnonzero(self.row_kind == ROW_KINDS.index(kind))

    def relaxed(self) -> "SparseModel":
        """The same model with integrality dropped (the LP relaxation)."""
        return SparseModel(self.objective, self.matrix, self.row_lower, self.row_upper, self.col_lower,
                           self.col_upper, np.zeros_like(self.integrality), self.row_kind, self.row_key,
                           self.columns, dict(self.meta, relaxed=True))
