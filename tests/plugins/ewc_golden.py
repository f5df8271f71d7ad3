"""Writes `ewc_family_before_seam.json`: the EWC family's accuracy matrices, for the plugin seam's
bit-identity test (`test_seam.py`).

The file in the repository was written by this script at commit 2867384 (the last commit
before the plugin seam), under `--deterministic`, on this project's 2-core machine (the `cores`
entry of its fingerprint was added by hand afterwards); `test_seam.py` runs the same
configurations through the seam and compares. Usage (from the repository root, with that commit's `src`):

    PYTHONPATH=<checkout of 2867384>/src python tests/plugins/ewc_golden.py OUT.json

On another fingerprint `test_seam.py` compares each method's final ACC within a tolerance, measured
with `--nudge SEED SCALE` (the same runs with every initial weight moved by a relative SCALE):

    python tests/plugins/ewc_golden.py OUT.json --nudge 3 1e-3
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


def nudge_initial_weights(seed: int, scale: float) -> None:
    """Multiplies every initial weight of each run's base by 1 + `scale` or 1 - `scale` (at
    random): rounding differences of the kind another processor or TensorFlow makes, to measure
    how far they carry (`test_seam.ACC_TOLERANCE`). Thread settings cannot show it: under op
    determinism they leave every number unchanged."""
    import numpy as np

    from sequential_learning import models

    rng = np.random.default_rng(seed)
    made = models.mlp_base

    def mlp_base(*args, **kwargs):
        base = made(*args, **kwargs)
        for variable in base.weights:
            value = np.asarray(variable.numpy())
            sign = np.where(rng.random(value.shape) < 0.5, -1.0, 1.0)
            variable.assign((value * (1.0 + scale * sign)).astype(value.dtype))
        return base

    models.mlp_base = mlp_base


if __name__ == "__main__":
    if len(sys.argv) > 2:  # ewc_golden.py OUT.json --nudge SEED SCALE
        nudge_initial_weights(int(sys.argv[3]), float(sys.argv[4]))
    with open(sys.argv[1], "w") as handle:
        json.dump({"fingerprint": fingerprint(), "matrices": matrices()}, handle, indent=1)
