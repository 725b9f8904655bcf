"""Feature matrices for the response and uplift models: numeric arrays or DataFrames with categoricals.

:class:`FeatureEncoder` turns a DataFrame into a float64 matrix: numeric and
boolean columns pass through, categorical columns (``object``, ``string``,
``category``) become one-hot indicator columns, one per category seen in
``fit`` except the first in sorted order (``drop_first=True``, so the
intercept stays identifiable). A category not seen in ``fit`` encodes as all
zeros (the reference level). A NumPy array passes through unchanged
(checked: 2-d, finite). Missing values are an error naming the column.

    enc = FeatureEncoder().fit(df)          # or: X, names = encode_features(df)
    X = enc.transform(df)                   # (n, d) float64, enc.feature_names_
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from formulations.errors import InputError


def _is_categorical(series: pd.Series) -> bool:
    return (isinstance(series.dtype, pd.CategoricalDtype) or pd.api.types.is_object_dtype(series)
            or pd.api.types.is_string_dtype(series))


class FeatureEncoder:
    """One-hot encoder for the categorical columns of a DataFrame (scikit-learn style).

    Parameters
    ----------
    categorical : sequence of str, optional
        Columns to one-hot encode; default: every object / string / category column.
    drop_first : bool
        Drop the first (sorted) category of each column.

    Attributes
    ----------
    columns_ : list of str
        Input columns in order.
    categories_ : dict
        Column → categories kept as indicator columns.
    feature_names_ : list of str
        Names of the output columns (``col`` or ``col=value``).
    """

    def __init__(self, categorical: Sequence[str] | None = None, drop_first: bool = True) -> None:
        self.categorical = categorical
        self.drop_first = drop_first

    def fit(self, X: Any) -> "FeatureEncoder":
        """Learn the columns and categories; returns ``self``."""
        if not isinstance(X, pd.DataFrame):
            arr = check_matrix("X", X)
            self.columns_ = [f"x{k}" for k in range(arr.shape[1])]
            self.categories_ = {}
            self.feature_names_ = list(self.columns_)
            self._frame = False
            return self
        self._frame = True
        self.columns_ = [str(c) for c in X.columns]
        cats = list(self.categorical) if self.categorical is not None else [
            c for c in X.columns if _is_categorical(X[c])]
        missing = [c for c in cats if c not in X.columns]
        if missing:
            raise InputError("categorical", f"column {missing[0]!r} is not in X")
        self.categories_ = {}
        names: list[str] = []
        for c in X.columns:
            if c in cats:
                values = X[c]
                if values.isna().any():
                    raise InputError(str(c), f"expected no missing values, got one at row {int(np.flatnonzero(values.isna())[0])}")
                levels = sorted(pd.unique(values.astype(str)))
                keep = levels[1:] if self.drop_first else levels
                self.categories_[str(c)] = keep
                names += [f"{c}={v}" for v in keep]
            else:
                names.append(str(c))
        self.feature_names_ = names
        return self

    def transform(self, X: Any) -> np.ndarray:
        """The (n, d) float64 matrix of the learned encoding."""
        if not hasattr(self, "feature_names_"):
            raise InputError("FeatureEncoder", "call fit before transform")
        if not self._frame:
            arr = check_matrix("X", X)
            if arr.shape[1] != len(self.columns_):
                raise InputError("X", f"expected {len(self.columns_)} columns, got {arr.shape[1]}")
            return arr
        if not isinstance(X, pd.DataFrame):
            raise InputError("X", "expected a DataFrame like the one the encoder was fitted on")
        absent = [c for c in self.columns_ if c not in X.columns]
        if absent:
            raise InputError("X", f"column {absent[0]!r} is missing")
        blocks = []
        for c in self.columns_:
            values = X[c]
            if c in self.categories_:
                text = values.astype(str).to_numpy()
                blocks.append(np.stack([(text == v) for v in self.categories_[c]], axis=1).astype(np.float64)
                              if self.categories_[c] else np.zeros((len(X), 0)))
            else:
                try:
                    col = values.to_numpy(dtype=np.float64)
                except (TypeError, ValueError):
                    raise InputError(c, f"expected numbers, got values of type {values.dtype}") from None
                bad = ~np.isfinite(col)
                if bad.any():
                    raise InputError(c, f"expected finite numbers, got {col[bad][0]!r} at row {int(np.flatnonzero(bad)[0])}")
                blocks.append(col[:, None])
        return np.ascontiguousarray(np.hstack(blocks)) if blocks else np.zeros((len(X), 0))

    def fit_transform(self, X: Any) -> np.ndarray:
        return self.fit(X).transform(X)


def encode_features(X: Any, categorical: Sequence[str] | None = None,
                    drop_first: bool = True) -> tuple[np.ndarray, list[str]]:
    """One-shot helper: ``(matrix, feature_names)`` of :class:`FeatureEncoder`."""
    enc = FeatureEncoder(categorical, drop_first).fit(X)
    return enc.transform(X), list(enc.feature_names_)


def check_matrix(field: str, X: Any) -> np.ndarray:
    """A finite 2-d float64 array, or :class:`InputError` naming ``field``."""
    try:
        arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(field, "expected a numeric 2-d array or a DataFrame") from None
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise InputError(field, f"expected a 2-d array (rows x features), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise InputError(field, "expected at least one row, got none")
    bad = ~np.isfinite(arr)
    if bad.any():
        i, j = map(int, np.argwhere(bad)[0])
        raise InputError(field, f"expected finite numbers, got {arr[i, j]!r} at row {i}, column {j}")
    return np.ascontiguousarray(arr)


def check_vector(field: str, values: Any, n: int, kind: str = "float") -> np.ndarray:
    """A 1-d finite array of length ``n`` (``kind="int"``: integral values, returned as int64)."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(field, "expected a 1-d array of numbers") from None
    if arr.ndim != 1 or arr.shape[0] != n:
        raise InputError(field, f"expected {n} values (one per row of X), got shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise InputError(field, f"expected finite numbers, got {arr[bad][0]!r} at row {int(np.flatnonzero(bad)[0])}")
    if kind == "int":
        if np.any(arr != np.round(arr)) or np.any(arr < 0):
            raise InputError(field, "expected non-negative integer codes (0 = control / no contact)")
        return arr.astype(np.int64)
    return arr
