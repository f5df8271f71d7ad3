"""Speed of the diagonal Fisher: closed form vs per-sample loop vs one batched gradient pass.

Usage: python bench/fisher_speed.py [--samples 1000] [--loop-samples 1000] [--jit-compile]

Targets (MLP 784-400-400-10, 1000 inputs): exact Fisher at most 5x one batched gradient pass,
and at least 100x faster than a per-sample Python loop. The CNN figures are reported.
"""

from __future__ import annotations

import argparse
import time

import _common  # noqa: F401  (quiet TensorFlow first)
import keras
import numpy as np
import tensorflow as tf

from sequential_learning.importance.fisher import fisher_objective, sample_labels
from sequential_learning.importance.per_sample import PerSampleReducer, reference_per_sample


def mlp():
    inp = keras.Input((784,))
    h = keras.layers.Dense(400, activation="relu")(inp)
    h = keras.layers.Dense(400, activation="relu")(h)
    return keras.Model(inp, keras.layers.Dense(10)(h)), (784,)


def cnn():
    inp = keras.Input((28, 28, 1))
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inp)
    h = keras.layers.MaxPooling2D(2)(h)
    h = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(h)
    h = keras.layers.MaxPooling2D(2)(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(64, activation="relu")(h)
    return keras.Model(inp, keras.layers.Dense(10)(h)), (28, 28, 1)


def run(name, builder, samples, loop_samples, jit):
    keras.utils.set_random_seed(0)
    model, shape = builder()
    x = np.random.default_rng(0).random((samples, *shape)).astype("float32")
    y = np.random.default_rng(1).integers(0, 10, samples)
    variables = model.trainable_variables
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function(jit_compile=jit)
    def batched_gradient(xb, yb):
        with tf.GradientTape() as tape:
            loss = loss_fn(yb, model(xb, training=False))
        return tape.gradient(loss, variables)

    xt, yt = tf.constant(x), tf.constant(y)
    t_grad = _common.best_time(lambda: [g.numpy() for g in batched_gradient(xt, yt)])
    rows = []
    for mode in ("exact", "sampled", "empirical"):
        labels = {"exact": y, "empirical": y, "sampled": sample_labels(model, x, 0)}[mode]
        reducer = PerSampleReducer(model, variables, fisher_objective(mode), "square", 1000)
        start = time.perf_counter()
        reducer(x, labels)
        first = time.perf_counter() - start
        steady = _common.best_time(lambda r=reducer, lb=labels: r(x, lb))
        rows.append((mode, first, steady))
    start = time.perf_counter()
    reference_per_sample(model, variables, x[:loop_samples], y[:loop_samples], fisher_objective("exact"))
    t_loop = (time.perf_counter() - start) * samples / loop_samples
    print(f"\n{name}: {samples} inputs, {model.count_params():,} parameters")
    print(f"  one batched gradient pass        {t_grad * 1000:9.1f} ms")
    for mode, first, steady in rows:
        print(f"  Fisher {mode:<9} closed form    {steady * 1000:9.1f} ms  "
              f"({steady / t_grad:5.1f}x the gradient pass; first call with tracing {first:.2f} s)")
    note = "" if loop_samples == samples else f" (timed on {loop_samples}, scaled)"
    print(f"  per-sample Python loop (exact)   {t_loop * 1000:9.1f} ms{note}")
    exact = rows[0][2]
    print(f"  exact: {exact / t_grad:.1f}x one gradient pass (target <= 5x), "
          f"{t_loop / exact:.0f}x faster than the loop (target >= 100x)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--loop-samples", type=int, default=1000)
    parser.add_argument("--jit-compile", action="store_true")
    args = parser.parse_args()
    print(_common.device_line())
    run("MLP 784-400-400-10", mlp, args.samples, args.loop_samples, args.jit_compile)
    run("CNN conv16-pool-conv32-pool-dense64-10", cnn, args.samples, args.loop_samples, args.jit_compile)


if __name__ == "__main__":
    main()
