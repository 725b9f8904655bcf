"""Issue 10: regional data, the privacy–utility sweep and ``contactplan experiment privacy``."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from formulations.errors import InputError
from optimizer.cli import main
from optimizer.federated.data import C360_FEATURES, c360_regions, synthetic_regions
from optimizer.federated.experiment import SweepConfig, parse_epsilons, privacy_sweep


def test_c360_regions_are_non_iid_and_keep_customers_whole(tmp_path):
    from optimizer.c360.generator import generate_c360

    generate_c360(tmp_path / "c360", 1500, 12, seed=1)
    clients, test = c360_regions(tmp_path / "c360", n_regions=8, seed=0)
    assert len(clients) == 8 and all(c.d == len(C360_FEATURES) for c in clients)
    sizes = [c.n for c in clients]
    assert len(set(sizes)) == 8                                    # unequal sizes
    age = [c.X[:, 2].mean() for c in clients]
    assert max(age) - min(age) > 1.0                               # covariate shift across regions
    users = [set(c.users.tolist()) for c in clients] + [set(test.users.tolist())]
    assert sum(len(u) for u in users) == len(set().union(*users))  # a customer lives in one place
    assert np.allclose(clients[0].X[:, 0], 1.0)


def test_parse_epsilons():
    assert parse_epsilons("0.5, 1,inf") == (0.5, 1.0, math.inf)
    with pytest.raises(InputError, match="--epsilons"):
        parse_epsilons("1,abc")


def test_sweep_orders_privacy_and_utility():
    clients, test = synthetic_regions(n_regions=4, rows_per_region=800, d=5, seed=0)
    cfg = SweepConfig(n_rounds=60, user_sampling_rate=0.2, clip_norm=5.0)
    df = privacy_sweep(clients, test, (0.3, math.inf), cfg)
    strict, free = df.iloc[0], df.iloc[1]
    assert strict["epsilon"] <= 0.3 + 1e-9 and strict["noise_multiplier"] > 1
    assert free["noise_multiplier"] == 0 and math.isinf(free["epsilon"])
    assert abs(free["gap_pct"]) < 1.0                              # no noise: close to the centralised fit
    assert strict["log_loss"] > free["log_loss"]                   # heavy noise costs utility


def test_cli_prints_table_and_writes_csv_and_png(tmp_path, capsys):
    code = main(["experiment", "privacy", "--data", "synthetic", "--epsilons", "2,inf", "--rounds", "20",
                 "--out", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "privacy–utility" in out and "centralised" in out
    df = pd.read_csv(tmp_path / "privacy_utility.csv")
    assert list(df["epsilon_target"]) == [2.0, math.inf]
    assert (tmp_path / "privacy_utility.png").stat().st_size > 1000
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("args,field", [(["--epsilons", "-1"], "--epsilons"), (["--rounds", "0"], "--rounds"),
                                        (["--data", "nowhere"], "--data"), (["--delta", "2"], "--delta"),
                                        (["--accountant", "moments"], "--accountant")])
def test_cli_bad_input_is_one_line_error_exit_2(args, field, capsys):
    assert main(["experiment", "privacy", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {field}:") and "\n" not in err
