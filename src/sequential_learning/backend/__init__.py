"""What cannot be written once in `keras.ops`: one module per Keras backend.

Keras splits its own trainers the same way (`keras/src/backend/{tensorflow,jax,torch}/trainer.py`).
Everything else in the package is backend-neutral; these few functions are the line:

* `value_and_grad(fn, variables)`: a scalar's gradients with respect to variables, inside the
  compiled train step or eagerly;
* `input_gradients(fn, inputs)`: gradients with respect to tensors (per-sample gradients,
  explanations);
* `train_step(trainer, *args)`: Keras's `train_step` for the backend (on JAX, stateless: every
  variable the step reads, the plugins' included, goes in and comes out of the step);
* `replicas()`: replicas in sync (a `tf.distribute` strategy's; 1 elsewhere).

The backend is Keras's (`KERAS_BACKEND`, or `seql --backend`); `select` checks that it is
installed before Keras is imported.

Example:
```python
from sequential_learning import backend

value, aux, grads = backend.ops().value_and_grad(lambda: (loss_fn(), {}), model.trainable_variables)
```
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from types import ModuleType

#: Keras backend names, with the install extra (and the module that must be importable).
BACKENDS = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}


def check_available(name: str) -> None:
    """Raises `SeqlError` (one line) unless `name` is a Keras backend installed here.

    Args:
        name: `tensorflow`, `jax` or `torch`.

    Returns:
        None.

    Example:
    ```python
    check_available("jax")   # SeqlError naming `pip install 'sequential-learning[jax]'` if absent
    ```
    """
    from sequential_learning.errors import SeqlError

    if name not in BACKENDS:
        raise SeqlError(f"unknown backend {name!r}; expected one of: {', '.join(BACKENDS)}")
    if importlib.util.find_spec(BACKENDS[name]) is None:
        raise SeqlError(
            f"backend {name!r} is not installed; install it with "
            f"pip install 'sequential-learning[{name}]'"
        )


def select(name: str | None) -> str:
    """Sets Keras's backend to `name` (None: `KERAS_BACKEND`, else TensorFlow) before Keras loads.

    Args:
        name: `tensorflow`, `jax`, `torch` or None.

    Returns:
        The backend that runs.

    Raises:
        SeqlError: the backend is unknown or not installed, or Keras already runs another.

    Example:
    ```python
    select("jax")        # then: import keras
    ```
    """
    from sequential_learning.errors import SeqlError

    wanted = name or os.environ.get("KERAS_BACKEND") or "tensorflow"
    check_available(wanted)
    if "keras" in sys.modules:
        running = sys.modules["keras"].backend.backend()
        if running != wanted:
            raise SeqlError(f"Keras already runs the {running!r} backend in this process; "
                            f"set KERAS_BACKEND={wanted} before importing it")
        return running
    os.environ["KERAS_BACKEND"] = wanted
    return wanted


def name() -> str:
    """The Keras backend this process runs (`tensorflow`, `jax` or `torch`).

    Returns:
        The backend's name.

    Example:
    ```python
    if name() == "tensorflow": ...
    ```
    """
    import keras

    return keras.backend.backend()


def ops() -> ModuleType:
    """The module of this process's backend (`sequential_learning.backend.<name>`).

    Returns:
        The module (imported on first use, so no other backend's framework loads).

    Example:
    ```python
    value, aux, grads = ops().value_and_grad(fn, variables)
    ```
    """
    return importlib.import_module(f"sequential_learning.backend.{name()}")


def is_tensorflow() -> bool:
    """Whether this process runs Keras on TensorFlow (where the native fast paths apply).

    Returns:
        True on TensorFlow.

    Example:
    ```python
    if is_tensorflow(): import tensorflow as tf
    ```
    """
    return name() == "tensorflow"


def replicas() -> int:
    """Replicas in sync: the `tf.distribute` strategy's on TensorFlow, 1 elsewhere.

    Returns:
        The number of replicas.

    Example:
    ```python
    share = loss / replicas()
    ```
    """
    return ops().replicas()
