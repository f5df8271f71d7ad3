"""The λ search: one run per λ, best ACC on validation data, sweep.json and sweep.png."""

from __future__ import annotations

import json

import pytest

from sequential_learning.cli import main
from sequential_learning.config import RunConfig
from sequential_learning.sweep import check_lambdas, lambda_sweep, log_spaced, sweep_table

TINY = ["--benchmark", "permuted-digits", "--epochs", "1", "--num-tasks", "2", "--hidden", "16",
        "--fisher-samples", "100"]


def _tiny(method="fisher"):
    return RunConfig(benchmark="permuted-digits", method=method, epochs=1, num_tasks=2,
                     hidden=[16], fisher_samples=100)


def test_log_spaced():
    assert log_spaced(1, 1000, 4) == [1.0, 10.0, 100.0, 1000.0]
    assert log_spaced(3, 3, 1) == [3.0]
    values = log_spaced(0.01, 1, 5)
    assert values[0] == 0.01 and values[-1] == 1.0 and values == sorted(values)


@pytest.mark.parametrize(
    "low, high, points, message",
    [(0, 10, 3, "LOW"), (10, 1, 3, "LOW"), (1, 10, 0, "points"), (1, 10, 1, "1 point"),
     (float("nan"), 1, 2, "LOW")],
)
def test_log_spaced_bad_input(low, high, points, message):
    with pytest.raises(ValueError, match=message):
        log_spaced(low, high, points)


def test_check_lambdas():
    assert check_lambdas([100, 0, 10]) == [0.0, 10.0, 100.0]
    for bad, message in [([], "at least one"), ([-1], ">= 0"), ([float("inf")], ">= 0"),
                         ([1, 1], "duplicate"), (["a"], "numbers")]:
        with pytest.raises(ValueError, match=message):
            check_lambdas(bad)


def test_sweep_picks_the_best_acc_and_writes_outputs(tmp_path):
    sweep = lambda_sweep(_tiny(), [1000.0, 0.0], tmp_path / "sweep")
    assert sweep["lambdas"] == [0.0, 1000.0]
    assert [r["ewc_lambda"] for r in sweep["runs"]] == [0.0, 1000.0]
    best = max(sweep["runs"], key=lambda r: r["acc"])
    assert sweep["best"]["ewc_lambda"] == best["ewc_lambda"]
    assert sweep["method"] == "fisher" and "validation" in sweep["selection"]
    saved = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert saved["best"]["ewc_lambda"] == best["ewc_lambda"]
    assert {"acc", "bwt", "fwt", "forgetting", "seconds"} <= set(saved["runs"][0])
    assert (tmp_path / "sweep" / "sweep.png").stat().st_size > 1000
    for lam in ("0", "1000"):
        run = json.loads((tmp_path / "sweep" / f"lambda_{lam}" / "results.json").read_text())
        assert run["config"]["ewc_lambda"] == float(lam)
    # The same stream and initialisation for every λ: the first task's row is the same.
    rows = [json.loads((tmp_path / "sweep" / f"lambda_{lam}" / "results.json").read_text())
            ["accuracy_matrix"][0] for lam in ("0", "1000")]
    assert rows[0] == rows[1]
    assert "*" in sweep_table(sweep)


def test_cli_sweep_with_a_range(tmp_path, capsys):
    out = tmp_path / "s"
    code = main(["sweep", "--method", "si", *TINY, "--lambda-range", "1", "100", "--points", "2",
                 "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "best lambda:" in printed and "si on permuted-digits" in printed
    saved = json.loads((out / "sweep.json").read_text())
    assert saved["lambdas"] == [1.0, 100.0]
    assert (out / "sweep.png").exists() and (out / "lambda_100" / "importance.png").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["sweep", "--method", "fisher"], "give --lambdas"),
        (["sweep", "--method", "fisher", "--lambdas", ""], "at least one lambda"),
        (["sweep", "--method", "fisher", "--lambdas", "1,-5"], ">= 0"),
        (["sweep", "--method", "fisher", "--lambda-range", "0", "10"], "LOW"),
        (["sweep", "--method", "fisher", "--lambda-range", "1", "10", "--points", "0"], "points"),
        (["sweep", "--method", "none", "--lambdas", "1,10"], "no penalty"),
        (["sweep", "--method", "bogus", "--lambdas", "1"], "Unknown method 'bogus'"),
        (["sweep", "--method", "si", "--xi", "0", "--lambdas", "1"], "si_xi"),
    ],
)
def test_cli_sweep_bad_input_exits_2(argv, message, capsys, tmp_path):
    assert main([*argv, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("seql: error: ") and message in err[-1]
    assert not (tmp_path / "x" / "sweep.json").exists()


def test_cli_sweep_bad_number_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", "--method", "fisher", "--lambdas", "1,ten"])
    assert exit_info.value.code == 2
