"""ContinualModel: a registered method inside the user's own compile / fit loop, every backend."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits

from sequential_learning.continual_model import ContinualModel

pytestmark = pytest.mark.all_backends


def _permuted_digits(tasks: int = 3):
    digits = load_digits()
    x, y = (digits.data / 16.0).astype("float32"), digits.target.astype("int32")
    perms = [np.arange(64)] + [np.random.RandomState(k).permutation(64) for k in range(1, tasks)]
    return [(x[:, p], y) for p in perms]


def _net():
    return keras.Sequential([keras.Input((64,)), keras.layers.Dense(100, activation="relu"),
                             keras.layers.Dense(100, activation="relu"), keras.layers.Dense(10)])


def _compile(model):
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])


def _stream_accuracy(method: str, **options) -> tuple[float, float]:
    """(accuracy on the first task at the end, mean accuracy over the tasks at the end)."""
    tasks = _permuted_digits()
    keras.utils.set_random_seed(0)
    model = ContinualModel(_net(), method=method, **options)
    _compile(model)
    for x, y in tasks:
        model.fit(x, y, epochs=10, batch_size=32, verbose=0)
        model.end_task()
    accuracies = [model.evaluate(x, y, verbose=0, return_dict=True)["accuracy"]
                  for x, y in tasks]
    return accuracies[0], float(np.mean(accuracies))


def test_ewc_in_a_users_fit_loop_forgets_less_than_fine_tuning():
    first_none, mean_none = _stream_accuracy("none")
    first_ewc, mean_ewc = _stream_accuracy("fisher", ewc_lambda=50.0)
    assert first_ewc > first_none + 0.1
    assert mean_ewc > mean_none + 0.05


def test_callbacks_validation_data_and_save_work_as_usual(tmp_path):
    (x, y), (x2, y2) = _permuted_digits(2)
    keras.utils.set_random_seed(0)
    model = ContinualModel(_net(), method="fisher", ewc_lambda=50.0)
    _compile(model)
    seen = []
    callback = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: seen.append(logs))
    model.fit(x, y, epochs=2, verbose=0, callbacks=[callback],
              validation_data=(x[:100], y[:100]))
    assert len(seen) == 2 and "val_accuracy" in seen[-1] and "penalty" in seen[-1]
    summary = model.end_task()
    assert "importance" in summary
    history = model.fit(x2, y2, epochs=1, verbose=0)
    assert history.history["penalty"][-1] > 0.0  # the first task is consolidated
    path = tmp_path / "net.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict(x[:8], verbose=0),
                               model.predict(x[:8], verbose=0), rtol=1e-5, atol=1e-5)


def test_bad_use_says_what_is_wrong():
    model = ContinualModel(_net(), method="fisher")
    with pytest.raises(ValueError, match="call fit first"):
        model.end_task()
    with pytest.raises(ValueError, match="SequentialLearningManager"):
        ContinualModel(_net(), method="joint")
    with pytest.raises(ValueError, match="num_tasks"):
        ContinualModel(_net(), method="none", num_tasks=0)


def test_replay_in_a_users_fit_loop_forgets_less_on_split_digits():
    digits = load_digits()
    x, y = (digits.data / 16.0).astype("float32"), digits.target.astype("int32")
    tasks = [(x[np.isin(y, [2 * k, 2 * k + 1])], y[np.isin(y, [2 * k, 2 * k + 1])])
             for k in range(5)]

    def first_task_accuracy(method, **options):
        keras.utils.set_random_seed(0)
        model = ContinualModel(_net(), method=method, seed=0, **options)
        _compile(model)
        for xt, yt in tasks:
            model.fit(xt, yt, epochs=5, batch_size=32, verbose=0)
            model.end_task()
        return model.evaluate(*tasks[0], verbose=0, return_dict=True)["accuracy"]

    plain = first_task_accuracy("none")
    replay = first_task_accuracy("replay", memory=200)
    assert plain < 0.2            # class-incremental fine-tuning forgets the first task
    assert replay > plain + 0.4
