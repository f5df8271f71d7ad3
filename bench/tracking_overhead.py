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
(tracing excluded), methods interleaved block by block so that drifts of the machine's speed hit
them all alike. Printed: the median CPU time of this process per epoch (the work done; on a
shared machine the steadiest figure, and the one the verdict uses), the median wall-clock time,
and the best block's wall-clock time (other work only ever slows a block down). In the first
setting `weight-decay` does exactly what `none` does: its ratio shows the noise. Last, each
tracker's own cost per step is measured in isolation (a compiled loop of copy, update, track on
variables shaped like the model's, minus the same loop without tracking) and set against the
`none` step: the steadiest figure on a busy machine.

Usage:
    python bench/tracking_overhead.py [--repeats 15] [--epochs 2] [--threads N] [--jit-compile]
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


def tracker_cost(method: str | None, shapes, steps: int = 2000, repeats: int = 5) -> float:
    """CPU µs per step of a compiled loop that copies, updates and (with a method) tracks.

    The difference between a method and `None` is the tracker's own cost per training step,
    measured in isolation (no data, no model), which other work on the machine disturbs little.
    """
    rng = np.random.default_rng(0)
    variables = [keras.Variable(rng.standard_normal(s).astype("float32")) for s in shapes]
    estimator = None
    if method is not None:
        estimator = create_estimator(method)
        estimator.build(variables)
        estimator.begin_task(variables)

    @tf.function
    def loop(n):
        for _ in tf.range(n):
            old = [tf.identity(tf.convert_to_tensor(v)) for v in variables]
            grads = [tf.random.normal(v.shape) for v in variables]
            for v, g in zip(variables, grads):
                v.assign_sub(1e-3 * g)
            if estimator is not None:
                estimator.track_step(grads, old)

    loop(tf.constant(10))
    times = []
    for _ in range(repeats):
        start = time.process_time()
        loop(tf.constant(steps))
        times.append((time.process_time() - start) / steps * 1e6)
    return statistics.median(times)


def time_epochs(trainer, dataset, epochs: int) -> tuple[float, float]:
    """(wall-clock seconds, CPU seconds of this process) per epoch."""
    wall, cpu = time.perf_counter(), time.process_time()
    trainer.fit(dataset, epochs=epochs, verbose=0, shuffle=False)
    return (time.perf_counter() - wall) / epochs, (time.process_time() - cpu) / epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _common.add_jit_flag(parser)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0,
                        help="TensorFlow intra- and inter-op threads (default 0: TensorFlow's own)")
    args = parser.parse_args()
    _common.apply_jit(args)
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    tf.get_logger().setLevel("ERROR")
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, "
          f"{os.cpu_count()} CPU cores, repeats {args.repeats} x {args.epochs} epochs, "
          f"threads {args.threads or 'default'}, load average {os.getloadavg()[0]:.1f}")
    for label, with_penalty in (("tracking", False), ("tracking + penalty", True)):
        trainers = make_trainers(with_penalty)
        steps = int(trainers["none"][1].cardinality())
        wall = {m: [] for m in METHODS}
        cpu = {m: [] for m in METHODS}
        for _ in range(args.repeats):
            for method, (trainer, dataset, _) in trainers.items():
                w, c = time_epochs(trainer, dataset, args.epochs)
                wall[method].append(w)
                cpu[method].append(c)
        print(f"\n{label}: {steps} steps per epoch")
        print(f"  {'method':<16} {'CPU ms':>8} {'vs none':>8} {'wall ms':>8} {'vs none':>8} "
              f"{'best wall':>9} {'vs none':>8}  target <= 1.15x (CPU)")
        base_cpu, base_wall = statistics.median(cpu["none"]), statistics.median(wall["none"])
        best_base = min(wall["none"])
        for method in METHODS:
            c, w, b = statistics.median(cpu[method]), statistics.median(wall[method]), min(wall[method])
            ratio = c / base_cpu
            verdict = ("ok" if ratio <= 1.15 else "OVER") if method in TRACKERS else ""
            print(f"  {method:<16} {1e3 * c:8.1f} {ratio:7.2f}x {1e3 * w:8.1f} "
                  f"{w / base_wall:7.2f}x {1e3 * b:9.1f} {b / best_base:7.2f}x  {verdict}")
        # The trackers measured something (the reference design's trackers measured zeros).
        for method in TRACKERS:
            estimator = trainers[method][2]
            total = sum(float(np.abs(c).sum()) for c in estimator.counts())
            assert total > 0, f"{method}: the tracker saw no change"
    shapes = [tuple(v.shape) for v in trainers["none"][0].task_model.trainable_variables]
    step_us = 1e6 * base_cpu / steps
    bare = tracker_cost(None, shapes)
    print(f"\ntracker cost in isolation (compiled loop, CPU per step; a `none` training step "
          f"above: {step_us:.0f} us)")
    print(f"  {'method':<16} {'us/step':>8} {'overhead':>9}  target <= 1.15x")
    for method in TRACKERS:
        cost = max(tracker_cost(method, shapes) - bare, 0.0)
        ratio = 1.0 + cost / step_us
        print(f"  {method:<16} {cost:8.1f} {ratio:8.3f}x  {'ok' if ratio <= 1.15 else 'OVER'}")


if __name__ == "__main__":
    main()
