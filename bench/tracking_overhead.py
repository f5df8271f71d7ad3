"""Epoch time of the per-step trackers against plain training (`none`).

Synaptic intelligence and the sign-flip, momentum (update reversal) and weight-change trackers
update `tf.Variable` accumulators inside the compiled train step. This script times a training
epoch with each of them against `none` on the default permuted-digits set-up (MLP 64-100-100-10,
Adam 1e-3, batch 32, one task's training data) and prints the ratio. Target: at most 1.15x.

Two settings:
- `tracking`: the first task, where no penalty is active yet: the trackers' cost alone.
- `tracking + penalty`: a later task, with the consolidation penalty active for the method
  (λ Ω (θ − θ*) added to the gradients) and none for `none`: what a user pays per epoch.
`weight-decay` (a penalty, no tracking) is printed too, to tell the penalty's cost from the
trackers'.

Each figure is taken over `--repeats` timed blocks of `--epochs` epochs after one warm-up epoch
(tracing excluded): the median, and the best block (other work on the machine only ever slows a
block down, so the best is the least disturbed). Methods are timed interleaved, block by block,
so that drifts of the machine's speed hit them all alike.

Usage:
    python bench/tracking_overhead.py [--repeats 5] [--epochs 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import _common  # noqa: E402  (device line, --jit-compile)
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from sequential_learning.data.benchmarks import make_benchmark  # noqa: E402
from sequential_learning.importance import create_estimator  # noqa: E402
from sequential_learning.importance.penalty import ConsolidationPenalty  # noqa: E402
from sequential_learning.models import mlp_base  # noqa: E402
from sequential_learning.tasks import tasks_from_benchmark  # noqa: E402

METHODS = ("none", "weight-decay", "si", "sign-flipping", "momentum-based", "weight-change")
TRACKERS = METHODS[2:]


def make_trainers(with_penalty: bool):
    """One (trainer, dataset) per method, each on its own freshly built model (same seed)."""
    stream = make_benchmark("permuted-digits", None, 0, 2)
    trainers = {}
    for method in METHODS:
        keras.utils.set_random_seed(0)
        base = mlp_base(stream.input_shape, (100, 100))
        tasks = tasks_from_benchmark(stream, base, 32, 0)
        covered = base.trainable_variables
        estimator = create_estimator(method)
        estimator.build(covered)
        estimator.begin_task(covered)
        penalty = None
        if with_penalty and method != "none":
            penalty = ConsolidationPenalty(covered, ewc_lambda=1.0)
            rng = np.random.default_rng(0)
            penalty.consolidate([rng.random(v.shape).astype("float32") for v in covered])
        task = tasks[1] if with_penalty else tasks[0]
        trainer = task.make_trainer(keras.optimizers.Adam(1e-3), penalty, estimator, covered)
        dataset = task.training_dataset()
        trainer.fit(dataset, epochs=1, verbose=0, shuffle=False)  # trace and warm up
        trainers[method] = (trainer, dataset, estimator)
    return trainers


def time_epochs(trainer, dataset, epochs: int) -> float:
    start = time.perf_counter()
    trainer.fit(dataset, epochs=epochs, verbose=0, shuffle=False)
    return (time.perf_counter() - start) / epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _common.add_jit_flag(parser)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    _common.apply_jit(args)
    tf.get_logger().setLevel("ERROR")
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, "
          f"{os.cpu_count()} CPU cores, repeats {args.repeats} x {args.epochs} epochs")
    for label, with_penalty in (("tracking", False), ("tracking + penalty", True)):
        trainers = make_trainers(with_penalty)
        steps = int(trainers["none"][1].cardinality())
        times = {m: [] for m in METHODS}
        for _ in range(args.repeats):
            for method, (trainer, dataset, _) in trainers.items():
                times[method].append(time_epochs(trainer, dataset, args.epochs))
        base = statistics.median(times["none"])
        best_base = min(times["none"])
        print(f"\n{label}: {steps} steps per epoch")
        print(f"  {'method':<16} {'epoch ms':>9} {'step us':>8} {'vs none':>8} "
              f"{'best ms':>8} {'vs none':>8}  target <= 1.15x")
        for method in METHODS:
            t = statistics.median(times[method])
            best = min(times[method])
            ratio = t / base
            verdict = ("ok" if ratio <= 1.15 else "OVER") if method in TRACKERS else ""
            print(f"  {method:<16} {1e3 * t:9.1f} {1e6 * t / steps:8.1f} {ratio:7.2f}x "
                  f"{1e3 * best:8.1f} {best / best_base:7.2f}x  {verdict}")
        # The trackers measured something (the reference design's trackers measured zeros).
        for method in TRACKERS:
            estimator = trainers[method][2]
            total = sum(float(np.abs(c).sum()) for c in estimator.counts())
            assert total > 0, f"{method}: the tracker saw no change"


if __name__ == "__main__":
    main()
