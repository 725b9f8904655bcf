"""Bad MDP input gives one-line InputErrors that name the field."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from formulations.errors import InputError
from optimizer import DiscreteMDP
from optimizer.cli import main

R = np.array([[1.0, 0.0], [0.5, 2.0]])
Q = np.array([[[0.5, 0.5], [1.0, 0.0]], [[0.0, 1.0], [0.3, 0.7]]])


def _raises(field: str, *args, **kwargs) -> str:
    with pytest.raises(InputError) as info:
        DiscreteMDP(*args, **kwargs)
    assert info.value.field == field
    assert "\n" not in str(info.value)
    return str(info.value)


def test_rows_not_summing_to_one():
    bad = Q.copy()
    bad[1, 0] = [0.2, 0.7]
    msg = _raises("Q", R, bad, 0.9)
    assert "state 1, action 0" in msg and "sum to 1" in msg
    sa = sp.csr_matrix(np.array([[0.5, 0.5], [0.4, 0.4]]))
    assert "row 1" in _raises("Q", [1.0, 2.0], sa, 0.9, [0, 1], [0, 0])


def test_negative_or_nan_probabilities():
    bad = Q.copy()
    bad[0, 0] = [1.5, -0.5]
    assert "probabilities >= 0" in _raises("Q", R, bad, 0.9)
    bad[0, 0] = [np.nan, 1.0]
    _raises("Q", R, bad, 0.9)


@pytest.mark.parametrize("beta", [1.0, -0.1, 1.5, float("nan"), "x"])
def test_beta_outside_unit_interval(beta):
    assert "[0, 1)" in _raises("beta", R, Q, beta)


def test_states_without_admissible_action():
    bad = R.copy()
    bad[1] = -np.inf
    assert "state 1 has none" in _raises("R", bad, Q, 0.9)
    # state-action form: state 1 never appears
    assert "state 1" in _raises("R", [1.0, 2.0], [[1.0, 0.0], [0.0, 1.0]], 0.9, [0, 0], [0, 1])


def test_nan_and_positive_infinite_rewards():
    bad = R.copy()
    bad[0, 1] = np.nan
    assert "index (0, 1)" in _raises("R", bad, Q, 0.9)
    bad[0, 1] = np.inf
    _raises("R", bad, Q, 0.9)


def test_shapes_and_indices():
    _raises("Q", R, Q[:, :, :1], 0.9)
    _raises("s_indices", [1.0, 2.0], [[1.0, 0.0], [0.0, 1.0]], 0.9, None, [0, 1])
    _raises("s_indices", [1.0, 2.0], [[1.0, 0.0], [0.0, 1.0]], 0.9, [0, 5], [0, 1])
    _raises("a_indices", [1.0, 2.0], [[1.0, 0.0], [0.0, 1.0]], 0.9, [0, 0], [1, 1])   # duplicate pair
    _raises("a_indices", [1.0, 2.0], [[1.0, 0.0], [0.0, 1.0]], 0.9, [0, 1], [0, -1])
    _raises("R", [["a", "b"]], Q, 0.9)


def test_solve_arguments():
    mdp = DiscreteMDP(R, Q, 0.9)
    for kwargs, field in [(dict(method="lp"), "method"), (dict(epsilon=0), "epsilon"),
                          (dict(max_iter=0), "max_iter"), (dict(v_init=[1.0]), "v_init"),
                          (dict(method="vi", stop="abs"), "stop"), (dict(method="mpi", k=-1), "k"),
                          (dict(threads=0), "threads")]:
        with pytest.raises(InputError) as info:
            mdp.solve(**kwargs)
        assert info.value.field == field
    with pytest.raises(InputError) as info:
        mdp.evaluate_policy([0, 2])
    assert info.value.field == "sigma"


def test_cli_bad_option_exits_2(capsys):
    assert main(["mdp", "demo", "--method", "lp"]) == 2
    assert "error: --method" in capsys.readouterr().err
    assert main(["mdp", "demo", "--beta", "1.0"]) == 2
    assert main(["mdp", "adp", "--segments", "0"]) == 2


def test_cli_demo_and_adp_run_and_write_json(tmp_path, capsys):
    import json

    assert main(["mdp", "demo", "--method", "pi"]) == 0
    assert "2800 admissible pairs" in capsys.readouterr().out
    out = tmp_path / "adp.json"
    assert main(["mdp", "adp", "--segments", "2", "--customers-per-segment", "5", "--periods", "3",
                 "--replications", "2", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["lower"] <= data["bound"] + 1e-9
    assert len(data["adp"]) == 2 and len(data["difference_ci"]) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["adp.json"]      # no temporary file left behind
    assert main(["mdp", "adp", "--segments", "2", "--out", str(tmp_path / "x.txt")]) == 2
