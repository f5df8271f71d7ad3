"""One declaration per option: the registry, `RunConfig`, the generated `seql` flags, the config
file checks and the listings agree, and a method registered in one place appears in all of them."""

from __future__ import annotations

import re

import pytest

from sequential_learning import cli
from sequential_learning.config import RunConfig, load_config_file, run_options
from sequential_learning.options import int_option, scalar
from sequential_learning.plugins import registry
from sequential_learning.plugins.registry import all_options, register_method

pytestmark = pytest.mark.all_backends

COMMANDS = ("run", "compare", "sweep")


def _help(*argv: str, capsys) -> str:
    with pytest.raises(SystemExit):
        cli.main([*argv, "--help"])
    return capsys.readouterr().out


def _sample(option) -> list[str]:
    """A command-line value the option accepts (none for a switch)."""
    hint = scalar(option.hint)
    if hint is bool:
        return []
    if option.choices:
        return [option.choices[-1]]
    if option.nargs:
        return ["1", "2"] * (option.nargs // 2)
    if hint in (int, float) or str(hint).startswith("list"):
        return ["3"]
    return ["3"] if option.config_key == "class_order" else ["some-text"]


# -- (a) a method registered in one file ----------------------------------------------------------
@pytest.fixture
def counting_method():
    made = []
    every = int_option("count_every", 7, "steps between two counts")
    register_method("count-test", lambda count_every=7: made.append(count_every),
                    "counts steps (a test)", options=[every], replace=True)
    yield made
    registry._METHODS.pop("count-test")


def test_a_registered_method_is_a_flag_a_config_key_and_a_listing(counting_method, capsys,
                                                                  tmp_path):
    assert "--count-every COUNT_EVERY" in _help("run", capsys=capsys)
    assert "count-test: steps between two counts (default: 7)" in " ".join(
        _help("run", capsys=capsys).split())
    assert cli.main(["list", "methods"]) == 0
    listing = capsys.readouterr().out.splitlines()
    row = next(i for i, line in enumerate(listing) if line.split()[:1] == ["count-test"])
    assert "counts steps (a test)" in listing[row]
    assert "--count-every 7: steps between two counts" in listing[row + 1]
    # The flag and the config key reach the method's factory.
    config = cli._config_from(cli.parse(["run", "--method", "none+count-test",
                                         "--count-every", "5"]))
    assert config.more_options == {"count_every": 5}
    assert config.method_options()["count_every"] == 5
    registry.method_spec("count-test").make(**config.method_options())
    assert counting_method == [5]
    path = tmp_path / "ok.yaml"
    path.write_text("method: count-test\ncount-every: 9\n")
    assert load_config_file(path)["count_every"] == 9
    assert cli._config_from(cli.parse(["run", "--config", str(path)])).to_dict()[
        "count_every"] == 9
    # A bad value: exit 2, one line naming the key and what is allowed.
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: count-test\ncount_every: 0\n")
    assert cli.main(["run", "--config", str(bad), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["seql: error: count_every: 0 is not allowed; expected an integer >= 1"]
    bad.write_text("count_every: many\n")
    assert cli.main(["run", "--config", str(bad)]) == 2
    assert "count_every: 'many' is not allowed; expected an integer" in capsys.readouterr().err


def test_an_option_declared_twice_differently_is_refused():
    with pytest.raises(ValueError, match="option 'memory' is declared by another method"):
        register_method("memory-test", lambda memory=3: None, "x",
                        options=[int_option("memory", 3, "another memory")])


# -- (b) the registry, RunConfig and the parser agree ---------------------------------------------
def test_every_declared_option_has_one_flag_and_its_default(capsys):
    declared = {**all_options(), **run_options()}
    for key, option in run_options().items():  # RunConfig's defaults are the declarations'
        assert getattr(RunConfig(), key) == option.default, key
        if key in all_options() and all_options()[key].cli_flag:
            assert option is all_options()[key], f"{key} is declared twice"
    for command in COMMANDS:
        options = cli.command_options(command)
        text = _help(command, capsys=capsys)
        usage = text.split("\n\n")[0]
        # `--backend` is every command's (chosen before Keras loads), not a declared option.
        flags = [f for f in re.findall(r"\[(--[a-z-]+)", usage) if f != "--backend"]
        assert "--backend" in usage
        assert sorted(flags) == sorted(o.cli_flag for o in options.values()), command
        assert len(flags) == len(set(flags)), f"{command}: a flag twice"
        for key, option in options.items():
            if key == "config":
                continue  # reads the file: test_config.py
            if key in declared:
                assert option is declared[key], key
            # The flag sets its own key and nothing else; the rest keep the declared defaults.
            args = cli.parse([command, option.cli_flag, *_sample(option)])
            assert args.explicit == {key}, (command, key)
        args = cli.parse([command])
        assert args.explicit == set() and args.settings == {}
        for key in ("out", "verbose", "config", "overwrite"):
            assert getattr(args, key) == options[key].default
    for key, option in all_options().items():  # every method option with a flag has one
        if option.cli_flag:
            assert option.cli_flag in _help("run", capsys=capsys), key


def test_help_shows_each_default_where_it_comes_from(capsys):
    text = " ".join(_help("run", capsys=capsys).split())
    assert "--fisher-samples FISHER_SAMPLES training inputs used to estimate importance " \
           "(default: 1000)" in text
    # The methods that take --memory are listed before its help (more as methods are added).
    assert re.search(r"--memory MEMORY replay, derpp, [a-z, +-]+: samples the buffer holds", text)
    assert "epochs per task (default: 10, or the benchmark's own" in text
