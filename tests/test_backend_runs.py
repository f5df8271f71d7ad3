"""The run machinery on every Keras backend: the input pipeline, the strategy, TensorBoard, and
whole runs (results.json records the backend)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sequential_learning import backend
from sequential_learning.config import RunConfig, run_experiment
from sequential_learning.distribute import LOCAL, make_strategy
from sequential_learning.pipeline import ArrayBatches, array_dataset, is_tf_dataset
from sequential_learning.tensorboard import TensorBoardLogger

pytestmark = pytest.mark.all_backends


def _batches(dataset) -> list:
    """One epoch of `array_dataset`'s batches as NumPy arrays, on any backend."""
    if is_tf_dataset(dataset):
        return [tuple(np.asarray(part) for part in batch) for batch in dataset]
    return [dataset[i] for i in range(len(dataset))]


def test_array_batches_are_seeded_shuffled_and_cover_every_sample():
    x = np.arange(50, dtype=np.float32).reshape(25, 2)
    y = np.arange(25)
    a, b = ArrayBatches(x, y, 8, seed=3), ArrayBatches(x, y, 8, seed=3)
    assert len(a) == 4 and [len(a[i][1]) for i in range(4)] == [8, 8, 8, 1]
    first = np.concatenate([a[i][1] for i in range(len(a))])
    assert sorted(first) == list(range(25)) and list(first) != list(range(25))
    np.testing.assert_array_equal(first, np.concatenate([b[i][1] for i in range(len(b))]))
    for i in range(len(a)):  # rows stay paired with their labels
        np.testing.assert_array_equal(a[i][0][:, 0], 2 * a[i][1])
    a.on_epoch_end()
    second = np.concatenate([a[i][1] for i in range(len(a))])
    assert sorted(second) == list(range(25)) and list(second) != list(first)
    with pytest.raises(IndexError):
        a[4]


def test_array_batches_with_task_ids():
    x, y, ids = np.zeros((6, 3)), np.arange(6), np.array([0, 0, 1, 1, 2, 2])
    (xb, tb), yb = ArrayBatches(x, y, 4, seed=0, task_ids=ids)[0]
    assert xb.dtype == np.float32 and xb.shape == (4, 3)
    np.testing.assert_array_equal(tb, ids[yb])


def test_array_dataset_is_the_backends_pipeline():
    x, y = np.random.default_rng(0).random((10, 2)), np.arange(10)
    dataset = array_dataset(x, y, 4, seed=0)
    assert is_tf_dataset(dataset) == backend.is_tensorflow()
    labels = np.concatenate([batch[1] for batch in _batches(dataset)])
    assert sorted(labels) == list(range(10))


def test_strategies_off_tensorflow():
    if backend.is_tensorflow():
        pytest.skip("tf.distribute runs on TensorFlow (tests/test_distribute.py)")
    assert make_strategy("default") is LOCAL
    assert LOCAL.num_replicas_in_sync == 1
    with LOCAL.scope():
        pass
    refused = ("mirrored", "multi-worker") if backend.name() == "torch" else ("multi-worker",)
    for name in refused:  # JAX's mirrored: tests/test_jax_data_parallel.py
        with pytest.raises(ValueError, match="needs the TensorFlow backend"):
            make_strategy(name)


def test_tensorboard_off_tensorflow_warns_and_writes_nothing(tmp_path, capsys):
    if backend.is_tensorflow():
        pytest.skip("TensorBoard logs on TensorFlow: tests/test_tensorboard.py")
    logger = TensorBoardLogger(tmp_path / "tb")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "TensorBoard logs need the TensorFlow backend" in err
    logger.log_epoch(1, [{"accuracy": 0.5}], training_task=0)
    logger.close()
    assert not (tmp_path / "tb").exists()


@pytest.mark.parametrize("method", ["none", "fisher"])
def test_a_split_digits_run_records_its_backend(tmp_path, method):
    out = tmp_path / "run"
    config = RunConfig(benchmark="split-digits", classes_per_task=5, epochs=3, hidden=[32],
                       method=method, ewc_lambda=10.0, fisher_samples=64, deterministic=True)
    results = run_experiment(config, out)
    assert results.backend == backend.name()
    assert json.loads((out / "results.json").read_text())["backend"] == backend.name()
    assert results.accuracy_matrix.shape == (2, 2)
    assert results.completed_tasks == 2
    # Two tasks of five digits: well above chance (0.2) on the task just trained.
    assert results.accuracy_matrix[0, 0] > 0.7 and results.accuracy_matrix[1, 1] > 0.7
