"""A weekly plan whose utilities live as partitioned Parquet (a data lake) instead of one array.

Layout (written by :func:`write_partitioned`, read by :class:`PartitionedProblem`):
each Parquet file holds one row per customer with a ``customer_id`` column
and one float column per channel-day named ``<channel>_<day>`` (NaN = the
contact is not allowed); the channels table (``channel, cost, capacity`` or
``capacity_<day>``) and the scalar limits come from the caller. Each file is
one shard of the distributed dual method; :meth:`PartitionedProblem.to_problem`
loads everything into an in-memory :class:`~formulations.assignment.PlanningProblem`.
"""

from __future__ import annotations

import glob as globmod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from formulations.assignment import PlanningProblem
from formulations.errors import InputError


def read_utilities(path: str, channels: Sequence[str], days: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(customer ids, float32 utilities (n, M, T) with -inf where not allowed) of one file."""
    cols = [f"{c}_{d}" for c in channels for d in days]
    df = pd.read_parquet(path)
    missing = [c for c in ["customer_id", *cols] if c not in df.columns]
    if missing:
        raise InputError("--scores", f"{path}: missing column(s) {', '.join(missing[:5])}")
    u = np.array(df[cols].to_numpy(dtype=np.float32), copy=True).reshape(len(df), len(channels), len(days))
    u[np.isnan(u)] = -np.inf
    return df["customer_id"].astype(str).to_numpy(), u


@dataclass(eq=False)
class PartitionedProblem:
    """Problem data that stays in Parquet files (one shard per file).

    Parameters
    ----------
    files : str or list of str
        A glob (``"lake/scores/*.parquet"``), a directory, or file paths.
    channels : DataFrame
        ``channel, cost`` and ``capacity`` or ``capacity_<day>`` columns.
    budget, max_contacts, min_gap_days
        As in :class:`~formulations.assignment.PlanningProblem` (``max_contacts`` scalar).
    """

    files: Any
    channels: pd.DataFrame
    budget: float | None = None
    max_contacts: int = 2
    min_gap_days: int = 1
    paths: list = field(init=False)
    is_partitioned: bool = field(default=True, init=False)

    def __post_init__(self) -> None:
        spec = self.files
        if isinstance(spec, (str, Path)):
            p = Path(spec)
            paths = sorted(str(x) for x in p.glob("*.parquet")) if p.is_dir() else sorted(globmod.glob(str(spec)))
        else:
            paths = [str(x) for x in spec]
        if not paths:
            raise InputError("--scores", f"no Parquet files match {str(spec)!r}")
        self.paths = paths
        import pyarrow.parquet as pq

        self.rows = [pq.ParquetFile(p).metadata.num_rows for p in paths]
        names = pq.ParquetFile(paths[0]).schema_arrow.names
        chan = self.channels["channel"].astype(str).tolist()
        first = [c for c in names if c.startswith(f"{chan[0]}_")]
        self.day_labels = tuple(c[len(chan[0]) + 1:] for c in first)
        if not self.day_labels:
            raise InputError("--scores", f"{paths[0]}: no columns named {chan[0]}_<day>")
        # validate the limits on a one-customer stand-in (same checks, no data loaded)
        stub = self._stub()
        self.channel_names = stub.channel_names
        self.capacity = stub.capacity
        self.cost = stub.cost
        self.budget = stub.budget
        self.max_contacts = int(stub.max_contacts)
        self.min_gap_days = stub.min_gap_days

    def _stub(self, utility: np.ndarray | None = None, ids=None) -> PlanningProblem:
        from formulations.frames import problem_from_frames

        M, T = len(self.channels), len(self.day_labels)
        chan = self.channels["channel"].astype(str).tolist()
        rows = pd.DataFrame({"customer_id": ["_"] * M, "channel": chan, "day": [self.day_labels[0]] * M,
                             "utility": [0.0] * M})
        base = problem_from_frames(PlanningProblem, rows, self.channels, budget=self.budget,
                                   max_contacts=self.max_contacts, min_gap_days=self.min_gap_days,
                                   day_order=list(self.day_labels))
        if utility is None:
            return base
        return base.replace(utility=utility, customer_ids=ids, max_contacts=self.max_contacts)

    @property
    def n_customers(self) -> int:
        return int(sum(self.rows))

    @property
    def n_channels(self) -> int:
        return len(self.channel_names)

    @property
    def n_days(self) -> int:
        return len(self.day_labels)

    def to_problem(self) -> PlanningProblem:
        """Load every file into one in-memory problem."""
        parts = [read_utilities(p, self.channel_names, self.day_labels) for p in self.paths]
        ids = np.concatenate([x[0] for x in parts])
        return self._stub(np.concatenate([x[1] for x in parts]), list(ids))

    def subproblem(self, ids: np.ndarray, utility: np.ndarray) -> PlanningProblem:
        """A problem over the given customers only (same limits) — used for distributed plans."""
        return self._stub(utility, list(ids))

    def shard_sources(self):
        from solvers.dual_dask import ShardSource

        offsets = np.concatenate([[0], np.cumsum(self.rows)[:-1]])
        return [ShardSource(int(o), int(n), "parquet", path=p) for o, n, p in zip(offsets, self.rows, self.paths)]

    def dual_meta(self) -> dict:
        stub = self._stub()
        return {"M": self.n_channels, "T": self.n_days, "gap": self.min_gap_days, "cost": self.cost,
                "capacity": self.capacity, "budget": self.budget, "limit_max": self.max_contacts,
                "cell_ok": stub.cell_allowed(), "neg_ok": np.zeros(self.n_channels, dtype=bool)}


def write_partitioned(problem: PlanningProblem, directory: str | Path, rows_per_file: int) -> list[Path]:
    """Write the utilities as Parquet parts (wide layout) plus ``channels.csv``; returns the part paths."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    n, M, T = problem.shape
    cols = [f"{c}_{d}" for c in problem.channel_names for d in problem.day_labels]
    ids = np.asarray([str(c) for c in problem.customer_ids])
    written = []
    for k, start in enumerate(range(0, n, rows_per_file)):
        block = problem.utility[start:start + rows_per_file].reshape(-1, M * T).astype(np.float32)
        df = pd.DataFrame(np.where(np.isfinite(block), block, np.nan), columns=cols)
        df.insert(0, "customer_id", ids[start:start + rows_per_file])
        path = out / f"part-{k:05d}.parquet"
        df.to_parquet(path, index=False)
        written.append(path)
    channels = pd.DataFrame({"channel": list(problem.channel_names), "cost": problem.cost})
    for t, d in enumerate(problem.day_labels):
        channels[f"capacity_{d}"] = problem.capacity[:, t]
    channels.to_csv(out / "channels.csv", index=False)
    return written
