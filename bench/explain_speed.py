"""Speed of the interpretability functions against simple baselines.

- Occlusion: the batched implementation against a per-patch loop on the same images and
  patches, both the obvious loop (one eager model call per occluded image, the reference
  design's shape; target: at least 10x faster) and a loop of compiled calls (the fastest a
  per-patch loop gets). A plain forward pass over all occluded images is printed as the floor.
- Grad-CAM (and Grad-CAM++): a batch of 64 against one forward + backward pass of that batch
  (the gradient of the loss with respect to the weights, compiled). Target: at most 3x.

The model is a task model on a nested shared base, as the manager builds them (28x28x1 input,
conv 32 -> pool -> conv 64 -> pool -> dense 10). Times are medians of repeated runs after a warm-up
call (compilation excluded).

Usage:
    python bench/explain_speed.py [--repeats 5] [--occlusion-images 4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import _common  # device line, --jit-compile
import keras
import numpy as np
import tensorflow as tf

from sequential_learning.interpret import grad_cam, grad_cam_plus_plus, occlusion_sensitivity
from sequential_learning.interpret.occlusion import patch_positions


def build_task_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    base_in = keras.Input((28, 28, 1))
    h = keras.layers.Conv2D(32, 3, activation="relu", name="conv1")(base_in)
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Conv2D(64, 3, activation="relu", name="conv2")(h)
    h = keras.layers.MaxPooling2D()(h)
    base = keras.Model(base_in, keras.layers.Flatten()(h), name="base")
    inp = keras.Input((28, 28, 1))
    return keras.Model(inp, keras.layers.Dense(10, name="head")(base(inp)), name="task_1")


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up: tracing and compilation are not timed
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def occlusion_per_patch_loop(model, images, targets, patch, stride, compiled, baseline=0.0):
    """One model call per occluded image, averaging overlapping patches.

    `compiled=False` is the obvious loop (an eager `model(x, training=False)` per patch, the
    reference design's shape); `compiled=True` calls a `tf.function` per patch, the fastest a
    per-patch loop gets.
    """
    if compiled:
        step = tf.function(lambda x: tf.nn.softmax(model(x, training=False))[0])
    else:

        def step(x):
            return tf.nn.softmax(model(x, training=False))[0]

    def forward(x):
        return step(tf.constant(x)).numpy()

    n, height, width, _ = images.shape
    maps = np.zeros((n, height, width), np.float32)
    for i in range(n):
        clean = forward(images[i : i + 1])[targets[i]]
        sums, counts = np.zeros((height, width)), np.zeros((height, width))
        for r in patch_positions(height, patch, stride):
            for c in patch_positions(width, patch, stride):
                occluded = images[i : i + 1].copy()
                occluded[0, r : r + patch, c : c + patch] = baseline
                sums[r : r + patch, c : c + patch] += clean - forward(occluded)[targets[i]]
                counts[r : r + patch, c : c + patch] += 1
        maps[i] = sums / counts
    return maps


def once(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _common.add_jit_flag(parser)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--occlusion-images", type=int, default=4)
    args = parser.parse_args()
    _common.apply_jit(args)

    model = build_task_model()
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(64, 28, 28, 1)).astype(np.float32)
    targets = rng.integers(0, 10, 64).astype(np.int32)
    devices = ", ".join(d.device_type for d in tf.config.list_logical_devices())
    print(
        f"explain_speed: keras {keras.__version__}, tensorflow {tf.__version__}, "
        f"devices {devices}, {os.cpu_count()} CPUs; medians of {args.repeats} runs"
    )

    # Occlusion -------------------------------------------------------------------------------
    n, patch, stride = args.occlusion_images, 4, 2
    x_occ, y_occ = images[:n], targets[:n]
    variants = n * (len(patch_positions(28, patch, stride)) ** 2 + 1)

    def batched():
        return occlusion_sensitivity(model, x_occ, y_occ, patch_size=patch, stride=stride)

    def loop(compiled):
        return occlusion_per_patch_loop(model, x_occ, y_occ, patch, stride, compiled)

    agree = max(float(np.abs(batched() - loop(c)).max()) for c in (False, True))
    # The loops run long enough to time once each; their warm-up was the agreement check.
    t_eager, t_compiled = once(lambda: loop(False)), once(lambda: loop(True))
    t_batched = median_time(batched, args.repeats)
    all_variants = tf.constant(np.repeat(x_occ, variants // n, axis=0))
    plain_forward = tf.function(lambda x: model(x, training=False))
    t_floor = median_time(lambda: plain_forward(all_variants).numpy(), args.repeats)
    print(
        f"occlusion: {n} images 28x28, patch {patch}, stride {stride} -> {variants} model "
        f"inputs (max |batched - loop| = {agree:.1e})"
    )
    print(f"  per-patch loop, eager model call       {t_eager * 1e3:9.1f} ms")
    print(f"  per-patch loop, compiled model call    {t_compiled * 1e3:9.1f} ms")
    print(
        f"  batched occlusion_sensitivity          {t_batched * 1e3:9.1f} ms   "
        f"{t_eager / t_batched:6.1f}x faster than the eager loop (target >= 10x), "
        f"{t_compiled / t_batched:.1f}x than the compiled loop"
    )
    print(f"  (one plain forward pass over all {variants} inputs: {t_floor * 1e3:.1f} ms)")

    # Grad-CAM --------------------------------------------------------------------------------
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    weights = model.trainable_variables

    @tf.function
    def forward_backward(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=False))
        return tape.gradient(loss, weights)

    x_t, y_t = tf.constant(images), tf.constant(targets)
    t_pass = median_time(lambda: [g.numpy() for g in forward_backward(x_t, y_t)], args.repeats)
    t_cam = median_time(lambda: grad_cam(model, images, targets), args.repeats)
    t_campp = median_time(lambda: grad_cam_plus_plus(model, images, targets), args.repeats)
    print("grad-cam: batch of 64 images 28x28, last conv layer base/conv2")
    print(f"  one forward + backward pass (weights)  {t_pass * 1e3:9.1f} ms")
    print(
        f"  grad_cam                               {t_cam * 1e3:9.1f} ms   "
        f"{t_cam / t_pass:6.2f}x the pass (target <= 3x)"
    )
    print(
        f"  grad_cam_plus_plus                     {t_campp * 1e3:9.1f} ms   "
        f"{t_campp / t_pass:6.2f}x the pass (target <= 3x)"
    )


if __name__ == "__main__":
    main()
