"""Uplift metrics agree with scikit-uplift (test-only reference) within 1e-9 on shared inputs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from formulations.errors import InputError
from optimizer.evaluation import (perfect_qini_curve, perfect_uplift_curve, qini_auc_score, qini_curve,
                                  uplift_at_k, uplift_auc_score, uplift_curve)

sklift = pytest.importorskip("sklift.metrics")


def _cases():
    """Shared inputs: continuous scores, heavy ties, a real uplift signal, unbalanced groups, tiny n."""
    out = []
    for seed, n, ties, effect, share in [(0, 1000, False, 0.0, 0.5), (1, 2000, True, 0.1, 0.5),
                                         (2, 777, False, 0.3, 0.2), (3, 60, True, -0.2, 0.7),
                                         (4, 5000, True, 0.05, 0.5), (5, 12, False, 0.0, 0.5)]:
        rng = np.random.default_rng(seed)
        t = (rng.random(n) < share).astype(int)
        t[:2] = [0, 1]
        score = rng.normal(size=n)
        uplift = np.round(score * 3) if ties else score
        p = np.clip(0.2 + effect * t * (score > 0), 0.01, 0.99)
        y = (rng.random(n) < p).astype(int)
        y[:2] = [0, 1]
        out.append((y, uplift, t))
    return out


CASES = _cases()


@pytest.fixture(autouse=True)
def _quiet_reference():
    with warnings.catch_warnings():  # scikit-uplift uses a deprecated sklearn helper
        warnings.simplefilter("ignore")
        yield


@pytest.mark.parametrize("case", range(len(CASES)))
def test_curves_match_scikit_uplift(case):
    y, u, t = CASES[case]
    for ours, ref in ((qini_curve, sklift.qini_curve), (uplift_curve, sklift.uplift_curve)):
        x1, y1 = ours(y, u, t)
        x2, y2 = ref(y, u, t)
        np.testing.assert_allclose(x1, x2, rtol=0, atol=1e-9)
        np.testing.assert_allclose(y1, y2, rtol=0, atol=1e-9)
    for neg in (True, False):
        np.testing.assert_allclose(np.vstack(perfect_qini_curve(y, t, neg)),
                                   np.vstack(sklift.perfect_qini_curve(y, t, neg)), atol=1e-9)
    np.testing.assert_allclose(np.vstack(perfect_uplift_curve(y, t)), np.vstack(sklift.perfect_uplift_curve(y, t)),
                               atol=1e-9)


def _agree(ours, ref) -> None:
    """Same number (NaN included), or scikit-uplift's ValueError matched by our InputError."""
    try:
        expected = ref()
    except ValueError:
        with pytest.raises(InputError):
            ours()
        return
    got = ours()
    if np.isnan(expected):
        assert np.isnan(got)
    else:
        assert abs(got - expected) < 1e-9, (got, expected)


@pytest.mark.parametrize("case", range(len(CASES)))
def test_scores_match_scikit_uplift(case):
    y, u, t = CASES[case]
    for neg in (True, False):
        _agree(lambda: qini_auc_score(y, u, t, negative_effect=neg), lambda: sklift.qini_auc_score(y, u, t, neg))
    _agree(lambda: uplift_auc_score(y, u, t), lambda: sklift.uplift_auc_score(y, u, t))
    n = len(y)
    for strategy in ("overall", "by_group"):
        for k in (0.1, 0.3, 0.5, 0.9, 5, n // 3):
            _agree(lambda: uplift_at_k(y, u, t, strategy, k), lambda: sklift.uplift_at_k(y, u, t, strategy, k))


def test_keyword_k_and_default_strategy():
    y, u, t = CASES[1]
    assert uplift_at_k(y, u, t, k=0.3) == pytest.approx(sklift.uplift_at_k(y, u, t, "overall", 0.3), abs=1e-12)


def test_perfect_ranking_scores_one_and_curve_by_hand():
    y = np.array([1, 0, 0, 1, 0, 1])
    t = np.array([1, 1, 0, 0, 1, 0])
    u = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    x, q = qini_curve(y, u, t)
    # after 1: Y_t = 1 -> 1; after 2: 1; after 3: 1 - 0 * 2/1 = 1; after 4: 1 - 1 * 2/2 = 0;
    # after 5: 1 - 1 * 3/2 = -0.5; after 6: 1 - 2 * 3/3 = -1
    np.testing.assert_allclose(x, [0, 1, 2, 3, 4, 5, 6])
    np.testing.assert_allclose(q, [0, 1, 1, 1, 0, -0.5, -1])
    oracle = y * t - y * (1 - t)
    assert qini_auc_score(y, oracle, t) == pytest.approx(1.0)


@pytest.mark.parametrize("call, field", [
    (lambda: qini_auc_score([0, 1, 1], [0.1, 0.2, 0.3], [0, 0, 0]), "treatment"),
    (lambda: qini_auc_score([0, 1, 2], [0.1, 0.2, 0.3], [0, 1, 1]), "y_true"),
    (lambda: uplift_auc_score([0, 1], [0.1, 0.2, 0.3], [0, 1, 1]), "uplift"),
    (lambda: uplift_at_k([0, 1, 1], [0.1, 0.2, 0.3], [0, 1, 1], "top", 0.5), "strategy"),
    (lambda: uplift_at_k([0, 1, 1], [0.1, 0.2, 0.3], [0, 1, 1], "overall", 1.5), "k"),
    (lambda: uplift_at_k([0, 1, 1], [0.1, np.nan, 0.3], [0, 1, 1], "overall", 0.5), "uplift"),
    (lambda: qini_curve([], [], []), "y_true"),
])
def test_bad_inputs(call, field):
    with pytest.raises(InputError) as err:
        call()
    assert err.value.field == field
