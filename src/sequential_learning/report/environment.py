"""The environment a run was made in: Python, TensorFlow, Keras, NumPy, the device, the penalty.

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
_ORDER = ["device", "python", "tensorflow", "keras", "numpy", "sequential_learning", "platform",
          "cpu", "cpu_cores", "recorded", "note"]


def environment_info() -> dict[str, Any]:
    """Versions and device of the running process.

    Returns:
        Python, TensorFlow, Keras, NumPy and package versions, the platform, the device (GPUs by
        name, else the CPU and its cores), how the consolidation penalty runs (the fused native
        kernel or TensorFlow's ops) and when this was recorded.

    Example:
    ```python
    environment_info()["tensorflow"]   # '2.17.0'
    ```
    """
    import keras
    import numpy as np
    import tensorflow as tf

    import sequential_learning
    from sequential_learning import native

    gpus = []
    for device in tf.config.list_physical_devices("GPU"):
        try:
            details = tf.config.experimental.get_device_details(device)
        except Exception:  # details are best effort; the device name is enough
            details = {}
        gpus.append(details.get("device_name", device.name))
    cpu = _cpu_name()
    cores = os.cpu_count()
    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "sequential_learning": sequential_learning.__version__,
        "platform": platform.platform(),
        "device": ", ".join(gpus) if gpus else f"CPU only ({cpu}, {cores} cores)",
        "gpus": gpus,
        "cpu": cpu,
        "cpu_cores": cores,
        "penalty_kernel": native.status(decide=False),
        "recorded": _dt.datetime.now().isoformat(timespec="seconds"),
    }


def recorded_environment(directory: Path) -> dict[str, Any]:
    """The environment recorded in `directory/environment.json`, in the order a report shows it.

    Args:
        directory: a run or comparison folder.

    Returns:
        The recorded keys (without the list of GPUs); when the file is missing or unreadable,
        the running process's environment with a `note` saying so.

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
