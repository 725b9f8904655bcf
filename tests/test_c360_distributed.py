"""The Customer 360 feature step on a Dask LocalCluster: the same features as the in-process build."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from formulations.errors import InputError
from optimizer.c360 import build_c360
from tests.c360_helpers import built, raw_dir

distributed = pytest.importorskip("distributed")

KEY = ["customer_id", "period"]


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


def _features(out) -> pd.DataFrame:
    # row order of features.parquet is not part of the contract (in-process it is DuckDB's join order)
    return pd.read_parquet(out / "features.parquet").sort_values(KEY, kind="stable").reset_index(drop=True)


def test_cluster_features_identical_to_in_process(client, tmp_path):
    local_out, local = built()
    out = tmp_path / "dist"
    result = build_c360(raw_dir(), out, cluster=client, feature_partitions=3)
    assert result.n_feature_rows == local.n_feature_rows == local.n_customers * local.grid.n_periods
    expected, got = _features(local_out), _features(out)
    assert not expected.duplicated(KEY).any()
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    # the other outputs do not depend on where the features ran
    for name in ("eligibility.parquet", "customers.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(out / name).sort_values(["customer_id"], kind="stable")
                                      .reset_index(drop=True),
                                      pd.read_parquet(local_out / name).sort_values(["customer_id"], kind="stable")
                                      .reset_index(drop=True))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["feature_partitions"] == 3 and manifest["feature_rows"] == local.n_feature_rows
    assert "feature_partitions" not in json.loads((local_out / "manifest.json").read_text())
    assert not any(p.name.startswith(".c360-staging") for p in out.iterdir())


def test_default_partitions_follow_workers(client, tmp_path):
    out = tmp_path / "dist"
    build_c360(raw_dir(), out, cluster=client)
    assert json.loads((out / "manifest.json").read_text())["feature_partitions"] == 4   # 2 × 2 workers
    pd.testing.assert_frame_equal(_features(out), _features(built()[0]), check_exact=True)


def test_bad_partitions_rejected(tmp_path):
    with pytest.raises(InputError, match="feature_partitions"):
        build_c360(raw_dir(), tmp_path / "x", feature_partitions=2)       # no cluster to run them on


def test_cli_workers_and_scheduler(tmp_path, capsys):
    from optimizer.cli import main

    raw = tmp_path / "raw"
    assert main(["generate-c360", "--customers", "150", "--weeks", "2", "--seed", "5", "--out", str(raw),
                 "--quiet"]) == 0
    assert main(["c360", "build", str(raw), "--out", str(tmp_path / "a"), "--quiet"]) == 0
    assert main(["c360", "build", str(raw), "--out", str(tmp_path / "b"), "--workers", "1",
                 "--feature-partitions", "2", "--quiet"]) == 0
    pd.testing.assert_frame_equal(_features(tmp_path / "b"), _features(tmp_path / "a"), check_exact=True)
    assert json.loads((tmp_path / "b" / "manifest.json").read_text())["feature_partitions"] == 2
    capsys.readouterr()
    assert main(["c360", "build", str(raw), "--out", str(tmp_path / "c"), "--workers", "2",
                 "--scheduler", "tcp://127.0.0.1:1"]) != 0
    captured = capsys.readouterr()
    assert "either --scheduler or --workers" in captured.out + captured.err
    assert main(["c360", "build", str(raw), "--out", str(tmp_path / "c"), "--feature-partitions", "2"]) != 0
