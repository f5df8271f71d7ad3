"""JAX: `--strategy mirrored` is keras.distribution.DataParallel; over two host devices a run
gives the single device's numbers (the batch split evenly, the gradients all-reduced)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import keras
import pytest

pytestmark = [pytest.mark.all_backends, pytest.mark.slow,
              pytest.mark.skipif(keras.backend.backend() != "jax", reason="JAX only")]

_RUN = """
import json, sys
import jax
from sequential_learning.config import RunConfig
from sequential_learning.experiment import run_experiment
results = {}
for method in ("fisher", "replay"):
    config = RunConfig(benchmark="split-digits", method=method, epochs=2, hidden=[32],
                       strategy=sys.argv[1], memory=100)
    results[method] = run_experiment(config).metrics["acc"]
import keras
print(json.dumps({"devices": len(jax.devices()), "acc": results,
                  "distributed": keras.distribution.distribution() is not None}))
"""


def _run(strategy: str) -> dict:
    env = {**os.environ, "KERAS_BACKEND": "jax",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    done = subprocess.run([sys.executable, "-c", _RUN, strategy], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_mirrored_on_two_host_devices_gives_the_single_devices_numbers():
    split = _run("mirrored")
    single = _run("default")
    assert split["devices"] == 2 and split["distributed"] and not single["distributed"]
    for method, acc in single["acc"].items():
        assert abs(split["acc"][method] - acc) < 0.01, (method, split["acc"], single["acc"])
