"""TensorBoard logs: per-task training logs and every task's validation metrics against the global
epoch, read back from the event files."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from sequential_learning import tensorboard as tb
from sequential_learning.cli import _config_from, parse
from sequential_learning.config import RunConfig, run_experiment


def read_scalars(folder) -> dict[str, dict[int, float]]:
    """`{tag: {step: value}}` of every scalar in the event files of `folder`."""
    out: dict[str, dict[int, float]] = {}
    files = sorted(Path(folder).glob("events.out.tfevents.*"))
    assert files, f"no event file in {folder}"
    for path in files:
        for record in tf.data.TFRecordDataset(str(path)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.WhichOneof("value") == "simple_value":
                    number = value.simple_value
                elif value.WhichOneof("value") == "tensor":
                    number = float(tf.make_ndarray(value.tensor))
                else:
                    continue
                out.setdefault(value.tag, {})[int(event.step)] = number
    return out


@pytest.fixture(scope="module")
def tensorboard_run(tmp_path_factory):
    """Two split-digits tasks, two epochs each, with TensorBoard logs."""
    out = tmp_path_factory.mktemp("tb") / "run"
    config = RunConfig(benchmark="split-digits", classes_per_task=5, epochs=2, hidden=[8],
                       fisher_samples=30, tensorboard=True)
    return out, run_experiment(config, out)


def test_validation_scalars_of_every_task_against_the_global_epoch(tensorboard_run):
    out, results = tensorboard_run
    scalars = read_scalars(out / "tensorboard" / "validation")
    expected = {f"{m}/task_{j}" for m in ("accuracy", "loss") for j in (1, 2)} | {"training_task"}
    assert set(scalars) == expected
    for j in range(2):
        accuracy = scalars[f"accuracy/task_{j + 1}"]
        assert sorted(accuracy) == [0, 1, 2, 3, 4]  # step 0: the untrained model
        assert accuracy[0] == pytest.approx(results.baseline[j], abs=1e-6)
        logged = [accuracy[e] for e in range(1, 5)]
        np.testing.assert_allclose(logged, results.history["accuracy"][:, j], atol=1e-6)
    assert scalars["training_task"] == {1: 1.0, 2: 1.0, 3: 2.0, 4: 2.0}


def test_each_task_has_its_training_log(tensorboard_run):
    out, results = tensorboard_run
    for k in (1, 2):
        scalars = read_scalars(out / "tensorboard" / f"task_{k}" / "train")
        assert sorted(scalars["epoch_loss"]) == [0, 1]
    assert "<h2 id='tensorboard'>TensorBoard</h2>" in (out / "report.html").read_text()


def test_logger_writes_plugin_scalars(tmp_path):
    logger = tb.TensorBoardLogger(tmp_path)
    logger.log_epoch(0, [{"accuracy": 0.5}, {"accuracy": 0.25}])
    logger.log_epoch(1, [{"accuracy": 0.75}, {"accuracy": 0.5}], training_task=0)
    logger.close()
    assert read_scalars(tmp_path / "validation") == {
        "accuracy/task_1": {0: 0.5, 1: 0.75},
        "accuracy/task_2": {0: 0.25, 1: 0.5},
        "training_task": {1: 1.0},
    }
    path = next((tmp_path / "validation").glob("events.*"))
    events = [tf.compat.v1.Event.FromString(r.numpy()) for r in tf.data.TFRecordDataset(str(path))]
    plugins = {v.metadata.plugin_data.plugin_name for e in events for v in e.summary.value}
    assert plugins == {"scalars"}  # TensorBoard's Scalars tab shows them


def test_task_callback_is_keras_tensorboard_or_the_fallback(tmp_path, monkeypatch):
    logger = tb.TensorBoardLogger(tmp_path)
    monkeypatch.setattr(tb, "tensorboard_installed", lambda: True)
    callback = logger.task_callback(1)
    assert isinstance(callback, keras.callbacks.TensorBoard)
    assert Path(callback.log_dir) == tmp_path / "task_2"
    monkeypatch.setattr(tb, "tensorboard_installed", lambda: False)
    fallback = logger.task_callback(0)
    assert isinstance(fallback, tb.EpochScalars)
    fallback.on_epoch_end(0, {"loss": 1.5})
    fallback.on_train_end()
    assert read_scalars(tmp_path / "task_1" / "train") == {"epoch_loss": {0: 1.5}}


@pytest.mark.parametrize("command", ["run", "compare"])
def test_cli_flag(command):
    on = parse([command, "--tensorboard"])
    off = parse([command])
    method = "fisher" if command == "compare" else None
    assert _config_from(on, method).tensorboard is True
    assert _config_from(off, method).tensorboard is False


def test_bad_values():
    with pytest.raises(ValueError, match="tensorboard"):
        RunConfig(tensorboard="yes").validate()
    with pytest.raises(ValueError, match="tensorboard: true needs an output directory"):
        run_experiment(RunConfig(benchmark="split-digits", tensorboard=True), None)
