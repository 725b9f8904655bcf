"""A small generated Customer 360 dataset and its build, made once per test process."""

from __future__ import annotations

import atexit
import datetime as dt
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

N_CUSTOMERS = 3000
N_WEEKS = 4
SEED = 7


@lru_cache(maxsize=None)
def workdir() -> Path:
    d = Path(tempfile.mkdtemp(prefix="c360-tests-"))
    atexit.register(shutil.rmtree, d, True)
    return d


@lru_cache(maxsize=None)
def raw_dir(fmt: str = "parquet") -> Path:
    from optimizer.c360 import generate_c360

    out = workdir() / f"raw-{fmt}"
    generate_c360(out, N_CUSTOMERS, N_WEEKS, seed=SEED, fmt=fmt)
    return out


@lru_cache(maxsize=None)
def built(granularity: str = "week", latency_days: float = 0.0, decay: float = 0.8, fmt: str = "parquet"):
    """(out_dir, C360Result) of a build of the small dataset."""
    from optimizer.c360 import BuildOptions, build_c360

    out = workdir() / f"out-{granularity}-{latency_days}-{decay}-{fmt}"
    result = build_c360(raw_dir(fmt), out, BuildOptions(granularity=granularity, latency_days=latency_days,
                                                        decay=decay))
    return out, result


def days_since(ts, start: dt.date) -> np.ndarray:
    """Timestamps → float days since ``start`` (microsecond exact)."""
    t = pd.to_datetime(pd.Series(ts)).to_numpy().astype("datetime64[us]").astype(np.int64)
    s = np.datetime64(dt.datetime.combine(start, dt.time()), "us").astype(np.int64)
    return (t - s) / 86_400e6
