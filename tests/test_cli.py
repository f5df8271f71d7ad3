"""The `seql` command: help, listing, a small end-to-end run, and bad input (exit 2)."""

from __future__ import annotations

import json

import pytest

from sequential_learning.cli import main
from sequential_learning.results import Results

pytestmark = pytest.mark.all_backends


def test_help_lists_choices_and_defaults(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "permuted-digits" in out and "fisher" in out and "default: 10" in out


def test_list_methods(capsys):
    assert main(["list", "methods"]) == 0
    out = capsys.readouterr().out
    assert "fisher" in out and "weight-decay" in out and "none" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--method", "bogus"], "Unknown method 'bogus'; known methods:"),
        (["run", "--lambda", "-1"], "lambda: -1.0 is not allowed"),
        (["run", "--epochs", "0"], "epochs: 0 is not allowed"),
        (["compare", "--methods", "none,nope"], "Unknown method 'nope'"),
        (["run", "--fisher-samples", "0"], "fisher_samples"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, message, capsys, tmp_path):
    assert main([*argv, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("seql: error: ") and message in err[-1]
    assert "Traceback" not in "\n".join(err)


def test_unknown_benchmark_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--benchmark", "imagenet"])
    assert exit_info.value.code == 2


def test_compare_end_to_end(tmp_path, capsys):
    out = tmp_path / "cmp"
    code = main(["compare", "--benchmark", "split-digits", "--methods", "none,fisher",
                 "--epochs", "1", "--hidden", "16", "--fisher-samples", "100", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "ACC" in printed and "fisher" in printed and "none" in printed
    comparison = json.loads((out / "comparison.json").read_text())
    assert set(comparison) == {"none", "fisher"}
    assert (out / "comparison.png").stat().st_size > 1000
    for method in ("none", "fisher"):
        run = out / method
        doc = json.loads((run / "results.json").read_text())
        assert set(doc) >= {"config", "accuracy_matrix", "metrics", "history", "timing"}
        assert doc["config"]["method"] == method and doc["config"]["benchmark"] == "split-digits"
        assert len(doc["accuracy_matrix"]) == 5
        assert (run / "history.csv").read_text().startswith("epoch,training_task")
        assert (run / "task_curves.png").stat().st_size > 1000
        assert (run / "accuracy_matrix.png").stat().st_size > 1000
        assert len(list((run / "models").glob("task_*.keras"))) == 5
        assert Results.load(run).metrics["acc"] == pytest.approx(comparison[method]["acc"])
    fisher = json.loads((out / "fisher" / "results.json").read_text())
    assert fisher["config"]["fisher_mode"] == "exact" and fisher["timing"]["importance_seconds"]
