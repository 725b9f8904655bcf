"""Issue 10: privacy accounting wraps dp-accounting (RDP and PLD); calibrated σ meets the target ε."""

from __future__ import annotations

import math

import pytest

dpa = pytest.importorskip("dp_accounting")

from formulations.errors import InputError  # noqa: E402
from optimizer.federated import calibrate_noise, privacy_epsilon  # noqa: E402


def _reference(sigma, q, steps, delta, accountant):
    event = dpa.SelfComposedDpEvent(dpa.PoissonSampledDpEvent(q, dpa.GaussianDpEvent(sigma)), steps)
    acc = dpa.rdp.RdpAccountant() if accountant == "rdp" else dpa.pld.PLDAccountant()
    return acc.compose(event).get_epsilon(delta)


def test_issue_example_rdp_is_2_10():
    assert privacy_epsilon(1.0, 0.01, 1000, 1e-5, accountant="rdp") == pytest.approx(2.10, abs=0.005)


@pytest.mark.parametrize("sigma,q,steps", [(1.0, 0.01, 1000), (0.8, 0.05, 200), (2.5, 0.1, 300)])
def test_rdp_matches_dp_accounting(sigma, q, steps):
    assert privacy_epsilon(sigma, q, steps, 1e-5) == pytest.approx(_reference(sigma, q, steps, 1e-5, "rdp"), rel=1e-12)


def test_pld_matches_dp_accounting_and_is_tighter_than_rdp():
    pld = privacy_epsilon(1.0, 0.01, 1000, 1e-5, accountant="pld")
    assert pld == pytest.approx(_reference(1.0, 0.01, 1000, 1e-5, "pld"), rel=1e-9)
    assert pld < privacy_epsilon(1.0, 0.01, 1000, 1e-5, accountant="rdp")


@pytest.mark.parametrize("target,q,steps", [(1.0, 0.01, 1000), (8.0, 0.1, 300)])
def test_calibrated_sigma_achieves_target(target, q, steps):
    sigma = calibrate_noise(target, q, steps, 1e-5)
    eps = _reference(sigma, q, steps, 1e-5, "rdp")  # checked with dp-accounting directly
    assert eps <= target + 1e-9                     # never spends more than the budget
    assert eps == pytest.approx(target, rel=1e-3)   # and not needlessly noisy
    assert privacy_epsilon(sigma * 0.99, q, steps, 1e-5) > target


def test_epsilon_monotone_and_infinite_without_noise():
    assert privacy_epsilon(2.0, 0.01, 100, 1e-5) < privacy_epsilon(1.0, 0.01, 100, 1e-5)
    assert privacy_epsilon(1.0, 0.01, 100, 1e-5) < privacy_epsilon(1.0, 0.01, 1000, 1e-5)
    assert math.isinf(privacy_epsilon(0.0, 0.01, 100, 1e-5))
    assert calibrate_noise(math.inf, 0.01, 100, 1e-5) == 0.0


@pytest.mark.parametrize("kwargs,field", [(dict(sampling_rate=0.0), "sampling_rate"), (dict(delta=1.5), "delta"),
                                          (dict(steps=0), "steps"), (dict(accountant="moments"), "accountant")])
def test_bad_inputs_name_the_field(kwargs, field):
    args = dict(noise_multiplier=1.0, sampling_rate=0.01, steps=10, delta=1e-5) | kwargs
    with pytest.raises(InputError) as err:
        privacy_epsilon(**args)
    assert err.value.field == field
