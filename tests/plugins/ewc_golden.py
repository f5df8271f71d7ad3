"""Writes `ewc_family_before_seam.json`: the EWC family's accuracy matrices, for the plugin seam's
bit-identity test (`test_seam.py`).

The file in the repository was written by this script at commit 2867384 (the last commit
before the plugin seam), under `--deterministic`, on this project's 2-core machine (the `cores`
entry of its fingerprint was added by hand afterwards); `test_seam.py` runs the same
configurations through the seam and compares. Usage (from the repository root, with that commit's `src`):

    PYTHONPATH=<checkout of 2867384>/src python tests/plugins/ewc_golden.py OUT.json
"""

from __future__ import annotations

import json
import os
import platform
import sys

from sequential_learning._tf import quiet_tensorflow

quiet_tensorflow()

import tensorflow as tf  # noqa: E402

#: One of each kind: no plugin, data-free Ω, a step tracker, the closed-form Fisher, MAS, SI (its
#: own tracker and the online penalty), a seeded control. (All eleven were compared once by
#: hand, on three streams: identical.)
METHODS = ["none", "weight-decay", "momentum-based", "fisher", "mas", "si", "random"]
#: (benchmark, scenario, methods): a shared head (one trainer reused across tasks) for each
#: method, and a head per task (a trainer each) for the Fisher penalty.
RUNS = [("permuted-digits", "domain", METHODS), ("split-digits", "task", ["fisher"])]
SETTINGS = {"epochs": 1, "hidden": [16], "fisher_samples": 100, "num_tasks": 3, "seed": 3,
            "deterministic": True}


def fingerprint() -> dict:
    """What bit-identical floating point depends on: TensorFlow, the processor and the number of
    cores (TensorFlow splits reductions by thread)."""
    model = ""
    try:
        with open("/proc/cpuinfo") as handle:
            model = next((line.split(":", 1)[1].strip() for line in handle
                          if line.startswith("model name")), "")
    except OSError:
        pass
    return {"tensorflow": tf.__version__, "machine": platform.machine(), "cpu": model,
            "cores": os.cpu_count()}


def matrices() -> dict:
    """`{benchmark/scenario/method: accuracy matrix}` for every configuration of `RUNS`."""
    from sequential_learning.config import RunConfig, run_experiment

    tf.config.experimental.enable_op_determinism()
    out = {}
    for benchmark, scenario, methods in RUNS:
        for method in methods:
            config = RunConfig(benchmark=benchmark, scenario=scenario, method=method, **SETTINGS)
            out[f"{benchmark}/{scenario}/{method}"] = run_experiment(config).accuracy_matrix.tolist()
    return out


if __name__ == "__main__":
    with open(sys.argv[1], "w") as handle:
        json.dump({"fingerprint": fingerprint(), "matrices": matrices()}, handle, indent=1)
