"""The environment a run was made in: the Keras backend, its framework, Keras, NumPy, the device.

It is recorded in `environment.json` the first time a report is written (at the end of the run
when `run_experiment` writes it) and read back when the report is rebuilt.

Example:
```python
from sequential_learning.report.environment import environment_info
environment_info()["device"]   # 'NVIDIA H100 80GB HBM3' or 'CPU only (..., 8 cores)'
```
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
from pathlib import Path
from typing import Any

from sequential_learning.rundir import RunDir

#: The environment's file in a run or comparison folder (see `RunDir.environment_json`).
ENVIRONMENT_NAME = RunDir(".").environment_json.name
# The order keys are shown in; others follow (the list of GPUs is already in `device`).
_ORDER = ["backend", "device", "python", "tensorflow", "jax", "torch", "keras", "numpy",
          "sequential_learning", "platform", "cpu", "cpu_cores", "recorded", "note"]


def environment_info() -> dict[str, Any]:
    """Versions and device of the running process.

    Only the running backend's framework is imported (never TensorFlow under JAX or PyTorch).

    Returns:
        The Keras backend (`backend`: `tensorflow`, `jax` or `torch`), the version of its
        framework (under the framework's name), Keras, NumPy, Python and package versions, the
        platform, the device (GPUs by name, else the CPU and its cores), how the consolidation
        penalty runs (the fused native kernel or the backend's ops) and when this was recorded.

    Example:
    ```python
    environment_info()["backend"]      # 'jax'
    environment_info()["tensorflow"]   # '2.17.0' (on the TensorFlow backend)
    ```
    """
    import keras
    import numpy as np

    import sequential_learning

    name = keras.backend.backend()
    version, gpus, kernel = _framework(name)
    cpu = _cpu_name()
    cores = os.cpu_count()
    return {
        "backend": name,
        "python": platform.python_version(),
        name: version,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "sequential_learning": sequential_learning.__version__,
        "platform": platform.platform(),
        "device": ", ".join(gpus) if gpus else f"CPU only ({cpu}, {cores} cores)",
        "gpus": gpus,
        "cpu": cpu,
        "cpu_cores": cores,
        "penalty_kernel": kernel,
        "recorded": _dt.datetime.now().isoformat(timespec="seconds"),
    }


def _framework(name: str) -> tuple[str, list[str], str]:
    """(version, GPU names, penalty kernel status) of the backend `name`'s framework."""
    if name == "jax":
        import jax

        gpus = [str(getattr(d, "device_kind", d)) for d in jax.devices()
                if d.platform in ("gpu", "cuda", "rocm")]
        return jax.__version__, gpus, "keras.ops (the fused kernel is TensorFlow's)"
    if name == "torch":
        import torch

        gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        return torch.__version__, gpus, "keras.ops (the fused kernel is TensorFlow's)"
    import tensorflow as tf

    from sequential_learning import native

    gpus = []
    for device in tf.config.list_physical_devices("GPU"):
        try:
            details = tf.config.experimental.get_device_details(device)
        except Exception:  # details are best effort; the device name is enough
            details = {}
        gpus.append(details.get("device_name", device.name))
    return tf.__version__, gpus, native.status(decide=False)


def recorded_environment(directory: Path) -> dict[str, Any]:
    """The environment recorded in `directory/environment.json`, in the order a report shows it.

    Args:
        directory: a run or comparison folder.

    Returns:
        The recorded keys (without the list of GPUs); when the file is missing or unreadable,
        the running process's environment with a `note` saying so. A file written before
        backends could be chosen has no `backend`: it was TensorFlow.

    Example:
    ```python
    recorded_environment(Path("runs/x"))["tensorflow"]   # e.g. "2.18.0"
    ```
    """
    env = None
    path = RunDir(directory).environment_json
    if path.is_file():
        try:
            env = json.loads(path.read_bytes().decode("utf-8"))
        except (OSError, ValueError, RecursionError):  # unreadable: record it afresh
            env = None
    if not isinstance(env, dict):
        env = {**environment_info(), "note": "captured when this report was built, not with the run"}
    if "backend" not in env and "tensorflow" in env:
        env = {"backend": "tensorflow", **env}
    keys = [k for k in _ORDER if k in env] + [k for k in env if k not in _ORDER and k != "gpus"]
    return {k: env[k] for k in keys}


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"
