"""Bootstrap kernels for the off-policy estimators (numba, with NumPy twins).

Poisson bootstrap (Hanley & MacGibbon 2006; Chamandy et al. 2012): replicate
``b`` gives row ``i`` the multiplicity ``k(b, i) ~ Poisson(1)``, independently
over rows, instead of drawing exactly ``n`` rows with replacement. It is
asymptotically equivalent to the classical (multinomial) bootstrap and reads
the rows in order, so a replicate streams through memory instead of
gathering random rows (about 10x faster at n = 10^6 on this machine).

The multiplicities come from a counter-based generator (SplitMix64, Steele,
Lea & Flood 2014), so they depend only on ``(seed, b, i)``:

    stream(b) = splitmix64(seed XOR (b + 1) * 0x9E3779B97F4A7C15)
    u(b, i)   = (splitmix64(stream(b) + i) >> 11) * 2**-53          (uniform on [0, 1))
    k(b, i)   = min{k : u(b, i) < F(k)},  F the Poisson(1) CDF (inversion; k <= 19)

Replicates run in parallel threads and stay reproducible, and the plain
NumPy twin reproduces them exactly (the tests compare the two).

Each replicate returns the ratio

    sum_i k(b, i) * numerator[i] / sum_i k(b, i) * denominator[i]

With ``denominator = 1`` this is the mean of the pseudo-outcomes (IPS, DM, DR,
switch-DR) over the replicate; with ``numerator = w * r`` and
``denominator = w`` it is the self-normalised IPS estimate of the replicate.
A replicate whose denominator is 0 gives NaN.
"""

from __future__ import annotations

import math

import numpy as np

from solvers._jit import kernel, parallel_kernel, prange

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_ONE = np.uint64(1)
_TO_UNIT = 2.0 ** -53
_MAX_K = 19  # P(Poisson(1) > 19) < 1e-18, below the 2**-53 resolution of u

#: Poisson(1) cumulative distribution F(0..MAX_K); the last entry is set to 1 (inversion never runs off).
POISSON1_CDF = np.cumsum([math.exp(-1.0) / math.factorial(k) for k in range(_MAX_K + 1)])
POISSON1_CDF[-1] = 1.0


@kernel
def _splitmix64(x):
    z = x + _GOLDEN
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@parallel_kernel
def bootstrap_ratios(numerator, denominator, n_resamples, seed, cdf):
    """Poisson-bootstrap replicate ratios (see the module docstring).

    ``numerator``, ``denominator``: float64 (n,); ``seed``: uint64; ``cdf``: :data:`POISSON1_CDF`.
    Returns float64 (n_resamples,).
    """
    n = numerator.shape[0]
    out = np.empty(n_resamples, dtype=np.float64)
    c0, c1, c2, c3, c4 = cdf[0], cdf[1], cdf[2], cdf[3], cdf[4]
    for b in prange(n_resamples):
        stream = _splitmix64(seed ^ ((np.uint64(b) + _ONE) * _GOLDEN))
        top = 0.0
        bottom = 0.0
        for i in range(n):
            u = np.int64(_splitmix64(stream + np.uint64(i)) >> _S11) * _TO_UNIT
            # branch-free inversion for k <= 5 (P(k > 4) = 0.4%), a loop for the tail
            k = (np.int64(u >= c0) + np.int64(u >= c1) + np.int64(u >= c2) + np.int64(u >= c3)
                 + np.int64(u >= c4))
            if k == 5:
                while u >= cdf[k]:
                    k += 1
            top += k * numerator[i]
            bottom += k * denominator[i]
        out[b] = top / bottom if bottom != 0.0 else np.nan
    return out


def _splitmix64_numpy(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> _S30)) * _MIX1
        z = (z ^ (z >> _S27)) * _MIX2
        return z ^ (z >> _S31)


def poisson_multiplicities_numpy(n: int, n_resamples: int, seed: int, first: int = 0) -> np.ndarray:
    """The (n_resamples, n) Poisson(1) multiplicities of replicates ``first, first + 1, ...`` (NumPy twin)."""
    b = np.arange(first, first + n_resamples, dtype=np.uint64)
    with np.errstate(over="ignore"):
        stream = _splitmix64_numpy(np.uint64(seed) ^ ((b + _ONE) * _GOLDEN))
        keys = stream[:, None] + np.arange(n, dtype=np.uint64)[None, :]
    u = (_splitmix64_numpy(keys) >> _S11).astype(np.float64) * _TO_UNIT
    return np.searchsorted(POISSON1_CDF, u, side="right").astype(np.int64)


def bootstrap_ratios_numpy(numerator: np.ndarray, denominator: np.ndarray, n_resamples: int,
                           seed: int) -> np.ndarray:
    """Plain NumPy twin of :func:`bootstrap_ratios`."""
    k = poisson_multiplicities_numpy(len(numerator), n_resamples, seed).astype(np.float64)
    top = (k * numerator).sum(axis=1)
    bottom = (k * denominator).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(bottom != 0.0, top / np.where(bottom != 0.0, bottom, 1.0), np.nan)
