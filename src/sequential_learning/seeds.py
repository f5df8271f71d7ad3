"""Seeding a run: `keras.utils.set_random_seed`, without importing TensorFlow off TensorFlow.

Keras's `set_random_seed` seeds Python, NumPy, Keras's global `SeedGenerator`, PyTorch on the
torch backend, and TensorFlow whenever TensorFlow is installed, which imports it even under JAX or
PyTorch. `set_random_seed` here does the same on TensorFlow (Keras's own function: the numbers are
those of before) and everything but TensorFlow's seed on the other backends.

Keras also probes for TensorFlow elsewhere (`model.save` asks whether a value is a
`tf.TensorShape`, which imports TensorFlow when it is installed): `keep_tensorflow_unloaded` tells
Keras, on JAX and PyTorch, that TensorFlow is not there unless something imported it already;
`set_random_seed` calls it.

Example:
```python
set_random_seed(0)
base = mlp_base((64,))     # the same initial weights for the same seed
```
"""

from __future__ import annotations

import random
import sys

import keras
import numpy as np

from sequential_learning import backend


def set_random_seed(seed: int) -> None:
    """Seeds Python, NumPy and the Keras backend (TensorFlow is imported only on TensorFlow).

    Args:
        seed: the seed, an int.

    Returns:
        None.

    Raises:
        ValueError: `seed` is not an int.

    Example:
    ```python
    set_random_seed(3)
    keras.random.normal((2,))    # the same numbers after every set_random_seed(3)
    ```
    """
    if not isinstance(seed, int):
        raise ValueError(f"Expected the seed to be an int, got {seed!r}")
    if backend.is_tensorflow():
        keras.utils.set_random_seed(seed)
        return
    keep_tensorflow_unloaded()
    try:
        from keras.src.backend.common import global_state
        from keras.src.random import seed_generator
        from keras.src.utils.rng_utils import GLOBAL_RANDOM_SEED
    except ImportError:  # another Keras layout: its own function (it may import TensorFlow)
        keras.utils.set_random_seed(seed)
        return
    # What keras.utils.set_random_seed does, less `tf.random.set_seed`.
    global_state.set_global_attribute(GLOBAL_RANDOM_SEED, seed)
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - the legacy global generator, as Keras seeds it
    if backend.name() == "torch":
        import torch

        torch.manual_seed(seed)


def keep_tensorflow_unloaded() -> None:
    """Off TensorFlow, makes Keras's probes for TensorFlow answer "not installed".

    Keras checks `tensorflow.available` (a lazy module) before asking whether a value is one of
    TensorFlow's types, and that check imports TensorFlow whenever it is installed. On JAX and
    PyTorch, with TensorFlow not imported yet, the probe is set to "unavailable" (a user's own
    `tf.data` or `tf.*` use still imports it on demand). Nothing changes on TensorFlow.

    Returns:
        None.

    Example:
    ```python
    keep_tensorflow_unloaded()
    model.save("model.keras")    # no TensorFlow import under JAX
    ```
    """
    if backend.is_tensorflow() or "tensorflow" in sys.modules:
        return
    try:
        from keras.src.utils import module_utils
    except ImportError:
        return
    lazy = getattr(module_utils, "tensorflow", None)
    if lazy is not None and getattr(lazy, "module", None) is None:
        lazy._available = False
