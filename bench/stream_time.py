"""Wall time and ACC of the permuted Fashion-MNIST stream for `none` and `fisher`.

Usage: python bench/stream_time.py [--methods none,fisher] [--epochs 1] [--limit N]

The run of `seql run --benchmark permuted-fashion-mnist --method fisher --epochs 1`: 5 tasks,
MLP 784-400-400-10, batch 128, Adam 1e-3, every task evaluated after every epoch (here: after
each task), exact Fisher on 1000 samples. Target on the 2-core reference machine: fisher ACC at
least 0.80 in at most about 40 s (training + importance + evaluation, which is what `run`
reports; loading the data and building the stream are shown apart).

Prints, per method: the stream's total seconds and their split (training, evaluation,
importance), the process's CPU seconds over the same span (a busy machine stretches wall time
but not CPU time), the load average, and ACC / BWT.
"""

from __future__ import annotations

import argparse
import os
import time

import _common
import keras

from sequential_learning.config import RunConfig
from sequential_learning.data.benchmarks import make_benchmark
from sequential_learning.data.datasets import DataError
from sequential_learning.manager import SequentialLearningManager
from sequential_learning.models import mlp_base
from sequential_learning.tasks import tasks_from_benchmark


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _common.add_jit_flag(parser)
    parser.add_argument("--methods", default="none,fisher")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--limit", type=int, default=None, help="samples per split (smoke runs)")
    parser.add_argument("--benchmark", default="permuted-fashion-mnist")
    args = parser.parse_args()
    _common.apply_jit(args)
    print(_common.device_line())
    start = time.perf_counter()
    try:
        stream = make_benchmark(args.benchmark, limit=args.limit)
    except DataError as error:
        print(f"skipped: {' '.join(str(error).split())}")
        return 0
    print(f"data: {args.benchmark}, {len(stream)} tasks x {len(stream[0].x_train)} training "
          f"samples, loaded and built in {time.perf_counter() - start:.1f} s")
    print(f"{'method':<8} {'ACC':>6} {'BWT':>7} {'total s':>8} {'train s':>8} {'eval s':>7} "
          f"{'omega s':>8} {'cpu s':>7} {'load':>5}")
    for method in args.methods.split(","):
        config = RunConfig(benchmark=args.benchmark, method=method, epochs=args.epochs).validate()
        keras.utils.set_random_seed(config.seed)
        base = mlp_base(stream.input_shape, config.hidden)
        tasks = tasks_from_benchmark(stream, base, config.batch_size, config.seed)
        manager = SequentialLearningManager(
            base, tasks, method=config.method, ewc_lambda=float(config.ewc_lambda),
            epochs=config.epochs, seed=config.seed, learning_rate=config.learning_rate,
            fisher_mode=config.fisher_mode, fisher_samples=config.fisher_samples,
        )
        cpu = _cpu()
        results = manager.train_all()
        cpu = _cpu() - cpu
        timing = results.timing
        total = timing["total_seconds"]
        importance = sum(timing["importance_seconds"])
        evaluation = timing.get("evaluation_seconds", float("nan"))
        train = sum(timing["task_seconds"]) - importance - evaluation
        m = results.metrics
        print(f"{method:<8} {m['acc']:6.3f} {m['bwt']:7.3f} {total:8.1f} {train:8.1f} "
              f"{evaluation:7.1f} {importance:8.1f} {cpu:7.1f} {os.getloadavg()[0]:5.1f}")
        if method == "fisher":
            ok = m["acc"] >= 0.80 and total <= 40.0
            print(f"target (fisher ACC >= 0.80 in <= ~40 s): {'met' if ok else 'NOT met'} "
                  f"(lambda {config.ewc_lambda:g}, {config.fisher_mode} Fisher, "
                  f"{config.fisher_samples} samples)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
