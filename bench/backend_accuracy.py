"""Every method's ACC on split-digits and permuted-digits on each Keras backend, against TensorFlow.

Usage: python bench/backend_accuracy.py [--backends tensorflow,jax,torch] [--methods a,b]
       [--benchmarks split-digits,permuted-digits] [--seeds 0,1,2] [--epochs N] [--json FILE]
       [--same-start]

Each backend runs in its own process with the run's defaults (`seql run --benchmark B --method
M --seed S`). Random streams differ between backends (initial weights, shuffles, buffers), so
the numbers cannot be equal, and one seed says little: on permuted-digits the same backend's ACC
moves by up to 0.06 from one seed to the next. So each cell is the mean over `--seeds`, shown
with the spread of the seeds on TensorFlow; issue 18's bar is every method's mean ACC within
0.03 of TensorFlow's. Prints the table, each backend's largest gap to TensorFlow, and the
methods over the bar.

`--same-start` takes the seed noise out: every backend starts from the same initial weights
(drawn with NumPy from the seed, Glorot-uniform kernels and zero biases) and sees the same batches
in the same order (the NumPy pipeline, `pipeline.ArrayBatches`, on TensorFlow too, instead of
`tf.data`'s shuffle). The backends then follow the same trajectory up to float rounding, so a gap
over a few thousandths points at the backend's code, not at a seed. (Buffers and other in-graph
random draws still use each backend's own generator.)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys

BENCHMARKS = ("split-digits", "permuted-digits")


def _methods() -> list[str]:
    import sequential_learning.plugins  # noqa: F401  (registers the built-in methods)
    from sequential_learning.plugins.registry import available_methods

    return [spec.name for spec in available_methods()]


def _same_start() -> None:
    """Every backend starts from NumPy-drawn weights and the NumPy batch order (see above)."""
    import numpy as np

    import sequential_learning.manager as manager_module
    import sequential_learning.pipeline as pipeline
    import sequential_learning.tasks as tasks_module

    original = manager_module.SequentialLearningManager.__init__

    def init(self, base, tasks, *args, seed=0, **kwargs):
        variables = {v.path: v for t in tasks for v in t.model.weights}
        rng = np.random.default_rng(seed)
        for path in sorted(variables):
            v = variables[path]
            if len(v.shape) >= 2:
                fan_in, fan_out = int(np.prod(v.shape[:-1])), int(v.shape[-1])
                limit = np.sqrt(6.0 / (fan_in + fan_out))
                v.assign(rng.uniform(-limit, limit, v.shape).astype("float32"))
            else:
                v.assign(np.zeros(v.shape, "float32"))
        original(self, base, tasks, *args, seed=seed, **kwargs)

    def numpy_batches(x, y, batch_size, seed, task_ids=None):
        return pipeline.ArrayBatches(x, y, batch_size, seed, task_ids)

    manager_module.SequentialLearningManager.__init__ = init
    pipeline.array_dataset = numpy_batches
    tasks_module.array_dataset = numpy_batches


def _worker(args) -> int:
    from sequential_learning.config import RunConfig
    from sequential_learning.experiment import run_experiment

    if args.same_start:
        _same_start()

    for benchmark in args.benchmarks.split(","):
        for method in args.methods.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                spec = {"benchmark": benchmark, "method": method, "seed": seed}
                if args.epochs:
                    spec["epochs"] = args.epochs
                try:
                    results = run_experiment(RunConfig(**spec))
                except ValueError as error:  # a method that refuses this benchmark's scenario
                    print(json.dumps({"benchmark": benchmark, "method": method, "seed": seed,
                                      "refused": str(error).splitlines()[0]}), flush=True)
                    continue
                print(json.dumps({"benchmark": benchmark, "method": method, "seed": seed,
                                  "acc": round(float(results.metrics["acc"]), 4)}), flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--methods", default=None)
    parser.add_argument("--benchmarks", default=",".join(BENCHMARKS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--json", default=None)
    parser.add_argument("--same-start", action="store_true",
                        help="the same initial weights and batch order on every backend")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return _worker(args)
    methods = args.methods or ",".join(_methods())
    table: dict[str, dict] = {}
    spread: dict[str, dict] = {}
    refused: set[str] = set()
    for backend in args.backends.split(","):
        if importlib.util.find_spec(backend) is None:
            print(f"{backend}: not installed")
            continue
        command = [sys.executable, os.path.abspath(__file__), "--worker", "--methods", methods,
                   "--benchmarks", args.benchmarks, "--seeds", args.seeds]
        if args.epochs:
            command += ["--epochs", str(args.epochs)]
        if args.same_start:
            command.append("--same-start")
        env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode != 0:
            print(f"{backend}: failed after {len(rows)} runs: "
                  f"{(done.stderr.strip().splitlines() or ['?'])[-1]}")
        runs: dict[tuple, list] = {}
        for r in rows:
            if "refused" in r:
                refused.add(f"{r['benchmark']} {r['method']}: {r['refused']}")
                continue
            runs.setdefault((r["benchmark"], r["method"]), []).append(r["acc"])
        table[backend] = {k: statistics.fmean(v) for k, v in runs.items()}
        spread[backend] = {k: (max(v) - min(v)) for k, v in runs.items()}
        print(f"{backend}: {len(rows)} runs done", flush=True)
    backends = list(table)
    if args.same_start:
        print("same initial weights and batch order on every backend (--same-start)")
    print(f"mean ACC over seeds {args.seeds}; spread: max - min over the seeds on TensorFlow")
    print(f"{'benchmark':<16} {'method':<18} " + " ".join(f"{b:>10}" for b in backends)
          + f" {'spread':>8}")
    over = []
    for benchmark in args.benchmarks.split(","):
        for method in methods.split(","):
            key = (benchmark, method)
            cells = [table[b].get(key) for b in backends]
            seeds_apart = spread.get("tensorflow", {}).get(key)
            print(f"{benchmark:<16} {method:<18} " + " ".join(
                f"{c:10.3f}" if c is not None else f"{'-':>10}" for c in cells)
                + (f" {seeds_apart:8.3f}" if seeds_apart is not None else f" {'-':>8}"))
            reference = table.get("tensorflow", {}).get(key)
            for b in backends:
                value = table[b].get(key)
                if b != "tensorflow" and reference is not None and value is not None \
                        and abs(value - reference) > 0.03:
                    over.append(f"{b} {benchmark} {method}: {value:.3f} vs {reference:.3f}")
    for b in backends:
        if b == "tensorflow" or "tensorflow" not in table:
            continue
        gaps = [abs(table[b][k] - table["tensorflow"][k]) for k in table[b]
                if k in table["tensorflow"]]
        if gaps:
            print(f"{b}: largest |ACC - TensorFlow's| = {max(gaps):.3f} over {len(gaps)} runs")
    print("over 0.03: " + ("none" if not over else "; ".join(over)))
    for line in sorted(refused):
        print(f"refused: {line}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({b: {f"{k[0]}/{k[1]}": v for k, v in t.items()} for b, t in table.items()},
                      handle, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
