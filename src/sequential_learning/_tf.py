"""Quiet TensorFlow import: silences its C++ start-up log unless asked for."""

from __future__ import annotations

import contextlib
import os
import sys


def quiet_tensorflow(verbose: bool = False) -> None:
    """Imports TensorFlow with its start-up log noise silenced.

    `TF_CPP_MIN_LOG_LEVEL` does not reach the messages that TensorFlow's libraries print before
    their logging is initialised, so the import itself runs with file descriptor 2 (stderr)
    pointed at /dev/null; Python-level errors during the import are still raised.

    Args:
        verbose: if True, import TensorFlow with its log as the environment sets it.

    Returns:
        None (TensorFlow is then in `sys.modules`).

    Example:
    ```python
    quiet_tensorflow()
    import tensorflow as tf   # no start-up log
    ```
    """
    if verbose or "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    with _stderr_to_devnull():
        import tensorflow  # noqa: F401


@contextlib.contextmanager
def _stderr_to_devnull():
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
