"""Checks of a plugin's checkpointed state before `load_state` assigns any of it.

A checkpoint's plugin state is NumPy arrays read back from disk; a changed or foreign file could
hold a missing key, an array of another shape or dtype, a non-finite value, or a counter out of
range (a buffer's `filled` larger than its capacity). Assigned as it is, such a value fails later,
inside the compiled step, as a `KeyError`, `TypeError` or TensorFlow's `InvalidArgumentError`.
`state_array` checks one value and raises a one-line `CheckpointError` naming the plugin, the
key and what was expected; a `load_state` checks every key first and assigns only then, so a bad
state leaves the plugin as it was.

Example:
```python
def load_state(self, state):
    filled = state_array("replay", state, "filled", (), "int", low=0, high=self.capacity)
    self.filled.assign(filled)
```
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sequential_learning.checkpoint import CheckpointError

#: The dtype kinds `state_array` accepts, with the words its messages use.
_KINDS = {"float": ("f", "a float array"), "int": ("iu", "an integer array"),
          "bool": ("b", "a boolean array")}


def kind_of(dtype: Any) -> str:
    """The kind `state_array` expects for a variable of `dtype`: `float`, `int` or `bool`.

    Args:
        dtype: a TensorFlow or NumPy dtype, or a dtype name (`"float32"`, `"int64"`, ...) as Keras
            variables give it.

    Returns:
        `"bool"` for booleans, `"int"` for signed and unsigned integers, `"float"` for anything
        else.

    Example:
    ```python
    kind_of("int64"), kind_of("float32"), kind_of(np.bool_)    # ('int', 'float', 'bool')
    ```
    """
    name = getattr(dtype, "name", dtype)
    np_dtype = np.dtype(getattr(dtype, "as_numpy_dtype", name))
    if np_dtype.kind == "b":
        return "bool"
    return "int" if np_dtype.kind in "iu" else "float"


def state_array(owner: str, state: Mapping[str, Any], key: str, shape: Sequence[int],
                kind: str = "float", low: float | None = None, high: float | None = None,
                what: str = "") -> np.ndarray:
    """`state[key]` as a NumPy array, checked against what `owner` saved under `key`.

    Args:
        owner: the plugin (or part of one) whose state it is, named in the message.
        state: the state `load_state` was given.
        key: the key to read.
        shape: the shape it must have.
        kind: `float` (every value finite), `int` or `bool`.
        low: the smallest value allowed, or None.
        high: the largest value allowed, or None.
        what: what the bounds are, said in the message (e.g. "the buffer's capacity").

    Returns:
        The array, unchanged.

    Raises:
        CheckpointError: the key is missing, or its value has another shape or dtype kind, is
            not finite, or lies outside `low..high`.

    Example:
    ```python
    omega = state_array("si", state, "omega_0", (784, 100))
    ```
    """
    shape = tuple(int(d) for d in shape)
    letters, kind_words = _KINDS[kind]
    expected = f"{kind_words} of shape {shape}"
    prefix = f"{owner}: checkpointed state"
    if key not in state:
        present = ", ".join(sorted(state)[:8]) or "no keys"
        raise CheckpointError(f"{prefix} has no {key!r} (it holds {present}); expected "
                              f"{expected}")
    try:
        value = np.asarray(state[key])
    except Exception as error:  # noqa: BLE001 - anything that is not array-like
        raise CheckpointError(f"{prefix} {key!r} is not an array ({error}); expected "
                              f"{expected}") from None
    if value.dtype.kind not in letters:
        raise CheckpointError(f"{prefix} {key!r} has dtype {value.dtype}; expected {expected}")
    if value.shape != shape:
        raise CheckpointError(f"{prefix} {key!r} has shape {value.shape}; expected {expected}")
    if kind == "float" and value.size and not np.all(np.isfinite(value)):
        raise CheckpointError(f"{prefix} {key!r} has non-finite values; expected finite "
                              f"{kind_words[2:]} of shape {shape}")
    if value.size and (low is not None or high is not None):
        smallest, largest = value.min(), value.max()
        if (low is not None and smallest < low) or (high is not None and largest > high):
            bounds = (f"{_number(low)}..{_number(high)}" if low is not None and high is not None
                      else f">= {_number(low)}" if low is not None else f"<= {_number(high)}")
            found = (_number(smallest) if value.size == 1
                     else f"in {_number(smallest)}..{_number(largest)}")
            note = f" ({what})" if what else ""
            raise CheckpointError(f"{prefix} {key!r} is {found}; expected values {bounds}{note}")
    return value


def _number(value: Any) -> str:
    """A bound or value for a message: an integer without a trailing `.0`."""
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e18 else f"{value:g}"
