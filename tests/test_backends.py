"""Choosing the Keras backend: `seql --backend`, `KERAS_BACKEND`, bad input, what is recorded, and
that under JAX or PyTorch TensorFlow is never imported.

Every backend runs in its own interpreter (Keras picks its backend once per process), started by
this module from the TensorFlow session; `make test-backends` runs the modules marked
`all_backends` under JAX and PyTorch themselves. The tests on a tiny run (a subprocess of 20 s or
more per backend) are marked slow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sequential_learning.cli import backend_flag
from sequential_learning.commands import check_resume_backend, recorded_backend
from sequential_learning.errors import SeqlError

OTHERS = ("jax", "torch")
MARKER = "MODULES:"
WATCHED = ("tensorflow", "jax", "torch", "keras")

# Runs `seql ARGV` as the script does (with `HIDE` modules made to look uninstalled), then names
# the frameworks it imported.
DRIVER = f"""
import importlib.util, os, sys
hidden = set(filter(None, os.environ.pop("HIDE", "").split(",")))
real = importlib.util.find_spec
importlib.util.find_spec = lambda name, *a, **k: None if name in hidden else real(name, *a, **k)
from sequential_learning.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exit:
    code = 0 if exit.code is None else exit.code
sys.stderr.write("\\n{MARKER}" + ",".join(m for m in {WATCHED!r} if m in sys.modules) + "\\n")
sys.exit(code)
"""


def _seql(*argv: str, cwd: Path, backend: str | None = None, hide: str = "",
          timeout: int = 300) -> tuple[int, str, str, list[str]]:
    """`seql ARGV` in a new interpreter: (exit code, stdout, stderr, frameworks imported)."""
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env.update({"HIDE": hide, "TF_CPP_MIN_LOG_LEVEL": "3", "MPLBACKEND": "Agg"})
    if backend:
        env["KERAS_BACKEND"] = backend
    done = subprocess.run([sys.executable, "-c", DRIVER, *argv], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=env)
    err, _, tail = done.stderr.rpartition(MARKER)
    assert tail, f"the driver did not finish: {done.stderr[-3000:]}"
    return done.returncode, done.stdout, err, [m for m in tail.strip().split(",") if m]


def _running(listing: str) -> str:
    return next(line.split()[0] for line in listing.splitlines() if "(running)" in line)


# -- choosing ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, expected", [
    (["run", "--backend", "jax", "--epochs", "1"], "jax"),
    (["--backend=torch", "list", "methods"], "torch"),
    (["--backend", "tensorflow", "run"], "tensorflow"),
    (["run", "--epochs", "1"], None),
    (["run", "--backend"], None),  # argparse says the value is missing
    (["run", "--", "--backend", "jax"], None),
])
def test_backend_flag_is_read_before_parsing(argv, expected):
    assert backend_flag(argv) == expected


@pytest.mark.parametrize("argv, env, expected", [
    (["--backend", "jax", "list", "backends"], None, "jax"),
    (["list", "backends", "--backend", "torch"], None, "torch"),
    (["list", "backends"], "torch", "torch"),
    (["list", "backends", "--backend", "jax"], "torch", "jax"),  # the flag wins
    (["list", "backends"], None, "tensorflow"),
    (["list", "backends", "--backe", "jax"], "torch", "jax"),  # abbreviated, settled after parsing
])
def test_flag_and_environment_choose_the_backend_before_keras_loads(argv, env, expected,
                                                                    tmp_path):
    code, out, err, imported = _seql(*argv, cwd=tmp_path, backend=env)
    assert code == 0, err
    assert _running(out) == expected
    assert imported == []  # listing imports no framework, nor Keras


@pytest.mark.parametrize("argv, env, hide, expected", [
    (["--backend", "nosuch", "list", "methods"], None, "", "unknown backend 'nosuch'"),
    (["run", "--backend", "Jax", "--epochs", "1"], None, "", "unknown backend 'Jax'"),
    (["list", "methods"], "nosuch", "", "unknown backend 'nosuch'"),
    (["run", "--backend", "jax"], None, "jax", "pip install 'sequential-learning[jax]'"),
    (["run", "--epochs", "1"], "torch", "torch", "pip install 'sequential-learning[torch]'"),
    (["list", "methods"], None, "tensorflow", "pip install 'sequential-learning[tensorflow]'"),
])
def test_unknown_or_missing_backend_is_one_line_and_exit_2(argv, env, hide, expected, tmp_path):
    code, out, err, imported = _seql(*argv, cwd=tmp_path, backend=env, hide=hide)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("seql: error: ") and expected in lines[0], err
    assert out == "" and imported == []
    assert not any(tmp_path.iterdir())  # nothing written


# -- not importing TensorFlow ------------------------------------------------------------------------
@pytest.mark.parametrize("backend", OTHERS)
def test_the_public_api_imports_no_tensorflow(backend, tmp_path):
    code = (
        "import sys\n"
        "import sequential_learning as sl\n"
        "from sequential_learning import backend\n"
        "assert backend.name() == sys.argv[1], backend.name()\n"
        "stream = sl.benchmarks.make_benchmark('split-digits')\n"
        "base = sl.models.mlp_base(stream.input_shape, [8])\n"
        "tasks = sl.tasks_from_benchmark(stream, base)\n"
        "sl.RunConfig(method='fisher').validate()\n"
        "for name in ('SequentialLearningManager', 'EWCMethod', 'create_estimator', 'Results',\n"
        "             'compute_metrics', 'run_experiment', 'ConsolidationTrainer'):\n"
        "    getattr(sl, name)\n"
        "print('tensorflow' in sys.modules)\n"
    )
    env = {**os.environ, "KERAS_BACKEND": backend}
    done = subprocess.run([sys.executable, "-c", code, backend], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "False", "TensorFlow was imported"


@pytest.fixture(scope="module", params=OTHERS)
def other_run(request, tmp_path_factory):
    """A tiny `seql run --backend <jax|torch>` (fisher on split digits): (backend, folder,
    frameworks imported); made once per backend."""
    backend = request.param
    cwd = tmp_path_factory.mktemp(f"run_{backend}")
    out = cwd / "run"
    code, stdout, err, imported = _seql(
        "run", "--backend", backend, "--benchmark", "split-digits", "--num-tasks", "2",
        "--epochs", "1", "--hidden", "8", "--method", "fisher", "--fisher-samples", "20", "--out",
        str(out), cwd=cwd, timeout=600)
    assert code == 0, err[-3000:]
    assert "ACC" in stdout
    return backend, out, imported


@pytest.mark.slow
def test_seql_run_on_another_backend_never_imports_tensorflow(other_run):
    backend, _, imported = other_run
    assert backend in imported and "keras" in imported
    assert "tensorflow" not in imported


@pytest.mark.slow
def test_environment_json_records_the_backend(other_run):
    backend, out, _ = other_run
    environment = json.loads((out / "environment.json").read_text())
    assert environment["backend"] == backend
    assert backend in environment and "tensorflow" not in environment


@pytest.mark.slow
def test_results_json_records_the_backend(other_run):
    backend, out, _ = other_run
    assert json.loads((out / "results.json").read_text()).get("backend") == backend
    assert recorded_backend(out) == backend


@pytest.mark.slow
def test_resume_on_another_backend_is_refused(other_run, tmp_path):
    backend, out, _ = other_run
    other = "torch" if backend == "jax" else "jax"
    code, _, err, _ = _seql("run", "--resume", str(out), "--backend", other, cwd=tmp_path)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    assert f"made with the {backend} backend" in lines[0]
    assert f"--backend {backend}" in lines[0]


# -- what a run records, read back -------------------------------------------------------------------
def test_recorded_backend_reads_results_then_checkpoint_then_environment(tmp_path):
    assert recorded_backend(tmp_path) is None  # nothing readable: the folder's own error shows
    (tmp_path / "results.json").write_text("{}")
    assert recorded_backend(tmp_path) == "tensorflow"  # runs from before backends were chosen
    (tmp_path / "results.json").unlink()
    (tmp_path / "environment.json").write_text(json.dumps({"backend": "torch"}))
    assert recorded_backend(tmp_path) == "torch"
    (tmp_path / "checkpoint").mkdir()
    (tmp_path / "checkpoint" / "results_after_task_2.json").write_text('{"backend": "jax"}')
    assert recorded_backend(tmp_path) == "jax"
    (tmp_path / "results.json").write_text("{")  # unreadable: the next source
    assert recorded_backend(tmp_path) == "jax"
    (tmp_path / "results.json").write_text('{"backend": "tensorflow"}')
    assert recorded_backend(tmp_path) == "tensorflow"


def test_resume_keeps_the_backend_it_was_made_with(tmp_path):
    (tmp_path / "results.json").write_text('{"backend": "jax"}')
    check_resume_backend(tmp_path, "jax")
    with pytest.raises(SeqlError, match="resume it with --backend jax"):
        check_resume_backend(tmp_path, "tensorflow")
    check_resume_backend(tmp_path / "missing", "torch")  # resume_config says what is wrong
