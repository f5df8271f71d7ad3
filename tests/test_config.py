"""Experiment configs: per-benchmark defaults, YAML files (keys, types, ranges), precedence of
command-line options over the file, and the resolved config saved with the results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from sequential_learning import cli
from sequential_learning.config import (
    BENCHMARK_DEFAULTS,
    COMMAND_KEYS,
    DEFAULT_LAMBDA,
    GLOBAL_DEFAULTS,
    RunConfig,
    load_config_file,
)
from sequential_learning.data.benchmarks import BENCHMARKS
from sequential_learning.importance import EWCMethod

pytestmark = pytest.mark.all_backends

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _write(tmp_path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def _parsed(argv: list[str]):
    """The validated RunConfig the CLI builds for `argv` (no training)."""
    args = cli.parse(argv)
    return args, cli._config_from(args)


# -- defaults ----------------------------------------------------------------------------------
def test_benchmark_defaults_apply_when_not_set():
    config = RunConfig(benchmark="permuted-fashion-mnist").validate()
    assert config.hidden == [400, 400] and config.batch_size == 128 and config.epochs == 1
    assert config.ewc_lambda == BENCHMARK_DEFAULTS["permuted-fashion-mnist"]["ewc_lambda"]["fisher"]
    assert config.learning_rate == GLOBAL_DEFAULTS["learning_rate"] and config.model == "mlp"
    assert config.defaults_used["hidden"] == "benchmark permuted-fashion-mnist"
    assert config.defaults_used["learning_rate"] == "default"


def test_explicit_values_always_win_over_benchmark_defaults():
    config = RunConfig(benchmark="permuted-fashion-mnist", hidden=[100, 100], batch_size=32,
                       epochs=3, ewc_lambda=7.0).validate()
    assert (config.hidden, config.batch_size, config.epochs, config.ewc_lambda) == (
        [100, 100], 32, 3, 7.0)
    assert "hidden" not in config.defaults_used and "ewc_lambda" not in config.defaults_used


def test_global_defaults_and_method_lambda_elsewhere():
    config = RunConfig().validate()  # permuted-digits, fisher: the foundation's defaults
    assert (config.epochs, config.batch_size, config.hidden, config.num_tasks) == (
        10, 32, [100, 100], 5)
    assert config.ewc_lambda == DEFAULT_LAMBDA[EWCMethod.FISHER_MATRIX]
    assert RunConfig(method="none").validate().ewc_lambda == 0.0
    assert RunConfig(benchmark="iris-features").validate().num_tasks == 3
    assert RunConfig(benchmark="split-cifar10").validate().model == "cnn"
    assert RunConfig(benchmark="rotated-digits", angles=[0, 90]).validate().num_tasks == 2


def test_every_defaults_table_entry_names_a_benchmark_and_a_known_key():
    assert set(BENCHMARK_DEFAULTS) <= set(BENCHMARKS)
    for own in BENCHMARK_DEFAULTS.values():
        assert set(own) <= {*GLOBAL_DEFAULTS, "ewc_lambda", "method_defaults"}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"eval_every": 0}, "eval_every: 0 is not allowed; expected an integer >= 1"),
        ({"eval_subset": 0}, "eval_subset: 0 is not allowed"),
        ({"model": "rnn"}, "model: 'rnn' is not allowed; expected one of mlp, cnn"),
        ({"limit": -5}, "limit: -5 is not allowed"),
        ({"filters": [0]}, "filters: [0] is not allowed"),
        ({"class_order": "backwards"}, "class_order: 'backwards' is not allowed"),
        ({"benchmark": "rotated-digits", "angles": [0, 90], "num_tasks": 3},
         "angles: [0, 90] is not allowed; expected one angle per task (num_tasks is 3)"),
        ({"benchmark": "function-approximation", "scenario": "class"},
         "scenario: 'class' does not apply to function-approximation"),
        ({"scenario": "online"}, "scenario: unknown 'online'"),
        ({"benchmark": "permuted", "data": None}, "data: the permuted benchmark needs"),
        ({"data_dir": "/tmp"}, "data_dir: permuted-digits reads no directory"),
    ],
)
def test_out_of_range_values_are_rejected_with_the_key(kwargs, message):
    with pytest.raises(ValueError) as info:
        RunConfig(**kwargs).validate()
    assert message in str(info.value)


# -- config files ------------------------------------------------------------------------------
def test_config_file_keys_aliases_and_types(tmp_path):
    path = _write(tmp_path, "benchmark: split-digits\nlambda: 5\nbatch-size: 16\n"
                            "hidden: [8, 8]\nmethods: [none, fisher]\nangles: [0, 45.5]\n")
    values = load_config_file(path)
    assert values == {"benchmark": "split-digits", "ewc_lambda": 5.0, "batch_size": 16,
                      "hidden": [8, 8], "methods": ["none", "fisher"], "angles": [0, 45.5]}
    assert isinstance(values["ewc_lambda"], float)
    assert load_config_file(_write(tmp_path, "# nothing\n")) == {}


@pytest.mark.parametrize(
    "text, message",
    [
        ("epoch: 3\n", "unknown key 'epoch'; allowed keys: angles, augmentation, batch_size"),
        ("epochs: ten\n", "epochs: 'ten' is not allowed; expected an integer or null"),
        ("epochs: 2.5\n", "epochs: 2.5 is not allowed; expected an integer"),
        ("hidden: 100\n", "hidden: 100 is not allowed; expected a list of integers or null"),
        ("normalize_importance: 1\n", "normalize_importance: 1 is not allowed; expected true"),
        ("learning_rate: fast\n", "learning_rate: 'fast' is not allowed; expected a number"),
        ("- epochs\n", "must hold a mapping of keys to values, got list"),
        ("epochs: [1\n", "is not valid YAML"),
    ],
)
def test_bad_config_files_name_the_key_and_what_is_allowed(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(ValueError) as info:
        load_config_file(path)
    assert message in str(info.value) and str(path) in str(info.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ValueError, match="config: .*nope.yaml does not exist"):
        load_config_file(tmp_path / "nope.yaml")


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_config_is_valid(path):
    values = load_config_file(path)
    config = RunConfig(**{k: v for k, v in values.items() if k not in COMMAND_KEYS}).validate()
    assert config.benchmark == values["benchmark"]


def test_there_is_an_example_for_every_benchmark():
    covered = {load_config_file(p)["benchmark"] for p in EXAMPLES.glob("*.yaml")}
    assert set(BENCHMARKS) - covered <= {"permuted", "rotated"}  # `split` covers own arrays


# -- the command line --------------------------------------------------------------------------
def test_command_line_options_override_the_file_and_defaults_do_not(tmp_path):
    path = _write(tmp_path, "benchmark: split-digits\nmethod: none\nepochs: 3\n"
                            "fisher_mode: sampled\nclasses_per_task: 5\nhidden: [8]\n")
    args, config = _parsed(["run", "--config", str(path), "--epochs", "1", "--seed", "4"])
    assert config.method == "none"  # from the file: --method was not given
    assert config.epochs == 1 and config.seed == 4  # given on the command line
    assert config.fisher_mode == "sampled"  # the parser's default does not override the file
    assert config.classes_per_task == 5 and config.hidden == [8]
    _, config = _parsed(["run", "--config", str(path), "--method", "fisher",
                         "--fisher-mode", "exact"])
    assert config.method == "fisher" and config.fisher_mode == "exact" and config.epochs == 3


def test_compare_takes_methods_and_out_from_the_file(tmp_path):
    path = _write(tmp_path, f"benchmark: split-digits\nmethods: [none, fisher]\nout: {tmp_path}\n")
    args = cli.parse(["compare", "--config", str(path)])
    assert args.methods == "none,fisher" and args.out == str(tmp_path)
    args = cli.parse(["compare", "--config", str(path), "--methods", "fisher"])
    assert args.methods == "fisher"


def test_new_options_reach_the_config():
    _, config = _parsed(["run", "--benchmark", "rotated-digits", "--model", "cnn",
                         "--filters", "4,8", "--angles", "0,30", "--eval-every", "2",
                         "--eval-subset", "50", "--limit", "300", "--class-order", "random",
                         "--classes-per-task", "5"])
    assert (config.model, config.filters, config.angles, config.num_tasks) == (
        "cnn", [4, 8], [0.0, 30.0], 2)
    assert (config.eval_every, config.eval_subset, config.limit) == (2, 50, 300)
    assert config.class_order == "random" and config.classes_per_task == 5


@pytest.mark.parametrize(
    "text, message",
    [
        ("epochs: 0\n", "seql: error: epochs: 0 is not allowed; expected an integer >= 1"),
        ("colour: red\n", "unknown key 'colour'"),
        ("eval_every: -1\n", "eval_every: -1 is not allowed"),
    ],
)
def test_bad_config_on_the_command_line_exits_2_with_one_line(tmp_path, capsys, text, message):
    path = _write(tmp_path, text)
    assert cli.main(["run", "--config", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_resolved_config_is_saved_with_the_results(tmp_path, capsys):
    path = _write(tmp_path, "benchmark: iris-features\nmethod: none\nnum_tasks: 2\n"
                            "epochs: 2\n")
    out = tmp_path / "run"
    assert cli.main(["run", "--config", str(path), "--batch-size", "32", "--out", str(out)]) == 0
    saved = json.loads((out / "results.json").read_text())["config"]
    assert saved["benchmark"] == "iris-features" and saved["batch_size"] == 32
    assert saved["hidden"] == BENCHMARK_DEFAULTS["iris-features"]["hidden"]  # resolved
    assert saved["defaults_used"]["hidden"] == "benchmark iris-features"
    assert saved["benchmark_info"]["features"][1] == ["petal length", "petal width"]
    again = yaml.safe_load((out / "config.yaml").read_text())
    assert again["epochs"] == 2 and again["hidden"] == saved["hidden"]
    assert RunConfig(**again).validate().to_dict() == {
        k: saved[k] for k in RunConfig(**again).to_dict()}
