"""Issue 10: unbiased sparsification, 8-bit quantisation, bytes per round."""

from __future__ import annotations

import numpy as np
import pytest

from optimizer.federated import FederatedTrainer
from optimizer.federated.compression import (densify, dequantize_8bit, payload_bytes, quantize_8bit,
                                             shared_keep_mask, sparsify)
from optimizer.federated.data import synthetic_regions


def test_random_sparsification_is_unbiased():
    rng = np.random.default_rng(0)
    g = rng.normal(size=20)
    p, reps = 0.25, 20_000
    acc = np.zeros_like(g)
    for _ in range(reps):
        keep = shared_keep_mask(g.size, p, rng)
        acc += densify(sparsify(g, keep, p), keep)
    se = np.abs(g) * np.sqrt((1 - p) / p / reps)
    assert np.all(np.abs(acc / reps - g) < 5 * se + 1e-12)


def test_8bit_quantisation_is_unbiased_and_within_one_step():
    rng = np.random.default_rng(1)
    x = rng.normal(size=50)
    codes, lo, step = quantize_8bit(x, rng)
    assert codes.dtype == np.uint8 and np.all(np.abs(dequantize_8bit(codes, lo, step) - x) <= step + 1e-12)
    mean = np.mean([dequantize_8bit(*quantize_8bit(x, rng)) for _ in range(4000)], axis=0)
    assert np.max(np.abs(mean - x)) < 5 * step / np.sqrt(4000)


def test_bytes_per_round_reported_and_reduced():
    clients, test = synthetic_regions(n_regions=4, rows_per_region=300, d=40, seed=0)
    kw = dict(n_rounds=10, local_epochs=1, random_state=0)
    dense = FederatedTrainer(**kw).fit(clients)
    small = FederatedTrainer(keep_prob=0.25, quantize_bits=8, **kw).fit(clients)
    extra = 40 + 1 + 1                                   # drift statistics (d + 1) and the row count
    assert dense.bytes_per_round_ == 4 * 4 * (40 + extra)
    kept = small.history_["upload_bytes"] / 4 - 8 - 4 * extra
    assert ((kept > 0) & (kept < 40)).all() and kept.mean() == pytest.approx(10, abs=4)
    stats_bytes = 4 * 4 * extra
    assert small.bytes_per_round_ - stats_bytes < 0.2 * (dense.bytes_per_round_ - stats_bytes)
    assert small.loss(test.X, test.y) < 1.1 * dense.loss(test.X, test.y)
    assert payload_bytes(100, None, 64) == 800 and payload_bytes(100, 8, None) == 108
