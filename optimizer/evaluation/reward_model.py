"""A small shrinkage reward model for the direct and doubly robust estimators.

Model
-----
Contexts fall into ``G`` groups ``g`` (e.g. the slot position, a segment; one
group when there is no context) and there are ``A`` actions. With ``S`` the
sum and ``N`` the count of logged rewards in a cell, and a prior strength
``m >= 0`` (pseudo-observations),

    mu_all    = S / N                                   (all rows)
    mu_g      = (S_g + m * mu_all) / (N_g + m)          group mean, shrunk to the overall mean
    mu(g, a)  = (S_ga + m * mu_g) / (N_ga + m)          cell mean, shrunk to its group mean

which is the posterior mean of a normal (or beta-binomial) hierarchy with
``m`` prior observations per level: cells with few rows borrow from their
group. ``prior_strength=None`` picks ``m`` from a grid by K-fold
cross-validated squared error. The model is deliberately simple: clicks and
conversions are rare, and a flexible model would overfit the few positives.

Cross-fitting
-------------
For DR the reward model must not have seen the row it corrects (otherwise
``r_i - mu(x_i, a_i)`` is shrunk towards 0 and DR leans towards DM).
:func:`cross_fit_reward_table` fits the model on K - 1 folds and predicts the
held-out fold, for every row and every action.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from formulations.errors import InputError

PRIOR_GRID = (0.0, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0)


def _codes(field: str, value: Any, n: int | None, size: int | None) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim != 1 or (n is not None and arr.shape[0] != n):
        raise InputError(field, f"expected a 1-d array of {n if n is not None else 'n'} integer codes, "
                                f"got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise InputError(field, f"expected integer codes 0..K-1, got values of type {arr.dtype}")
    if arr.size and (arr.min() < 0 or (size is not None and arr.max() >= size)):
        i = int(np.flatnonzero((arr < 0) | ((arr >= size) if size is not None else False))[0])
        raise InputError(field, f"expected codes in 0..{(size or 0) - 1}, got {int(arr[i])} at row {i}")
    return arr.astype(np.int64)


class TabularRewardModel:
    """Shrinkage estimate of the mean reward per (group, action) cell.

    Parameters
    ----------
    prior_strength : float, optional
        Pseudo-observations ``m`` of each shrinkage level; ``None`` chooses it
        by ``n_folds``-fold cross-validation over :data:`PRIOR_GRID`.
    n_folds : int
        Folds of that cross-validation.
    random_state : int
        Seed of the fold assignment.

    Attributes
    ----------
    table_ : ndarray (n_groups, n_actions)
        ``mu(g, a)``.
    prior_strength_ : float
        The ``m`` used.
    cv_errors_ : dict or None
        Mean squared error per grid value (when chosen by cross-validation).
    """

    def __init__(self, prior_strength: float | None = None, n_folds: int = 5, random_state: int = 0) -> None:
        self.prior_strength = prior_strength
        self.n_folds = n_folds
        self.random_state = random_state

    @staticmethod
    def _from_sums(cell_n: np.ndarray, cell_s: np.ndarray, m) -> np.ndarray:
        """Shrunk cell means from cell counts / sums (G, A); ``m`` a scalar or an (M, 1, 1) array."""
        total_n, total_s = cell_n.sum(), cell_s.sum()
        mu_all = total_s / total_n if total_n > 0 else 0.0
        g_n, g_s = cell_n.sum(axis=1), cell_s.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            mu_g = np.where(g_n + np.squeeze(m, -1) > 0,
                            (g_s + np.squeeze(m, -1) * mu_all) / np.maximum(g_n + np.squeeze(m, -1), 1e-300), mu_all)
            return np.where(cell_n + m > 0, (cell_s + m * mu_g[..., None]) / np.maximum(cell_n + m, 1e-300),
                            mu_g[..., None])

    @staticmethod
    def _sums(groups, actions, rewards, n_groups, n_actions, weights=None):
        w = np.ones(rewards.shape[0]) if weights is None else weights
        flat = groups * n_actions + actions
        size = n_groups * n_actions
        cell_n = np.bincount(flat, weights=w, minlength=size).reshape(n_groups, n_actions)
        cell_s = np.bincount(flat, weights=w * rewards, minlength=size).reshape(n_groups, n_actions)
        return cell_n, cell_s

    @classmethod
    def _table(cls, groups, actions, rewards, n_groups, n_actions, m, weights=None) -> np.ndarray:
        cell_n, cell_s = cls._sums(groups, actions, rewards, n_groups, n_actions, weights)
        return cls._from_sums(cell_n, cell_s, np.asarray(m, dtype=np.float64).reshape(1))

    def fit(self, groups: Any, actions: Any, rewards: Any, n_groups: int | None = None,
            n_actions: int | None = None) -> "TabularRewardModel":
        """Fit the cell means from logged ``(group, action, reward)`` rows; returns ``self``."""
        r = np.asarray(rewards, dtype=np.float64)
        if r.ndim != 1 or r.shape[0] == 0:
            raise InputError("rewards", f"expected a non-empty 1-d array, got shape {r.shape}")
        if not np.isfinite(r).all():
            raise InputError("rewards", "expected finite rewards")
        g = _codes("groups", groups, r.shape[0], n_groups)
        a = _codes("actions", actions, r.shape[0], n_actions)
        self.n_groups_ = int(n_groups if n_groups is not None else g.max() + 1)
        self.n_actions_ = int(n_actions if n_actions is not None else a.max() + 1)
        if self.prior_strength is None:
            self.cv_errors_ = self._cross_validate(g, a, r)
            self.prior_strength_ = float(min(self.cv_errors_, key=self.cv_errors_.get))
        else:
            if not np.isfinite(self.prior_strength) or self.prior_strength < 0:
                raise InputError("prior_strength", f"expected a number >= 0, got {self.prior_strength!r}")
            self.cv_errors_ = None
            self.prior_strength_ = float(self.prior_strength)
        self.table_ = self._table(g, a, r, self.n_groups_, self.n_actions_, self.prior_strength_)
        return self

    def _cross_validate(self, g, a, r) -> dict[float, float]:
        """Held-out squared error of every grid value, from cell sums (sum (r - mu)^2 = S2 - 2 mu S + mu^2 N)."""
        folds = np.random.default_rng(self.random_state).integers(0, self.n_folds, size=r.shape[0])
        grid = np.asarray(PRIOR_GRID).reshape(-1, 1, 1)
        sq = np.zeros(grid.shape[0])
        for k in range(self.n_folds):
            test = folds == k
            if not test.any() or test.all():
                continue
            n_tr, s_tr = self._sums(g[~test], a[~test], r[~test], self.n_groups_, self.n_actions_)
            n_te, s_te = self._sums(g[test], a[test], r[test], self.n_groups_, self.n_actions_)
            tables = self._from_sums(n_tr, s_tr, grid)
            sq += float((r[test] * r[test]).sum()) - 2 * (tables * s_te).sum(axis=(1, 2)) \
                + (tables ** 2 * n_te).sum(axis=(1, 2))
        return {float(m): float(e) / r.shape[0] for m, e in zip(PRIOR_GRID, sq)}

    def predict(self, groups: Any, actions: Any) -> np.ndarray:
        """``mu(g_i, a_i)`` per row."""
        g = _codes("groups", groups, None, self.n_groups_)
        a = _codes("actions", actions, g.shape[0], self.n_actions_)
        return self.table_[g, a]

    def predict_table(self, groups: Any) -> np.ndarray:
        """``mu(g_i, a)`` for every action: shape (n, n_actions)."""
        g = _codes("groups", groups, None, self.n_groups_)
        return self.table_[g]


def cross_fit_tables(groups: Any, actions: Any, rewards: Any, n_groups: int, n_actions: int, *,
                     n_folds: int = 5, prior_strength: float | None = None, random_state: int = 0,
                     sample_weight: Any = None) -> tuple[np.ndarray, np.ndarray, float]:
    """Per-fold tables for cross-fitting.

    Returns ``(tables, folds, m)``: ``tables[k]`` is the (n_groups, n_actions)
    model fitted without fold ``k``, ``folds`` the fold of each row (fixed by
    ``random_state``), ``m`` the prior strength (chosen once on all rows when
    ``None``). ``sample_weight`` (e.g. bootstrap multiplicities) weights the rows.
    """
    r = np.asarray(rewards, dtype=np.float64)
    g = _codes("groups", groups, r.shape[0], n_groups)
    a = _codes("actions", actions, r.shape[0], n_actions)
    if prior_strength is None:
        m = TabularRewardModel(None, n_folds, random_state).fit(g, a, r, n_groups, n_actions).prior_strength_
    else:
        m = float(prior_strength)
    folds = np.random.default_rng(random_state + 1).integers(0, n_folds, size=r.shape[0])
    w = np.ones(r.shape[0]) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    tables = np.empty((n_folds, n_groups, n_actions))
    for k in range(n_folds):
        train = folds != k
        if not train.any():  # a single fold: nothing held out
            train = np.ones(r.shape[0], dtype=bool)
        tables[k] = TabularRewardModel._table(g[train], a[train], r[train], n_groups, n_actions, m, w[train])
    return tables, folds, m


def cross_fit_reward_table(groups: Any, actions: Any, rewards: Any, n_groups: int, n_actions: int, *,
                           n_folds: int = 5, prior_strength: float | None = None,
                           random_state: int = 0) -> np.ndarray:
    """Out-of-fold ``mu(g_i, a)`` for every row and action, shape (n, n_actions).

    The prior strength is chosen once on all rows (when ``None``), then each
    fold's rows are predicted by a model fitted on the other folds.
    """
    tables, folds, _ = cross_fit_tables(groups, actions, rewards, n_groups, n_actions, n_folds=n_folds,
                                        prior_strength=prior_strength, random_state=random_state)
    g = np.asarray(groups, dtype=np.int64)
    return tables[folds, g]
