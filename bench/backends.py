"""Whole-stream wall time and ACC of three workloads on every installed Keras backend.

Usage: python bench/backends.py [--backends tensorflow,jax,torch] [--limit N] [--runs 2]
       [--workloads finetune,ewc,replay] [--data-dir DIR] [--json FILE]

The workloads (issue 18): permuted Fashion-MNIST, 5 tasks x 1 epoch, MLP 784-400-400-10, batch
128, Adam 1e-3, every task evaluated after each task -- fine-tuning (`none`) and EWC (exact
Fisher on 1000 samples, lambda 300); and class-incremental split Fashion-MNIST with a 500-sample
reservoir buffer (`replay`, 1 epoch). Each backend runs in its own process (Keras's backend is
fixed per process); in that process each workload runs `--runs` times, so the first run includes
compilation and the second shows the steady state. Times are the manager's stream time
(`Results.timing["total_seconds"]`: training, evaluation, importance), not data loading.

Prints one table row per backend and workload: first-run and second-run seconds and ACC, and at
the end the JAX/TensorFlow ratio of the EWC stream's second run (target: at most 0.8 on the
2-core CPU) where both ran.

Fashion-MNIST is read from `--data-dir` or Debian's `dataset-fashion-mnist`
(/usr/share/datasets/fashion-mnist); where it is absent the script says so and stops.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time

WORKLOADS = {
    "finetune": dict(benchmark="permuted-fashion-mnist", method="none", epochs=1),
    "ewc": dict(benchmark="permuted-fashion-mnist", method="fisher", epochs=1,
                ewc_lambda=300.0, fisher_mode="exact", fisher_samples=1000),
    "replay": dict(benchmark="split-fashion-mnist", scenario="class", method="replay",
                   epochs=1, memory=500),
}


def _worker(args) -> int:
    """Runs the workloads in this process (its backend from KERAS_BACKEND); prints JSON lines."""
    import keras

    from sequential_learning.config import RunConfig
    from sequential_learning.data.benchmarks import make_benchmark
    from sequential_learning.manager import SequentialLearningManager
    from sequential_learning.models import mlp_base
    from sequential_learning.tasks import tasks_from_benchmark

    streams = {}
    for name in args.workloads.split(","):
        spec = dict(WORKLOADS[name])
        if args.data_dir:
            spec["data_dir"] = args.data_dir
        config = RunConfig(**spec).validate()
        key = (config.benchmark, config.scenario)
        if key not in streams:
            streams[key] = make_benchmark(config.benchmark, limit=args.limit,
                                          scenario=config.scenario, data_dir=config.data_dir)
        stream = streams[key]
        for run in range(args.runs):
            keras.utils.set_random_seed(config.seed)
            base = mlp_base(stream.input_shape, config.hidden)
            tasks = tasks_from_benchmark(stream, base, config.batch_size, config.seed)
            options = {"memory": config.memory} if config.method == "replay" else {}
            manager = SequentialLearningManager(
                base, tasks, method=config.method, ewc_lambda=float(config.ewc_lambda or 0.0),
                epochs=config.epochs, seed=config.seed, learning_rate=config.learning_rate,
                fisher_mode=config.fisher_mode, fisher_samples=config.fisher_samples,
                method_options=options,
            )
            start = time.perf_counter()
            results = manager.train_all()
            wall = time.perf_counter() - start
            print(json.dumps({"backend": keras.backend.backend(), "workload": name,
                              "run": run + 1, "seconds": round(wall, 3),
                              "stream_seconds": round(results.timing["total_seconds"], 3),
                              "evaluation_seconds": round(
                                  results.timing.get("evaluation_seconds", 0.0), 3),
                              "acc": round(float(results.metrics["acc"]), 4)}), flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="samples per split (smoke runs)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return _worker(args)
    folder = args.data_dir or "/usr/share/datasets/fashion-mnist"
    if not os.path.isdir(folder):
        print(f"skipped: no Fashion-MNIST in {folder} (give --data-dir)")
        return 0
    rows = []
    print(f"{'backend':<11} {'workload':<9} {'1st run s':>9} {'2nd run s':>9} {'ACC':>6}")
    for backend in args.backends.split(","):
        if importlib.util.find_spec(backend) is None:
            print(f"{backend:<11} not installed")
            continue
        command = [sys.executable, os.path.abspath(__file__), "--worker",
                   "--workloads", args.workloads, "--runs", str(args.runs)]
        if args.limit:
            command += ["--limit", str(args.limit)]
        if args.data_dir:
            command += ["--data-dir", args.data_dir]
        env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        found = [json.loads(line) for line in done.stdout.splitlines()
                 if line.startswith("{")]
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or ["?"])[-1]
            print(f"{backend:<11} failed: {tail}")
        rows += found
        for name in args.workloads.split(","):
            runs = [r for r in found if r["workload"] == name]
            if runs:
                second = f"{runs[1]['stream_seconds']:9.2f}" if len(runs) > 1 else f"{'-':>9}"
                print(f"{backend:<11} {name:<9} {runs[0]['stream_seconds']:9.2f} {second} "
                      f"{runs[-1]['acc']:6.3f}", flush=True)
    last = {(r["backend"], r["workload"]): r for r in rows}
    if ("jax", "ewc") in last and ("tensorflow", "ewc") in last:
        ratio = last[("jax", "ewc")]["stream_seconds"] / last[("tensorflow", "ewc")]["stream_seconds"]
        print(f"EWC stream, JAX / TensorFlow (last runs): {ratio:.2f}x (target <= 0.80): "
              f"{'met' if ratio <= 0.8 else 'NOT met'}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
