"""The optimizers a run makes: TensorFlow's fused kernels there, Keras's own elsewhere.

On TensorFlow `make_optimizer` returns `FusedAdam` / `FusedSGD` (Keras's Adam and SGD with the
per-variable update as one fused TensorFlow kernel, `sequential_learning.native.fused_optimizers`);
on JAX and PyTorch Keras's plain `Adam` / `SGD`, with the same formulas. `FusedAdam` and
`FusedSGD` are importable from here on TensorFlow; this module itself does not import TensorFlow.
"""

from __future__ import annotations

import keras

from sequential_learning import backend

__all__ = ["make_optimizer"]  # and, on TensorFlow, FusedAdam and FusedSGD (loaded on access)


def __getattr__(name: str):
    if name in ("FusedAdam", "FusedSGD"):
        from sequential_learning.native import fused_optimizers

        return getattr(fused_optimizers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """The optimizer called `name` (`"adam"` or `"sgd"`) at `learning_rate`.

    Fused on TensorFlow (`FusedAdam`, `FusedSGD`), Keras's `Adam` / `SGD` on other backends.

    Args:
        name: `"adam"` or `"sgd"` (any case).
        learning_rate: the learning rate.

    Returns:
        A fresh optimizer.

    Raises:
        ValueError: for another name.

    Example:
    ```python
    optimizer = make_optimizer("adam", 1e-3)
    ```
    """
    kind = str(name).lower()
    if kind not in ("adam", "sgd"):
        raise ValueError(f"Unknown optimizer {name!r}; expected 'adam' or 'sgd'")
    if backend.is_tensorflow():
        from sequential_learning.native.fused_optimizers import FusedAdam, FusedSGD

        return FusedAdam(learning_rate) if kind == "adam" else FusedSGD(learning_rate)
    return keras.optimizers.Adam(learning_rate) if kind == "adam" else keras.optimizers.SGD(
        learning_rate)
