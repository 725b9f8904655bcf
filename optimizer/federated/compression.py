"""Unbiased random sparsification and 8-bit stochastic quantisation of updates.

See :mod:`formulations.federated` (Communication). The sparsity mask is drawn
from the round seed and shared by all clients of that round, so masked
(secure) aggregation adds aligned coordinates and no indices travel.
"""

from __future__ import annotations

import numpy as np


def shared_keep_mask(dim: int, keep_prob: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean keep-mask ξ_j ~ Bernoulli(p) shared by a round's clients (p = 1: all kept)."""
    if keep_prob >= 1.0:
        return np.ones(dim, dtype=bool)
    return rng.random(dim) < keep_prob


def sparsify(g: np.ndarray, keep: np.ndarray, keep_prob: float) -> np.ndarray:
    """Kept coordinates of ``g`` scaled by 1/p (unbiased: E[ĝ] = g over the mask)."""
    return g[keep] / keep_prob if keep_prob < 1.0 else g[keep]


def densify(values: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Place the kept values back into a dense zero vector."""
    out = np.zeros(keep.size)
    out[keep] = values
    return out


def quantize_8bit(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float, float]:
    """Stochastic rounding to 256 levels on [min, max]: returns (uint8 codes, lo, step); unbiased."""
    if x.size == 0:
        return np.zeros(0, dtype=np.uint8), 0.0, 0.0
    lo, hi = float(x.min()), float(x.max())
    step = (hi - lo) / 255.0
    if step == 0.0:
        return np.zeros(x.size, dtype=np.uint8), lo, 0.0
    pos = (x - lo) / step
    floor = np.floor(pos)
    codes = floor + (rng.random(x.size) < (pos - floor))
    return np.clip(codes, 0, 255).astype(np.uint8), lo, step


def dequantize_8bit(codes: np.ndarray, lo: float, step: float) -> np.ndarray:
    """Inverse of :func:`quantize_8bit` (in expectation)."""
    return lo + codes.astype(np.float64) * step


def payload_bytes(n_values: int, quantize_bits: int | None, secure_modulus_bits: int | None) -> int:
    """Bytes one client uploads per round for ``n_values`` coordinates.

    Secure aggregation sends b/8-byte words per coordinate (the 8-bit code is
    expanded back to fixed point before masking); otherwise float32 (4 bytes)
    or 1-byte codes plus two float32 (min, step).
    """
    if secure_modulus_bits is not None:
        return n_values * secure_modulus_bits // 8
    if quantize_bits == 8:
        return n_values + 8
    return 4 * n_values


__all__ = ["shared_keep_mask", "sparsify", "densify", "quantize_8bit", "dequantize_8bit", "payload_bytes"]
