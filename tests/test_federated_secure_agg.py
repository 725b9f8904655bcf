"""Issue 10: secure aggregation — exact fixed-point sum with dropouts, quorum abort, masks look uniform."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from formulations.federated import decode_fixed_point, encode_fixed_point
from optimizer.federated import QuorumError, SecureAggregationRound, secure_sum


@pytest.mark.parametrize("modulus_bits,frac_bits,scale", [(64, 24, 10.0), (32, 16, 0.5)])
def test_hundred_clients_thirty_percent_dropout_exact_bit_for_bit(modulus_bits, frac_bits, scale):
    rng = np.random.default_rng(0)
    n, d = 100, 64
    x = rng.normal(0, scale, (n, d))
    arrived = rng.permutation(n) >= 30                           # exactly 30 drop out
    sa = SecureAggregationRound(n, d, quorum=60, frac_bits=frac_bits, modulus_bits=modulus_bits, random_state=1)
    masked = {i: sa.mask(i, x[i]) for i in range(n) if arrived[i]}
    total = sa.aggregate(masked)
    plain = np.zeros(d, dtype=sa.dtype)
    for i in np.flatnonzero(arrived):
        plain = plain + encode_fixed_point(x[i], frac_bits, modulus_bits)
    assert total.dtype == plain.dtype and np.array_equal(total, plain)          # bit for bit
    np.testing.assert_allclose(sa.decode(total), x[arrived].sum(axis=0), atol=70 * 2.0 ** -frac_bits)
    assert len(sa.revealed_) == 1 and len(sa.revealed_[0]) == 70 * 30            # survivor × dropped seeds


def test_without_dropout_masks_cancel_and_nothing_is_revealed():
    sa = SecureAggregationRound(5, 8, quorum=5, random_state=2)
    zero = np.zeros(8)
    assert np.array_equal(sa.aggregate({i: sa.mask(i, zero) for i in range(5)}), np.zeros(8, dtype=np.uint64))
    assert sa.revealed_ == []


def test_below_quorum_aborts_without_revealing_seeds():
    sa = SecureAggregationRound(10, 4, quorum=8, random_state=3)
    masked = {i: sa.mask(i, np.ones(4)) for i in range(7)}
    with pytest.raises(QuorumError):
        sa.aggregate(masked)
    assert sa.revealed_ == []
    with pytest.raises(QuorumError):
        sa.reveal_seeds(list(range(7)), [7, 8, 9])
    assert sa.revealed_ == []


def test_masked_vector_is_uniform_whatever_the_input():
    d = 20_000
    inputs = {"zeros": np.zeros(d), "large": np.full(d, 1e6), "ramp": np.linspace(-1e3, 1e3, d)}
    top_bytes = []
    for k, x in enumerate(inputs.values()):
        sa = SecureAggregationRound(3, d, quorum=2, random_state=10 + k)
        y = sa.mask(0, x)
        top = (y >> np.uint64(56)).astype(np.int64)                       # top byte of each word
        counts = np.bincount(top, minlength=256)
        assert stats.chisquare(counts).pvalue > 1e-4                       # uniform on 0..255
        u = y.astype(np.float64) / 2.0**64
        assert stats.kstest(u, "uniform").pvalue > 1e-4
        assert abs(np.corrcoef(u, x)[0, 1] if x.std() else 0.0) < 0.05   # no trace of the input
        top_bytes.append(top)
    # the server's view of client 0 has the same distribution for very different inputs
    assert stats.ks_2samp(top_bytes[0], top_bytes[1]).pvalue > 1e-4


def test_server_view_of_one_client_does_not_decode_to_its_update():
    d = 1000
    x = np.random.default_rng(4).normal(0, 1, d)
    sa = SecureAggregationRound(4, d, quorum=3, random_state=5)
    y = sa.mask(1, x)
    guess = decode_fixed_point(y, sa.frac_bits, sa.modulus_bits)
    assert np.median(np.abs(guess - x)) > 1e6                                # decoding it gives garbage


def test_secure_sum_wrapper_matches_float_sum():
    rng = np.random.default_rng(6)
    ups = [rng.normal(size=16) for _ in range(12)]
    arrived = [i % 4 != 0 for i in range(12)]
    np.testing.assert_allclose(secure_sum(ups, arrived, quorum=6, random_state=0),
                               np.sum([u for u, a in zip(ups, arrived) if a], axis=0), atol=1e-5)
