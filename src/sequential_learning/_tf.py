"""Quiet TensorFlow import: silences the C++ start-up log unless asked for."""

from __future__ import annotations

import os


def quiet_tensorflow(verbose: bool = False) -> None:
    """Silences TensorFlow's start-up log noise (call before importing TensorFlow).

    Args:
        verbose: if True, leave TensorFlow's logging as the environment sets it.
    """
    if verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
