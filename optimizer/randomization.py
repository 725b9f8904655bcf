"""Deterministic hash-based randomisation of units (A/B holdout, reproducible draws).

A unit's uniform draw is

.. math::

    U(\\text{unit}, \\text{salt}) = \\lfloor h / 2^{11} \\rfloor \\cdot 2^{-53} \\in [0, 1),

where *h* is the first 8 bytes (big-endian) of
``blake2b(salt + "\\x1f" + str(unit_id), digest_size=8)``. It depends only on
the salt and the unit id — never on Python's per-process ``hash()`` seed, the
machine, the order of the units or the batch — so the same unit id + salt
gives the same arm and the same draw in every process. ``str()`` of the id is
hashed: the unit ``42`` and the unit ``"42"`` are the same unit.

The control (holdout) group is ``U(unit, salt + "/arm") < control_share``;
action draws use ``salt + "/draw"``, so the two are independent. A new salt
(e.g. per experiment) re-randomises everybody.
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterable

import numpy as np

from formulations.errors import InputError

_SCALE = 2.0 ** -53
SEPARATOR = "\x1f"


def hash_uniforms(unit_ids: Iterable[Any], salt: str) -> np.ndarray:
    """Uniform draws in [0, 1) from unit ids and a salt (see the module docstring).

    Parameters
    ----------
    unit_ids : iterable
        Unit identifiers; ``str(unit_id)`` is hashed.
    salt : str

    Returns
    -------
    ndarray of float64
    """
    base = hashlib.blake2b((str(salt) + SEPARATOR).encode("utf-8"), digest_size=8)
    digests = bytearray()
    count = 0
    for uid in unit_ids:
        h = base.copy()
        h.update(str(uid).encode("utf-8"))
        digests += h.digest()
        count += 1
    if count == 0:
        return np.zeros(0)
    words = np.frombuffer(bytes(digests), dtype=">u8")
    return (words >> np.uint64(11)).astype(np.float64) * _SCALE


def hash_uniform(unit_id: Any, salt: str) -> float:
    """The draw of one unit (same value as :func:`hash_uniforms`)."""
    h = hashlib.blake2b((str(salt) + SEPARATOR + str(unit_id)).encode("utf-8"), digest_size=8).digest()
    return (int.from_bytes(h, "big") >> 11) * _SCALE


def check_share(value: Any, field: str = "control_share") -> float:
    """A share in [0, 1)."""
    try:
        share = float(value)
    except (TypeError, ValueError):
        raise InputError(field, f"expected a number in [0, 1), got {value!r}") from None
    if not np.isfinite(share) or not 0.0 <= share < 1.0:
        raise InputError(field, f"expected a number in [0, 1), got {value!r}")
    return share


def control_group(unit_ids: Iterable[Any], share: float, salt: str) -> np.ndarray:
    """Boolean mask of the units in the control (holdout) group: ``U(unit, salt/arm) < share``."""
    share = check_share(share)
    return hash_uniforms(unit_ids, str(salt) + "/arm") < share
