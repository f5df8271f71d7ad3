"""Samples per second of our train step (Fisher penalty active) against plain `model.fit`.

Usage: python bench/throughput.py [--samples 60000] [--batch-size 128] [--rounds 3]

The same model (MLP 784-400-400-10 on 28x28x1 inputs), the same data and batch size: plain
`model.fit` of the task model on NumPy arrays (Keras's own input handling) against
`SequentialTask.fit` through `ConsolidationTrainer` with an active EWC penalty (a random Ω and
anchor over the shared base) and our seeded tf.data pipeline (shuffle, batch, prefetch). Each
round trains one epoch with each, alternating, after one warm-up epoch each; the median epoch
is reported. Target: ours at least 0.9x plain `fit`. Our tasks compile with
`steps_per_execution=8` and the manager's "adam" is `FusedAdam` (Keras's Adam as TensorFlow's
fused kernel); plain `fit` with `steps_per_execution=8`, and ours with Keras's own Adam, are
shown too, the like-for-like comparisons of the step itself.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import time

import _common
import keras
import numpy as np
import tensorflow as tf

from sequential_learning.importance.penalty import ConsolidationPenalty
from sequential_learning.models import build_task_models, mlp_base
from sequential_learning.optimizers import FusedAdam
from sequential_learning.tasks import SequentialTask


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _common.add_jit_flag(parser)
    parser.add_argument("--samples", type=int, default=60000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    _common.apply_jit(args)
    print(_common.device_line())
    rng = np.random.default_rng(0)
    x = rng.random((args.samples, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, args.samples).astype(np.int64)

    def plain_model(steps_per_execution: int) -> keras.Model:
        keras.utils.set_random_seed(0)
        model = build_task_models(mlp_base((28, 28, 1), (400, 400)), [10])[0]
        model.compile(
            optimizer=keras.optimizers.Adam(1e-3),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
            steps_per_execution=steps_per_execution,
        )
        return model

    plain, grouped = plain_model(1), plain_model(8)

    keras.utils.set_random_seed(0)
    base = mlp_base((28, 28, 1), (400, 400))
    model = build_task_models(base, [10])[0]
    task = SequentialTask("bench", model, (x, y), (x[:1000], y[:1000]),
                          batch_size=args.batch_size)
    covered = list(base.trainable_variables)
    penalty = ConsolidationPenalty(covered, ewc_lambda=100.0)
    penalty.consolidate([tf.constant(rng.random(v.shape, dtype=np.float32)) for v in covered])
    trainer = task.make_trainer(FusedAdam(1e-3), penalty, None, covered)
    keras_trainer = task.make_trainer(keras.optimizers.Adam(1e-3), penalty, None, covered)

    def run_plain():
        plain.fit(x, y, batch_size=args.batch_size, epochs=1, shuffle=True, verbose=0)

    def run_grouped():
        grouped.fit(x, y, batch_size=args.batch_size, epochs=1, shuffle=True, verbose=0)

    def run_ours():
        task.fit(trainer, 1)

    def run_ours_keras_adam():
        task.fit(keras_trainer, 1)

    runs = (("plain", run_plain), ("grouped", run_grouped), ("ours", run_ours),
            ("ours-keras", run_ours_keras_adam))
    for _, fn in runs:
        fn()
    times = {name: [] for name, _ in runs}
    cpu = {name: [] for name, _ in runs}
    for _ in range(args.rounds):
        for name, fn in runs:
            gc.collect()  # finish the previous run's input pipeline before timing the next
            c, t = os.times(), time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
            c2 = os.times()
            cpu[name].append(c2.user + c2.system - c.user - c.system)
    rate = {k: args.samples / statistics.median(v) for k, v in times.items()}
    cpu_rate = {k: args.samples / statistics.median(v) for k, v in cpu.items()}
    print(f"{'':<34} {'samples/s':>10} {'per CPU-s':>10}")
    print(f"{'plain model.fit':<34} {rate['plain']:10.0f} {cpu_rate['plain']:10.0f}")
    print(f"{'plain, steps_per_execution=8':<34} {rate['grouped']:10.0f} "
          f"{cpu_rate['grouped']:10.0f}")
    print(f"{'ours (Fisher penalty, tf.data)':<34} {rate['ours']:10.0f} {cpu_rate['ours']:10.0f}")
    print(f"{'ours with Keras Adam':<34} {rate['ours-keras']:10.0f} "
          f"{cpu_rate['ours-keras']:10.0f}")
    for mine, other, label in (("ours", "plain", "ours / plain"),
                               ("ours", "grouped", "ours / plain with steps_per_execution=8"),
                               ("ours-keras", "grouped",
                                "ours with Keras Adam / plain with steps_per_execution=8")):
        print(f"ratio {label}: {rate[mine] / rate[other]:.2f}x wall, "
              f"{cpu_rate[mine] / cpu_rate[other]:.2f}x CPU")
    print(f"(target >= 0.9x plain; load average {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
