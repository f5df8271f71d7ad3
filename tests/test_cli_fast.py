"""`seql` answers help, listings and bad input without importing TensorFlow, Keras or matplotlib.

Each command runs in a fresh interpreter (the test process has TensorFlow loaded already) and
reports which heavy modules it imported; the assertions are on modules, never on timing.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.all_backends

HEAVY = ("tensorflow", "keras", "matplotlib", "sklearn")
MARKER = "HEAVY-MODULES:"

# Runs `main` as the `seql` script does, then names the heavy modules it imported.
DRIVER = f"""
import sys
from sequential_learning.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exit:
    code = 0 if exit.code is None else exit.code
heavy = [m for m in {HEAVY!r} if m in sys.modules]
sys.stderr.write("\\n{MARKER}" + ",".join(heavy) + "\\n")
sys.exit(code)
"""


def _seql(*argv: str, cwd) -> tuple[int, str, str, list[str]]:
    """Runs `seql ARGV` in a new interpreter: (exit code, stdout, stderr, heavy modules)."""
    done = subprocess.run([sys.executable, "-c", DRIVER, *argv], capture_output=True, text=True,
                          timeout=60, cwd=cwd)
    err, _, tail = done.stderr.rpartition(MARKER)
    assert tail, f"the driver did not finish: {done.stderr}"
    heavy = [m for m in tail.strip().split(",") if m]
    return done.returncode, done.stdout, err, heavy


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["run", "--help"],
        ["compare", "--help"],
        ["sweep", "--help"],
        ["list", "methods"],
        ["list", "benchmarks"],
        ["list", "backends"],
        ["--backend", "torch", "list", "backends"],
    ],
)
def test_help_and_lists_do_not_import_tensorflow(argv, tmp_path):
    code, out, _, heavy = _seql(*argv, cwd=tmp_path)
    assert code == 0
    assert out.strip()
    assert heavy == []


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--epochs", "0"], "epochs: 0 is not allowed"),
        (["run", "--method", "nosuch"], "Unknown method 'nosuch'"),
        (["run", "--gamma", "2"], "gamma: 2.0 is not allowed"),
        (["compare", "--methods", "fisher,nosuch"], "Unknown method 'nosuch'"),
        (["sweep", "--lambdas", "1,-1"], "lambdas"),
    ],
)
def test_bad_values_exit_2_with_one_line_without_tensorflow(argv, message, tmp_path):
    code, out, err, heavy = _seql(*argv, cwd=tmp_path)
    lines = err.strip().splitlines()
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("seql: error: ") and message in lines[0]
    assert heavy == []
    assert not (tmp_path / "runs").exists()  # nothing written for rejected input


def test_bad_choice_is_argparse_error_without_tensorflow(tmp_path):
    code, _, err, heavy = _seql("run", "--benchmark", "nosuch", cwd=tmp_path)
    assert code == 2
    assert err.strip().splitlines()[-1].startswith("seql run: error: argument --benchmark")
    assert heavy == []


def test_run_help_still_lists_its_options(tmp_path):
    _, out, _, _ = _seql("run", "--help", cwd=tmp_path)
    for option in ("--benchmark", "--method", "--lambda", "--epochs", "--fisher-mode",
                   "--penalty-mode", "--resume", "--verbose"):
        assert option in out
    for name in ("permuted-digits", "fisher", "exact, sampled, empirical, batch", "separate"):
        assert name in out


def test_importance_package_imports_without_tensorflow(tmp_path):
    code = (
        "import sys\n"
        "from sequential_learning.importance import (FISHER_MODES, PENALTY_MODES, EWCMethod,\n"
        "    available_methods, default_penalty_mode, parse_method)\n"
        "from sequential_learning.config import RunConfig\n"
        "RunConfig(method='si').validate()\n"
        "assert parse_method('fisher') is EWCMethod.FISHER_MATRIX\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
