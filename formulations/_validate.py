"""Small validators shared by the problem classes.

Each returns a normalised value or raises :class:`InputError` naming the field,
the expected form and the first offending index.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from formulations.errors import InputError


def _index(flat: int, shape: tuple[int, ...]) -> str:
    idx = np.unravel_index(int(flat), shape)
    return "(" + ", ".join(str(int(i)) for i in idx) + ")" if len(shape) > 1 else str(int(idx[0]))


def numeric_array(field: str, value: Any, *, ndim: int | tuple[int, ...], shape: tuple[int | None, ...] | None = None,
                  dtype: Any = np.float64, keep_float32: bool = False) -> np.ndarray:
    """Convert ``value`` to a numeric array, checking dimensions and shape.

    ``shape`` entries that are ``None`` are free.
    """
    if value is None:
        raise InputError(field, "expected an array, got None")
    try:
        arr = np.asarray(value)
    except Exception as exc:  # pragma: no cover - numpy raises many kinds
        raise InputError(field, f"expected a numeric array ({exc})") from None
    if arr.dtype.kind not in "fiu":
        raise InputError(field, f"expected numbers, got values of type {arr.dtype}")
    ndims = (ndim,) if isinstance(ndim, int) else ndim
    if arr.ndim not in ndims:
        want = " or ".join(f"{d}-d" for d in ndims)
        raise InputError(field, f"expected a {want} array, got shape {arr.shape}")
    if shape is not None:
        if len(shape) != arr.ndim or any(s is not None and s != a for s, a in zip(shape, arr.shape)):
            want = "(" + ", ".join("n" if s is None else str(s) for s in shape) + ")"
            raise InputError(field, f"expected shape {want}, got {arr.shape}")
    if keep_float32 and arr.dtype == np.float32:
        return arr
    return np.asarray(arr, dtype=dtype)


def check_finite_nonnegative(field: str, arr: np.ndarray) -> None:
    """Require every entry to be finite and >= 0."""
    bad = ~np.isfinite(arr) | (arr < 0)
    if bad.any():
        flat = int(np.flatnonzero(bad.ravel())[0])
        raise InputError(field, f"expected non-negative finite numbers, got {arr.ravel()[flat]!r} "
                                f"at index {_index(flat, arr.shape)}")


def nonnegative_scalar(field: str, value: Any, *, allow_none: bool = False) -> float | None:
    """A finite float >= 0 (or None when allowed)."""
    if value is None:
        if allow_none:
            return None
        raise InputError(field, "expected a non-negative number, got None")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise InputError(field, f"expected a non-negative number, got {value!r}") from None
    if not np.isfinite(out) or out < 0:
        raise InputError(field, f"expected a non-negative finite number, got {value!r}")
    return out


def integer_scalar(field: str, value: Any, *, minimum: int) -> int:
    """An integer >= ``minimum`` (floats with an integral value are accepted)."""
    if isinstance(value, (bool, np.bool_)):
        raise InputError(field, f"expected an integer >= {minimum}, got {value!r}")
    try:
        out = int(value)
        ok = float(value) == out
    except (TypeError, ValueError, OverflowError):
        raise InputError(field, f"expected an integer >= {minimum}, got {value!r}") from None
    if not ok or out < minimum:
        raise InputError(field, f"expected an integer >= {minimum}, got {value!r}")
    return out


def integer_array(field: str, value: Any, *, length: int, minimum: int) -> np.ndarray:
    """A 1-d integer array of ``length`` entries, each >= ``minimum``."""
    arr = np.asarray(value)
    if arr.ndim != 1 or arr.shape[0] != length:
        raise InputError(field, f"expected an integer or an integer array of shape ({length},), got shape {arr.shape}")
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(field, f"expected integers, got {arr[i]!r} at index {i}")
    elif arr.dtype.kind not in "iu":
        raise InputError(field, f"expected integers, got values of type {arr.dtype}")
    arr = arr.astype(np.int64)
    bad = arr < minimum
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(field, f"expected integers >= {minimum}, got {arr[i]} at index {i}")
    return arr


def labels(field: str, value: Sequence[Any] | None, *, length: int, default: Sequence[Any]) -> tuple:
    """A tuple of ``length`` unique labels (``default`` when None)."""
    if value is None:
        return tuple(default)
    out = tuple(np.asarray(value).tolist()) if isinstance(value, np.ndarray) else tuple(value)
    if len(out) != length:
        raise InputError(field, f"expected {length} labels, got {len(out)}")
    if len(set(out)) != len(out):
        seen: set = set()
        for i, v in enumerate(out):
            if v in seen:
                raise InputError(field, f"expected unique labels, got {v!r} twice (index {i})")
            seen.add(v)
    return out


def scan_utility(field: str, utility: np.ndarray, chunk_rows: int = 250_000) -> bool:
    """Scan a (n, M, T) utility array in chunks.

    Raises on ``+inf``; returns True when the array holds NaN (which must be
    replaced by ``-inf``). Chunking keeps the temporary boolean arrays small
    for arrays with millions of customers.
    """
    has_nan = False
    n = utility.shape[0]
    for start in range(0, n, chunk_rows):
        block = utility[start:start + chunk_rows]
        pos = np.isposinf(block)
        if pos.any():
            flat = int(np.flatnonzero(pos.ravel())[0])
            idx = np.unravel_index(flat, block.shape)
            raise InputError(field, "expected finite numbers (NaN or -inf mark a contact that is not allowed), "
                                    f"got +inf at index ({idx[0] + start}, {idx[1]}, {idx[2]})")
        if not has_nan and np.isnan(block).any():
            has_nan = True
    return has_nan
