"""Hash-based randomisation: known answers, chi-square uniformity, stability across processes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from formulations.errors import InputError
from optimizer.randomization import check_share, control_group, hash_uniform, hash_uniforms

ROOT = Path(__file__).resolve().parent.parent


def reference_uniform(unit_id, salt):
    """Independent re-implementation of the documented rule."""
    digest = hashlib.blake2b(f"{salt}\x1f{unit_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") // 2 ** 11 / 2 ** 53


def test_known_answers():
    ids = ["C0000042", 42, "ü-unit", ""]
    got = hash_uniforms(ids, "exp-1")
    want = [reference_uniform(u, "exp-1") for u in ids]
    assert list(got) == want
    assert [hash_uniform(u, "exp-1") for u in ids] == want
    assert hash_uniform(42, "s") == hash_uniform("42", "s")          # str() of the id is hashed
    assert hash_uniform("a", "s1") != hash_uniform("a", "s2")
    assert hash_uniforms([], "s").shape == (0,)


def test_chi_square_uniformity():
    ids = [f"C{i:07d}" for i in range(200_000)]
    u = hash_uniforms(ids, "contactplan/draw")
    assert u.min() >= 0.0 and u.max() < 1.0
    counts = np.bincount((u * 200).astype(int), minlength=200)
    p_bins = stats.chisquare(counts).pvalue
    assert p_bins > 1e-3
    # and jointly with a second salt: the arm and draw hashes are independent (2-d chi-square on a 10 x 10 grid)
    v = hash_uniforms(ids, "contactplan/arm")
    table = np.histogram2d(u, v, bins=10, range=[[0, 1], [0, 1]])[0]
    assert stats.chisquare(table.ravel()).pvalue > 1e-3
    assert stats.kstest(u[:20_000], "uniform").pvalue > 1e-3


@pytest.mark.parametrize("share", [0.1, 0.25])
def test_control_share(share):
    ids = np.arange(100_000)
    control = control_group(ids, share, "exp")
    sd = np.sqrt(share * (1 - share) / ids.size)
    assert abs(control.mean() - share) < 4 * sd
    assert np.array_equal(control, control_group(list(ids), share, "exp"))     # order and container free


@pytest.mark.parametrize("bad", [-0.1, 1.0, float("nan"), "x"])
def test_bad_share(bad):
    with pytest.raises(InputError, match="control_share"):
        check_share(bad)


def test_stable_across_processes():
    ids = [f"unit-{i}" for i in range(2000)] + [7, 8, 9]
    here = hash_uniforms(ids, "salt-x").tolist()
    code = ("import json, sys; from optimizer.randomization import hash_uniforms; "
            "ids = json.loads(sys.stdin.read()); print(json.dumps(hash_uniforms(ids, 'salt-x').tolist()))")
    procs = [subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, cwd=str(ROOT), env=dict(os.environ, PYTHONHASHSEED=seed, PYTHONPATH=str(ROOT)))
             for seed in ("0", "12345")]          # different Python hash seeds must not matter
    results = []
    for proc in procs:
        out, _ = proc.communicate(json.dumps(ids), timeout=120)
        assert proc.returncode == 0
        results.append(json.loads(out))
    assert results[0] == here and results[1] == here
