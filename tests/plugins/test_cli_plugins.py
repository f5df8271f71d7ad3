"""The command line and config files with the plugin methods: options, combinations, one-line
errors with exit status 2, comparisons that mix families."""

from __future__ import annotations

import json

import pytest

from sequential_learning.cli import main
from sequential_learning.config import RunConfig

SMALL = ["--benchmark", "split-digits", "--epochs", "1", "--hidden", "8", "--fisher-samples",
         "50"]


@pytest.mark.parametrize("argv, message", [
    (["--method", "replay", "--memory", "0"],
     "memory: 0 is not allowed; expected an integer >= 1"),
    (["--method", "replay", "--memory", "-5"], "memory: -5 is not allowed"),
    (["--method", "derpp", "--derpp-alpha", "-1"], "derpp_alpha: -1.0 is not allowed"),
    (["--method", "lwf", "--lwf-temperature", "0"], "lwf_temperature: 0.0 is not allowed"),
    (["--method", "fisher+nosuch"], "Unknown method 'nosuch'"),
    (["--method", "fisher+mas"], "at most one weight-importance method"),
    (["--method", "joint+replay"], "joint is a reference point"),
    (["--method", "replay", "--memory", "100000"],
     "memory: 100000 is larger than the 1437 training samples of the whole stream"),
    (["--method", "lwf", "--benchmark", "function-approximation"],
     "lwf: needs a classification stream, this one is regression"),
    (["--method", "replay", "--replay-policy", "balanced", "--benchmark",
      "function-approximation"], "replay_policy balanced needs a classification stream"),
])
def test_bad_plugin_input_is_one_line_and_exit_2(tmp_path, capsys, argv, message):
    assert main(["run", *SMALL, *argv, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("seql: error: ") and "\n" not in err, err
    assert message in err, err


def test_config_file_plugins_with_their_own_options(tmp_path, capsys):
    path = tmp_path / "run.yaml"
    path.write_text("benchmark: split-digits\nscenario: class\nmethod: fisher\nepochs: 1\n"
                    "hidden: [8]\nfisher_samples: 50\nmemory: 300\n"
                    "plugins:\n  - name: replay\n    memory: 120\n")
    assert main(["run", "--config", str(path), "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "fisher+replay" in out and "TIL ACC" in out
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["config"]["method"] == "fisher+replay"
    # The mapping's own option, not the run's 300.
    assert results["config"]["method_settings"]["replay"]["memory"] == 120
    assert sum(results["task_summaries"][-1]["replay_buffer"].values()) == 120
    assert "task_il_acc" in results["metrics"] and results["metrics"]["fwt"] is None
    bad = tmp_path / "bad.yaml"
    bad.write_text("plugins:\n  - name: replay\n    size: 3\n")
    assert main(["run", "--config", str(bad)]) == 2
    assert "replay has no option 'size'; its options: memory" in capsys.readouterr().err


def test_validated_names_are_normalised_and_revalidation_is_stable():
    config = RunConfig(method="EWC+ER", plugins=["lwf"]).validate()
    assert config.method == "fisher+replay+lwf" and config.ewc_lambda == 50.0
    assert config.validate().method == "fisher+replay+lwf"
    assert RunConfig(method="replay").validate().ewc_lambda == 0.0


def test_compare_mixes_families_and_prints_one_line_per_epoch(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", *SMALL, "--scenario", "class", "--methods", "none,replay,si+replay",
                 "--memory", "100", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "\r" not in captured.err  # not a terminal: a line per epoch, no updating line
    lines = [line for line in captured.err.splitlines() if line.startswith("[replay]")]
    assert len(lines) == 5 and lines[0].startswith("[replay]  task 1/5  epoch 1/1")
    comparison = json.loads((out / "comparison.json").read_text())
    assert list(comparison) == ["none", "replay", "si+replay"]
    assert comparison["replay"]["acc"] > comparison["none"]["acc"]
    assert "TIL ACC" in captured.out
