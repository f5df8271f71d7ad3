"""Shared test set-up: the Keras backend, quiet TensorFlow, seeded models, runs made once per session.

The backend is `KERAS_BACKEND` at session start (TensorFlow when unset). On TensorFlow every test
module is collected; on JAX or PyTorch only the modules marked to run on every backend
(`pytestmark = pytest.mark.all_backends` at their top, and no TensorFlow in them): the others
test TensorFlow-only paths or are not yet ported.

Session fixtures are made once per process: once per worker under pytest-xdist (`make test` runs
two), so a session fixture must never be changed by a test (copy it first) and must write only
under `tmp_path_factory`, which gives every worker folders of its own.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sequential_learning.backend import select

#: The Keras backend of this session (`KERAS_BACKEND`, else TensorFlow), set before Keras loads.
BACKEND = select(None)
#: What a module's source holds to be collected on a backend other than TensorFlow.
ALL_BACKENDS_MARK = "pytest.mark.all_backends"

if BACKEND == "tensorflow":
    from sequential_learning._tf import quiet_tensorflow

    quiet_tensorflow()
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "all_backends: a test module that runs on every Keras backend (set as "
        "`pytestmark` at its top; it holds no TensorFlow); under KERAS_BACKEND=jax or torch only "
        "these modules are collected")


def pytest_ignore_collect(collection_path: Path, config):
    """On JAX or PyTorch, leaves out the test modules not marked `all_backends`."""
    if BACKEND == "tensorflow" or collection_path.suffix != ".py":
        return None
    if not collection_path.name.startswith("test_"):
        return None
    try:
        source = collection_path.read_text(encoding="utf-8")
    except OSError:
        return None
    return None if ALL_BACKENDS_MARK in source else True


@pytest.fixture
def seeded():
    """Seeds Python, NumPy and the backend (Keras's global seed)."""
    keras.utils.set_random_seed(0)
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory):
    """A small finished run folder (fisher+replay: a penalty and a buffer in its checkpoint).

    Shared by the session: copy it before changing anything in it.
    """
    from sequential_learning.cli import main

    out = tmp_path_factory.mktemp("finished") / "run"
    assert main(["run", "--benchmark", "split-digits", "--epochs", "1", "--hidden", "8",
                 "--fisher-samples", "50", "--method", "fisher+replay", "--memory", "50",
                 "--out", str(out)]) == 0
    return out


@pytest.fixture
def finished_run_copy(finished_run, tmp_path):
    """A copy of `finished_run` in the test's own folder (`tmp_path / "run"`), free to change."""
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    return run


@pytest.fixture(scope="session")
def default_run():
    """`default_run(method)`: the results of `run_experiment(RunConfig(method=method))`, the
    defaults' honest run (permuted-digits, 5 tasks x 10 epochs), made once per session.

    The acceptance tests compare methods against the same fine-tuning run: one run of it, not
    one per file. Shared: never change the results it returns.
    """
    from sequential_learning.config import RunConfig, run_experiment

    made = {}

    def run(method: str):
        if method not in made:
            made[method] = run_experiment(RunConfig(method=method))
        return made[method]

    return run
