"""Safe modes (drift / masking → cautious, pause → fallback, rollback), the trigger, knobs, projection."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from formulations import streaming as F
from formulations.errors import InputError
from optimizer.service.governance import GovernanceConfig, KnobTuner
from optimizer.service.model import ModelVersion, ProjectedLogistic
from tests.test_service_app import base_engine, small_engine

FAST = GovernanceConfig(monitor_window=40, monitor_every=20, drift_threshold=1.0, rollback_min_observations=20)


def units(engine, n=40):
    return sorted(engine.store.state.customers)[:n]


def test_normal_traffic_stays_normal(tmp_path):
    eng = small_engine(tmp_path, governance=FAST)
    for u in units(eng):
        eng.decide(u)
    assert eng.modes.mode == "normal" and eng.modes.drift < FAST.drift_threshold
    eng.close()


def test_injected_drift_switches_to_cautious_mode(tmp_path):
    eng = small_engine(tmp_path, governance=FAST)
    now = int(time.time()) - 60
    burst = [{"event_id": f"burst-{u}-{i}", "customer_id": u, "ts": now - i, "type": "call", "subtype": "complaint",
              "value": 600} for u in units(eng) for i in range(30)]
    assert eng.ingest(burst)["accepted"] == len(burst)
    for u in units(eng):
        eng.decide(u)
    assert eng.modes.drift > FAST.drift_threshold
    assert eng.modes.mode == "cautious" and "drift" in eng.modes.reasons
    out = eng.decide(units(eng)[0])
    rec = json.loads(eng.log.path.read_text().splitlines()[-1])
    assert out["mode"] == rec["mode"] == "cautious"
    assert rec["n_candidates"] <= FAST.cautious_breadth < eng.config.breadth
    normal_tau = eng.registry.active.policy.temperature_
    assert rec["temperature"] == pytest.approx(normal_tau * FAST.cautious_temperature_factor)
    eng.close()


def test_masking_rate_switches_to_cautious_mode(tmp_path):
    eng = small_engine(tmp_path, governance=FAST)
    for u in units(eng):
        eng.decide(u, {"consent": {"profiling": False}})
    assert eng.modes.mask_rate == 1.0 and "masking" in eng.modes.reasons and eng.modes.mode == "cautious"
    for u in units(eng):          # the window refills with unmasked traffic: back to normal
        eng.decide(u)
    assert eng.modes.mode == "normal"
    eng.close()


def test_pause_serves_the_fallback_only(tmp_path):
    eng = small_engine(tmp_path)
    eng.pause(True)
    out = [eng.decide(u) for u in units(eng)]
    assert {(o["action"], o["reason"], o["mode"], o["propensity"]) for o in out} == {(0, "paused", "paused", 1.0)}
    eng.pause(False)
    assert any(eng.decide(u)["action"] > 0 for u in units(eng))
    eng.close()


def test_rollback_restores_the_previous_model_id(tmp_path):
    eng = small_engine(tmp_path)
    assert eng.registry.active.model_id == "demo-v2"
    entry = eng.rollback()
    assert entry["previous"] == "demo-v2" and eng.registry.active.model_id == "demo-v1"
    assert eng.decide(units(eng)[0])["model_id"] == "demo-v1"
    with pytest.raises(InputError):
        eng.rollback()
    eng.close()


class Broken:
    def predict_proba(self, x):
        raise FloatingPointError("corrupted weights")


def test_error_rate_trigger_rolls_back_automatically(tmp_path):
    eng = small_engine(tmp_path, governance=FAST)
    good = eng.registry.active
    eng.registry.deploy(ModelVersion("broken-v3", Broken(), good.policy, good.feature_mean, good.feature_std,
                                     info=good.info))
    out = [eng.decide(u) for u in units(eng)]
    errors = [o for o in out if o["reason"] == "error"]
    assert len(errors) == FAST.rollback_min_observations           # r_t fires as soon as it may
    assert all(o["action"] == 0 and o["model_id"] == "broken-v3" for o in errors)
    assert eng.registry.active.model_id == "demo-v2"
    assert all(o["model_id"] == "demo-v2" and o["reason"] != "error" for o in out[len(errors):])
    admin = [json.loads(line) for line in (tmp_path / "admin.jsonl").read_text().splitlines()]
    assert admin[-1]["action"] == "rollback" and admin[-1]["reason"].startswith("trigger:")
    assert "error" in admin[-1]["reason"] and admin[-1]["previous"] == "broken-v3"
    eng.close()


def test_rollback_trigger_and_ewma():
    assert F.rollback_trigger({"error": 0.2, "latency": 0.01}, {"error": 0.1, "latency": 0.05}) == ["error"]
    assert F.rollback_trigger({"error": 0.1}, {"error": 0.1}) == []          # strict inequality
    q = 0.0
    for _ in range(50):
        q = F.ewma(q, 1.0, 0.1)
    assert q == pytest.approx(1 - 0.9 ** 50)


def test_knob_steps_are_bounded_and_reversible():
    tuner = KnobTuner({"temperature": (0.05, 0.01, 0.2, 0.02), "breadth": (200, 50, 1000, 100)}, alpha=0.5, beta=2.0)

    def objective(k):       # J = loss + α cost + β risk with a known optimum at temperature 0.09, breadth 450
        return tuner.objective((k["temperature"] - 0.09) ** 2 * 100, (k["breadth"] - 450) ** 2 / 1e5, 0.0)

    path = [tuner.values.copy()]
    for _ in range(10):
        tuner.step(np.array([1.0, 1000.0]), objective)
        path.append(tuner.values.copy())
    steps = np.abs(np.diff(np.array(path), axis=0))
    assert (steps <= tuner.max_step + 1e-12).all()
    assert (np.array(path) >= tuner.lower).all() and (np.array(path) <= tuner.upper).all()
    assert tuner.current()["temperature"] == pytest.approx(0.09) and tuner.current()["breadth"] == pytest.approx(400)
    rejected = [h for h in tuner.history if not h["kept"]]
    assert rejected and all(h["objective"] > 0 for h in rejected)          # worse steps were reverted
    before = tuner.current()
    tuner.revert(1)
    assert tuner.current() != before


def test_projection_removes_the_parity_delta_at_an_accuracy_cost():
    from optimizer.service.demo import parity_report, synthetic_labels
    from optimizer.service.model import feature_vector

    eng = base_engine()
    now = eng.store.state.spec.epoch_us + 21 * F.US_PER_DAY
    x = np.array([feature_vector(eng.store.state.features(u, now)) for u in sorted(eng.store.state.customers)])
    x = np.repeat(x, 20, axis=0) + np.random.default_rng(0).normal(0, 0.05, (20 * len(x), x.shape[1]))
    y, cohort = synthetic_labels(x, seed=1)
    rep = parity_report(x, y, cohort, rho=100.0)
    assert rep["projected"]["parity_delta"] < 0.25 * rep["unpenalised"]["parity_delta"]
    assert rep["projected"]["logit_gap"] < 0.05 * rep["unpenalised"]["logit_gap"]
    assert rep["projected"]["log_loss"] >= rep["unpenalised"]["log_loss"]          # the price paid in accuracy
    p = F.projection_matrix(x, cohort)
    np.testing.assert_allclose(p @ p, p, atol=1e-10)
    np.testing.assert_allclose(p, p.T, atol=1e-12)
    model = ProjectedLogistic(rho=1e4).fit(x, y, p)
    assert np.abs(p @ model.coef_.T).max() < 1e-3


def test_newton_fit_matches_scipy_lbfgs():
    from scipy.optimize import minimize

    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 4))
    y = (rng.random(300) < 1 / (1 + np.exp(-(x @ [1.0, -0.5, 0.2, 0.0] - 0.3)))).astype(float)
    p = F.projection_matrix(x, (x[:, 0] > 0).astype(int))
    m = ProjectedLogistic(rho=3.0, l2=0.01).fit(x, y[:, None], p)

    def f(w):
        s = w[0] + x @ w[1:]
        return np.mean(np.logaddexp(0, s) - y * s) + 0.005 * w[1:] @ w[1:] + 3.0 * np.sum((p @ w[1:]) ** 2)
    ref = minimize(f, np.zeros(5), method="BFGS", options={"gtol": 1e-10}).x
    np.testing.assert_allclose(np.r_[m.intercept_, m.coef_[0]], ref, atol=1e-5)
