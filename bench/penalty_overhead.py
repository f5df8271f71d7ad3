"""Epoch time with the consolidation penalty after 1, 5 and 10 tasks, against no penalty.

Usage: python bench/penalty_overhead.py [--samples 20000] [--batch-size 128] [--rounds 15]
       [--steps-per-execution 8] [--keras-adam] [--jit-compile] [--no-tf-ops]

Both configurations train as the library's tasks do: `FusedAdam` (the manager's "adam") and
8 steps per compiled call; `--keras-adam` and `--steps-per-execution 1` give Keras's own Adam
and one step per call. The penalty runs as the library runs it (the fused native kernel where it
can be built, see `sequential_learning.native`) and, for comparison, as TensorFlow's own ops
(`SEQL_NATIVE=0`); `--no-tf-ops` skips the latter.

Target: at most 1.10x the epoch time of `none`, and flat in the number of tasks (the per-task
terms are folded into one importance and one anchor per variable).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import _common  # noqa: F401  (quiet TensorFlow first)
import keras
import numpy as np

from sequential_learning import native
from sequential_learning.importance.penalty import ConsolidationPenalty
from sequential_learning.optimizers import FusedAdam
from sequential_learning.training import ConsolidationTrainer


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps-per-execution", type=int, default=8)
    parser.add_argument("--keras-adam", action="store_true",
                        help="Keras's own Adam instead of FusedAdam")
    parser.add_argument("--jit-compile", action="store_true")
    parser.add_argument("--no-tf-ops", action="store_true",
                        help="skip the comparison with the penalty as TensorFlow's own ops")
    args = parser.parse_args()
    print(_common.device_line())
    base, model, x, y, data = _common.mlp_and_data(args.samples, args.batch_size)
    rng = np.random.default_rng(1)
    covered = base.trainable_variables

    def trainer_for(penalty):
        trainer = ConsolidationTrainer(model, penalty, None, covered)
        optimizer = keras.optimizers.Adam(1e-3) if args.keras_adam else FusedAdam(1e-3)
        trainer.compile(optimizer=optimizer,
                        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                        metrics=["accuracy"], jit_compile=args.jit_compile,
                        steps_per_execution=args.steps_per_execution)
        return trainer

    # The penalty's path is chosen when the step is traced (the warm-up fit below), so each
    # path's trainers are traced under its own setting.
    paths = {"library": native.status()}
    if not args.no_tf_ops and native.penalty_kernel() is not None:
        paths["TF ops"] = "TensorFlow ops (SEQL_NATIVE=0)"
    configs = {"none": trainer_for(None)}
    configs["none"].fit(data, epochs=1, verbose=0)
    for path in paths:
        if path == "TF ops":
            os.environ["SEQL_NATIVE"] = "0"
            native.reset()
        for tasks in (1, 5, 10):
            penalty = ConsolidationPenalty(covered, ewc_lambda=100.0)
            for _ in range(tasks):
                penalty.consolidate([rng.random(v.shape).astype("float32") for v in covered])
            configs[path, tasks] = trainer_for(penalty)
            configs[path, tasks].fit(data, epochs=1, verbose=0)  # trace and warm up
    # Interleaved rounds, so that drift in machine load hits every configuration alike; each
    # round's ratio pairs a configuration with the `none` epoch run just before it.
    times = {k: [] for k in configs}
    cpu_times = {k: [] for k in configs}
    for _ in range(args.rounds):
        for key, trainer in configs.items():
            start, cpu = time.perf_counter(), time.process_time()
            trainer.fit(data, epochs=1, verbose=0)
            times[key].append(time.perf_counter() - start)
            cpu_times[key].append(time.process_time() - cpu)
    t_none = statistics.median(times["none"])
    print(f"MLP 784-400-400-10, {args.samples} samples, batch {args.batch_size}, "
          f"{'Keras Adam' if args.keras_adam else 'FusedAdam'}, steps_per_execution "
          f"{args.steps_per_execution}, {args.rounds} interleaved rounds (median; ratio = "
          "median of per-round ratios)")
    print(f"  none                      {t_none:6.3f} s/epoch")
    for path, how in paths.items():
        print(f"  penalty as {how}:")
        for tasks in (1, 5, 10):
            key = (path, tasks)
            t = statistics.median(times[key])
            ratios = sorted(a / b for a, b in zip(times[key], times["none"]))
            quartiles = statistics.quantiles(ratios, n=4)
            cpu = statistics.median(cpu_times[key]) / statistics.median(cpu_times["none"])
            fastest = min(times[key]) / min(times["none"])
            state = configs[key].penalty
            print(f"    after {tasks:2d} task(s)  {t:6.3f} s/epoch  "
                  f"({statistics.median(ratios):.3f}x none, quartiles {quartiles[0]:.3f}-"
                  f"{quartiles[2]:.3f}; fastest epochs {fastest:.3f}x; CPU time {cpu:.3f}x; "
                  f"state: {len(state.importance)} importance + "
                  f"{len(state.anchor)} anchor tensors)")


if __name__ == "__main__":
    main()
