"""Shared numba settings for contactplan kernels.

``cache=True`` keeps compiled code between runs, ``nogil=True`` lets threads
(and Dask workers) run kernels concurrently. ``fastmath`` is not used: the
kernels compare reduced utilities against zero and ties must be exact.
"""

from __future__ import annotations

import numba

JIT = dict(cache=True, nogil=True)
PJIT = dict(cache=True, nogil=True, parallel=True)

njit = numba.njit
prange = numba.prange


def kernel(fn=None, **overrides):
    """``numba.njit`` with the shared settings (plus overrides)."""
    opts = dict(JIT, **overrides)
    if fn is None:
        return lambda f: numba.njit(**opts)(f)
    return numba.njit(**opts)(fn)


def parallel_kernel(fn=None, **overrides):
    """``numba.njit(parallel=True)`` with the shared settings."""
    opts = dict(PJIT, **overrides)
    if fn is None:
        return lambda f: numba.njit(**opts)(f)
    return numba.njit(**opts)(fn)
