"""JAX: `steps_per_execution` steps as one `lax.scan` give Keras's own per-step numbers."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from sequential_learning.training import ContinualTrainer

pytestmark = [pytest.mark.all_backends,
              pytest.mark.skipif(keras.backend.backend() != "jax", reason="JAX only")]


def _train(monkeypatch, scan: bool, method: str):
    from sequential_learning.plugins import make_plugins
    from sequential_learning.plugins.base import Run

    monkeypatch.setenv("SEQL_JAX_SCAN", "1" if scan else "0")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(4)])
    x = np.random.RandomState(0).rand(300, 16).astype("float32")
    y = (x[:, 0] * 4).astype("int32")

    class _Task:
        batch_size = 32
        train_data = (x, y)

        def _is_classification(self):
            return True

    _Task.model = model
    plugins = make_plugins(method, memory=50) if method != "none" else []
    run = Run(tasks=[_Task()], covered=list(model.trainable_variables), seed=0, shared_head=True)
    for plugin in plugins:
        plugin.build(run)
    trainer = ContinualTrainer(model, covered=model.trainable_variables, plugins=plugins)
    trainer.compile(optimizer="adam", metrics=["accuracy"],
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    steps_per_execution=4)
    history = trainer.fit(x, y, epochs=2, batch_size=32, verbose=0, shuffle=False)
    name = trainer.train_function.__qualname__
    return [np.asarray(w) for w in model.get_weights()], history.history, name


@pytest.mark.parametrize("method", ["none", "replay"])
def test_scanned_steps_equal_keras_own_loop(monkeypatch, method):
    weights, history, name = _train(monkeypatch, True, method)
    reference, reference_history, reference_name = _train(monkeypatch, False, method)
    assert "make_train_function" in name and name != reference_name  # the scan ran
    for got, want in zip(weights, reference):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(history["loss"], reference_history["loss"], rtol=1e-5)


def test_a_variable_the_step_reads_but_does_not_track_is_one_line():
    """On JAX such a variable would be compiled into the step as its first value: refused."""
    from keras import ops

    from sequential_learning.errors import SeqlError
    from sequential_learning.plugins.base import Plugin

    class Hidden(Plugin):
        name = "hidden"
        log_names = ("hidden_loss",)

        def __init__(self):
            self.kept = {"weight": keras.Variable(0.5, trainable=False, name="hidden_weight")}

        def variables(self):
            return []  # the variable is kept where the default search would find it: hidden

        def extra_losses(self, step):
            return {"hidden_loss": self.kept["weight"] * ops.mean(ops.square(step.y_pred))}

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    trainer = ContinualTrainer(model, plugins=[Hidden()])
    trainer.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(True))
    x, y = np.ones((8, 4), "float32"), np.zeros(8, "int32")
    with pytest.raises(SeqlError, match=r"reads variables it does not track \(hidden_weight\)"):
        trainer.fit(x, y, epochs=1, batch_size=4, verbose=0)
