"""Privacy accounting with Google's ``dp-accounting`` (RDP and PLD); no accountant of our own.

A training run of ``steps`` rounds is the composition of ``steps`` Poisson
subsampled Gaussian mechanisms with sampling rate ``q`` and noise multiplier
``sigma`` (see :mod:`formulations.federated`). ``dp_accounting`` is imported
inside the functions so ``import optimizer`` stays cheap.
"""

from __future__ import annotations

import math

from formulations.errors import InputError

ACCOUNTANTS = ("rdp", "pld")


def _check(noise_multiplier: float | None, sampling_rate: float, steps: int, delta: float, accountant: str) -> None:
    if noise_multiplier is not None and not (noise_multiplier >= 0 and math.isfinite(noise_multiplier)):
        raise InputError("noise_multiplier", f"expected a finite number >= 0, got {noise_multiplier}")
    if not (0 < sampling_rate <= 1):
        raise InputError("sampling_rate", f"expected a number in (0, 1], got {sampling_rate}")
    if int(steps) != steps or steps < 1:
        raise InputError("steps", f"expected a positive integer, got {steps}")
    if not (0 < delta < 1):
        raise InputError("delta", f"expected a number in (0, 1), got {delta}")
    if accountant not in ACCOUNTANTS:
        raise InputError("accountant", f"expected one of {', '.join(ACCOUNTANTS)}, got {accountant!r}")


def _event(noise_multiplier: float, sampling_rate: float, steps: int):
    import dp_accounting as dpa

    gaussian = dpa.GaussianDpEvent(float(noise_multiplier))
    step = gaussian if sampling_rate == 1 else dpa.PoissonSampledDpEvent(float(sampling_rate), gaussian)
    return dpa.SelfComposedDpEvent(step, int(steps))


def _quiet_absl() -> None:
    """dp-accounting logs a warning for every fractional RDP order it drops; keep the CLI output clean."""
    import logging

    logging.getLogger("absl").setLevel(logging.ERROR)


def _fresh(accountant: str):
    import dp_accounting as dpa

    _quiet_absl()
    return dpa.rdp.RdpAccountant() if accountant == "rdp" else dpa.pld.PLDAccountant()


def privacy_epsilon(noise_multiplier: float, sampling_rate: float, steps: int, delta: float,
                    accountant: str = "rdp") -> float:
    """ε of ``steps`` Poisson-subsampled Gaussian rounds at ``delta``.

    Parameters
    ----------
    noise_multiplier : float
        σ, noise std divided by the clip norm C. ``0`` means no noise (ε = inf).
    sampling_rate : float
        q, probability that a unit (client or user) takes part in a round.
    steps : int
        T, number of rounds.
    delta : float
        Target δ.
    accountant : {"rdp", "pld"}
        ``dp_accounting.rdp.RdpAccountant`` or ``dp_accounting.pld.PLDAccountant``.

    Returns
    -------
    float
        ε (``math.inf`` without noise).

    Examples
    --------
    >>> round(privacy_epsilon(1.0, 0.01, 1000, 1e-5), 2)
    2.1
    """
    _check(noise_multiplier, sampling_rate, steps, delta, accountant)
    if noise_multiplier == 0:
        return math.inf
    acc = _fresh(accountant)
    acc.compose(_event(noise_multiplier, sampling_rate, steps))
    return float(acc.get_epsilon(float(delta)))


def calibrate_noise(target_epsilon: float, sampling_rate: float, steps: int, delta: float,
                    accountant: str = "rdp", tol: float = 1e-4) -> float:
    """Smallest noise multiplier σ (within ``tol``) whose ε is at most ``target_epsilon``.

    Uses ``dp_accounting.calibrate_dp_mechanism`` (Brent search on a fresh
    accountant per trial), which guarantees the returned σ does not exceed
    the privacy budget. ``target_epsilon = inf`` returns ``0.0`` (no noise).
    """
    _check(None, sampling_rate, steps, delta, accountant)
    if math.isinf(target_epsilon):
        return 0.0
    if not (target_epsilon > 0):
        raise InputError("target_epsilon", f"expected a number > 0, got {target_epsilon}")
    import dp_accounting as dpa

    def event(s: float):
        return _event(s, sampling_rate, steps)

    if accountant == "rdp":
        bracket = dpa.LowerEndpointAndGuess(1e-3, 1.0)
    else:
        # PLD at tiny σ needs gigabytes; bracket it from the RDP answer (PLD is tighter, so σ_pld <= σ_rdp)
        upper = calibrate_noise(target_epsilon, sampling_rate, steps, delta, "rdp", tol)
        while privacy_epsilon(upper, sampling_rate, steps, delta, "pld") > target_epsilon:
            upper *= 1.5
        lower = upper / 2
        while privacy_epsilon(lower, sampling_rate, steps, delta, "pld") <= target_epsilon:
            if lower < 0.2:
                raise InputError("target_epsilon", f"ε = {target_epsilon} needs σ < 0.2; PLD calibration "
                                                   "would need too much memory, use accountant='rdp'")
            upper, lower = lower, lower / 2
        bracket = dpa.ExplicitBracketInterval(lower, upper)
    sigma = dpa.calibrate_dp_mechanism(lambda: _fresh(accountant), event, float(target_epsilon), float(delta),
                                       bracket_interval=bracket, tol=tol)
    return float(sigma)


__all__ = ["privacy_epsilon", "calibrate_noise", "ACCOUNTANTS"]
