"""Decision traces as JSON lines, for off-policy evaluation.

One line per decision, one JSON object per line (UTF-8)::

    {"decision_id": "d3f9a1c2-17", "unit_id": "C0000042", "timestamp": 1764355060.123456,
     "action": 3, "propensity": 0.2513, "prices": [1.5127], "model_version": "v1",
     "arm": "treatment", "reason": "policy"}

=================  ===========  ==========================================================
field              type         meaning
=================  ===========  ==========================================================
``decision_id``    string       unique id: a random per-policy prefix and a sequence number
``unit_id``        as given     the unit (customer) id, ``null`` when none was passed
``timestamp``      number       seconds since the Unix epoch (UTC) when the batch was decided
``action``         integer      chosen action, 0 = no contact
``propensity``     number       probability with which the logging policy chose ``action``
``prices``         list         resource prices used, one per cost row
``model_version``  string       version of the model (prices) that decided
``arm``            string       ``treatment`` or ``control`` (holdout)
``reason``         string       ``policy``, ``fallback_missing``, ``fallback_stale``, ``control``
=================  ===========  ==========================================================

With ``LagrangianPolicy(..., trace_probabilities=True)`` each line also has
``action_probabilities``: the full distribution the action was drawn from
(a list indexed by action), so an evaluation can check the support of a
target policy. The schema matches :mod:`optimizer.evaluation.traces`
(``timestamp`` is read as its ``time``).

Append semantics: the file is opened with ``O_APPEND`` and every ``write``
system call carries whole lines only (a batch is split into blocks of at
most 1 MiB at line ends), so concurrent writers never interleave inside a
line. A crash in the middle of a block can leave an unterminated last line;
:func:`read_trace` ignores it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from formulations.errors import InputError
from formulations.policy import REASON_CONTROL, REASON_NAMES

if TYPE_CHECKING:  # pragma: no cover
    from optimizer.policy import Decision

TRACE_FIELDS = ("decision_id", "unit_id", "timestamp", "action", "propensity", "prices", "model_version", "arm",
                "reason")
BLOCK_BYTES = 1 << 20


def _json_id(uid: Any) -> str:
    if isinstance(uid, (np.integer,)):
        return str(int(uid))
    if isinstance(uid, (np.floating,)):
        uid = float(uid)
    elif isinstance(uid, np.str_):
        uid = str(uid)
    return json.dumps(uid, ensure_ascii=False)


def trace_lines(decision: "Decision") -> list[str]:
    """The JSON lines of a decision batch (each ends with a newline)."""
    n = len(decision)
    ids = decision.decision_ids
    units = decision.unit_ids
    prices = json.dumps([float(p) for p in decision.prices])
    head_version = json.dumps(decision.model_version)
    stamp = repr(float(decision.timestamp))
    reasons = decision.reasons.tolist()
    actions = decision.actions.tolist()
    props = decision.propensities.tolist()
    probs = None if decision.probabilities is None else decision.probabilities.tolist()
    lines = []
    for i in range(n):
        r = reasons[i]
        unit = "null" if units is None else _json_id(units[i])
        extra = "" if probs is None else f', "action_probabilities": {json.dumps(probs[i])}'
        lines.append(f'{{"decision_id": "{ids[i]}", "unit_id": {unit}, "timestamp": {stamp}, '
                     f'"action": {actions[i]}, "propensity": {props[i]!r}, "prices": {prices}, '
                     f'"model_version": {head_version}, '
                     f'"arm": "{"control" if r == REASON_CONTROL else "treatment"}", '
                     f'"reason": "{REASON_NAMES[r]}"{extra}}}\n')
    return lines


class DecisionTrace:
    """Append-only JSON-lines decision log (see the module docstring for the schema).

    Parameters
    ----------
    path : str or path-like
        The trace file; created if missing, appended to otherwise. Its
        directory must exist.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        p = Path(path)
        parent = p.parent if str(p.parent) else Path(".")
        if not parent.is_dir():
            raise InputError("trace", f"directory {str(parent)!r} does not exist")
        if p.is_dir():
            raise InputError("trace", f"{str(p)!r} is a directory")
        self.path = p
        self._fd: int | None = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.lines_written = 0

    def write(self, decision: "Decision") -> int:
        """Append one line per decision; returns the number of lines written."""
        if self._fd is None:
            raise InputError("trace", f"the trace {str(self.path)!r} is closed")
        lines = trace_lines(decision)
        block: list[bytes] = []
        size = 0
        for line in lines:
            data = line.encode("utf-8")
            if size and size + len(data) > BLOCK_BYTES:
                self._write_all(b"".join(block))
                block, size = [], 0
            block.append(data)
            size += len(data)
        if block:
            self._write_all(b"".join(block))
        self.lines_written += len(lines)
        return len(lines)

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "DecisionTrace":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass


def read_trace(path: str | os.PathLike) -> pd.DataFrame:
    """Read a trace into a DataFrame with the columns of :data:`TRACE_FIELDS`.

    Complete lines only: an unterminated last line (a crash mid-write) is skipped.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError("trace", f"file {str(p)!r} does not exist")
    text = p.read_bytes().decode("utf-8")
    end = text.rfind("\n")
    rows = [json.loads(line) for line in text[:end + 1].splitlines() if line.strip()]
    if not rows:
        return pd.DataFrame({name: pd.Series(dtype=object) for name in TRACE_FIELDS})
    columns = list(TRACE_FIELDS) + (["action_probabilities"] if "action_probabilities" in rows[0] else [])
    return pd.DataFrame(rows, columns=columns)
