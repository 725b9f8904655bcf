"""Metrics of the uplift models agree with scikit-uplift / scikit-learn (test-only references) within 1e-9."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from formulations.errors import InputError
from optimizer.evaluation import qini_auc_score, uplift_at_k, uplift_auc_score
from optimizer.uplift import TLearner, log_loss, qini_interval, roc_auc, uplift_report

sk_metrics = pytest.importorskip("sklearn.metrics")
sklift = pytest.importorskip("sklift.metrics")


@pytest.fixture(autouse=True)
def _quiet_reference():
    with warnings.catch_warnings():  # scikit-uplift uses a deprecated sklearn helper
        warnings.simplefilter("ignore")
        yield


def _trial(seed: int, n: int = 3000):
    """A randomised trial whose effect grows with x0: outcome, treatment and a fitted T-learner's uplift."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    t = (rng.random(n) < 0.5).astype(int)
    p = 1.0 / (1.0 + np.exp(-(-1.5 + 0.4 * X[:, 1] + t * (0.2 + 0.8 * X[:, 0]))))
    y = (rng.random(n) < p).astype(int)
    tau = TLearner(l2=1.0).fit(X, y, t).predict(X)
    return X, y, t, tau


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_uplift_metrics_agree_with_scikit_uplift_on_model_output(seed):
    _, y, t, tau = _trial(seed)
    for ours, ref in [(qini_auc_score(y, tau, t), sklift.qini_auc_score(y, tau, t)),
                      (qini_auc_score(y, tau, t, negative_effect=False),
                       sklift.qini_auc_score(y, tau, t, negative_effect=False)),
                      (uplift_auc_score(y, tau, t), sklift.uplift_auc_score(y, tau, t))]:
        assert abs(ours - ref) <= 1e-9
    for strategy in ("overall", "by_group"):
        for k in (0.1, 0.3, 500):
            assert abs(uplift_at_k(y, tau, t, strategy=strategy, k=k)
                       - sklift.uplift_at_k(y, tau, t, strategy=strategy, k=k)) <= 1e-9


@pytest.mark.parametrize("seed", [0, 3])
def test_log_loss_and_auc_agree_with_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    y = (rng.random(2000) < 0.3).astype(int)
    p = np.clip(rng.beta(2, 5, 2000) + 0.2 * y, 0, 1)
    p[:3] = [0.0, 1.0, 0.5]                                         # clipping at the ends
    assert abs(log_loss(y, p) - sk_metrics.log_loss(y, np.clip(p, 1e-15, 1 - 1e-15))) <= 1e-9
    tied = np.round(p * 5)                                          # heavy ties count one half
    for score in (p, tied):
        assert abs(roc_auc(y, score) - sk_metrics.roc_auc_score(y, score)) <= 1e-9


def test_uplift_report_uses_the_shared_metrics():
    _, y, t, tau = _trial(4)
    rep = uplift_report(y, tau, t, n_bootstrap=50)
    assert rep.qini == pytest.approx(sklift.qini_auc_score(y, tau, t), abs=1e-9)
    assert rep.auuc == pytest.approx(sklift.uplift_auc_score(y, tau, t), abs=1e-9)
    assert rep.uplift_at_30 == pytest.approx(sklift.uplift_at_k(y, tau, t, strategy="overall", k=0.3), abs=1e-9)
    assert rep.observed_uplift == pytest.approx(y[t == 1].mean() - y[t == 0].mean())


def test_qini_interval_separates_a_real_ranking_from_a_random_one():
    _, y, t, tau = _trial(5, n=4000)
    good = qini_interval(y, tau, t, n_bootstrap=100, random_state=0)
    assert good.ci[0] <= good.qini <= good.ci[1]
    assert good.beats_random
    noise = qini_interval(y, np.random.default_rng(9).normal(size=y.size), t, n_bootstrap=100, random_state=0)
    assert not noise.beats_random and noise.ci[0] < 0 < noise.ci[1]


def test_metric_inputs_are_checked():
    with pytest.raises(InputError, match="y_true"):
        log_loss([0, 2], [0.1, 0.2])
    with pytest.raises(InputError, match="y_prob"):
        log_loss([0, 1], [0.1, 1.2])
    with pytest.raises(InputError, match="y_true"):
        roc_auc([1, 1], [0.1, 0.2])
    with pytest.raises(InputError, match="n_bootstrap"):
        qini_interval([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4], [0, 0, 1, 1], n_bootstrap=3)
