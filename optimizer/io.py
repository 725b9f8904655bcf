"""Reading input tables and writing outputs atomically.

Inputs are never modified. Outputs are written to a temporary file in the
target directory and renamed into place, so a failed run never leaves a
half-written file.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import pandas as pd

from formulations.errors import InputError

TABLE_SUFFIXES = (".csv", ".parquet", ".pq")


def read_table(path: str | os.PathLike, field: str) -> pd.DataFrame:
    """Read a CSV or Parquet table; errors name ``field`` (e.g. ``--scores``)."""
    p = Path(path)
    if not p.exists():
        raise InputError(field, f"file {str(p)!r} does not exist")
    if p.is_dir():
        raise InputError(field, f"expected a file, got the directory {str(p)!r}")
    suffix = p.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(p)
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(p)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(field, f"could not read {str(p)!r}: {first}") from None
    raise InputError(field, f"expected a .csv or .parquet file, got {str(p)!r}")


def check_output_path(path: str | os.PathLike, field: str = "--out", suffixes=TABLE_SUFFIXES) -> Path:
    """Validate an output path before any work is done."""
    p = Path(path)
    if suffixes and p.suffix.lower() not in suffixes:
        raise InputError(field, f"expected a file name ending in {' or '.join(suffixes)}, got {str(p)!r}")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.exists():
        raise InputError(field, f"directory {str(parent)!r} does not exist")
    if not parent.is_dir():
        raise InputError(field, f"{str(parent)!r} is not a directory")
    if p.is_dir():
        raise InputError(field, f"{str(p)!r} is a directory")
    return p


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it into place on success."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=str(target.parent or "."))
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file normal permissions
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_table(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write CSV or Parquet (by extension) atomically."""
    target = check_output_path(path)
    with atomic_path(target) as tmp:
        if target.suffix.lower() == ".csv":
            df.to_csv(tmp, index=False)
        else:
            df.to_parquet(tmp, index=False)
    return target


def write_text(text: str, path: str | os.PathLike) -> Path:
    """Write a text file atomically."""
    target = Path(path)
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return target


def write_json(obj: Any, path: str | os.PathLike) -> Path:
    return write_text(json.dumps(obj, indent=2, default=_json_default) + "\n", path)


def write_with(writer: Callable[[Path], None], path: str | os.PathLike) -> Path:
    """Run ``writer(tmp_path)`` and rename the result to ``path``."""
    target = Path(path)
    with atomic_path(target) as tmp:
        writer(tmp)
    return target


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    return str(obj)


def project_data_dir() -> Path:
    """The shipped ``data/`` directory (next to the source tree, or under the working directory)."""
    here = Path(__file__).resolve().parent.parent / "data"
    if here.is_dir():
        return here
    cwd = Path.cwd() / "data"
    if cwd.is_dir():
        return cwd
    raise InputError("data", "the shipped data/ directory was not found; run from the contactplan checkout")
