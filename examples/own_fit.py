"""EWC inside your own Keras loop: compile / fit(task A) / end_task() / fit(task B).

Runs on any Keras backend (KERAS_BACKEND=jax|torch|tensorflow). Two tasks of permuted digits;
prints the accuracy on the first task after the second, with EWC and with plain fine-tuning.
"""

import keras
import numpy as np
from sklearn.datasets import load_digits

from sequential_learning import ContinualModel

digits = load_digits()
x, y = (digits.data / 16.0).astype("float32"), digits.target
task_a, task_b = (x, y), (x[:, np.random.RandomState(1).permutation(64)], y)


def first_task_accuracy(method: str, **options) -> float:
    keras.utils.set_random_seed(0)
    net = keras.Sequential([keras.Input((64,)), keras.layers.Dense(100, activation="relu"),
                            keras.layers.Dense(100, activation="relu"), keras.layers.Dense(10)])
    # --- the README's example ---
    model = ContinualModel(net, method=method, **options)
    model.compile(optimizer="adam", metrics=["accuracy"],
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(*task_a, epochs=10, verbose=0)
    model.end_task()                                   # importance and anchors of task A
    model.fit(*task_b, epochs=10, verbose=0)
    return model.evaluate(*task_a, verbose=0, return_dict=True)["accuracy"]


if __name__ == "__main__":
    ewc = first_task_accuracy("fisher", ewc_lambda=50.0)
    plain = first_task_accuracy("none")
    print(f"{keras.backend.backend()}: task A accuracy after task B: EWC {ewc:.3f}, "
          f"fine-tuning {plain:.3f}")
    assert ewc > plain, "EWC should forget less than fine-tuning"
