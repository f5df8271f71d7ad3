"""What every data-set loader shares: the Keras cache folder, the `limit` check, and the error that
lists every place looked in when a data set is missing (`data.datasets`, `data.cifar`).

Example:
```python
looked = [(keras_datasets_dir() / "mnist.npz", "Keras cache: does not exist")]
raise not_found("MNIST", looked, "To get it: ...")
```
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from sequential_learning.data.errors import DataError, DatasetNotFoundError


def keras_datasets_dir() -> Path:
    """The Keras cache's data-set folder: ``$KERAS_HOME/datasets``, else ``~/.keras/datasets``.

    Returns:
        The folder's path (it need not exist).
    """
    home = os.environ.get("KERAS_HOME")
    base = Path(home).expanduser() if home else Path.home() / ".keras"
    return base / "datasets"


def check_limit(limit: int | None) -> int | None:
    """A loader's `limit` checked: a positive integer, or None for every sample.

    Args:
        limit: the samples to keep of each split, or None.

    Returns:
        `limit` as a Python int, or None.

    Raises:
        DataError: `limit` is not a positive integer (bools are refused).

    Example:
    ```python
    check_limit(np.int64(5)), check_limit(None)    # (5, None)
    ```
    """
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int | np.integer) or limit < 1:
        raise DataError(f"limit: {limit!r} is not allowed; expected a positive integer or None.")
    return int(limit)


def describe_path(path: Path) -> str:
    """Whether `path` exists, in words, for the list of places looked in.

    Args:
        path: a file or folder.

    Returns:
        "exists" or "does not exist".
    """
    return "exists" if path.exists() else "does not exist"


def not_found(what: str, looked: list[tuple[Path, str]], how: str) -> DatasetNotFoundError:
    """The error for a data set found nowhere: every place looked in, then how to get it.

    Args:
        what: the data set's name ("Fashion-MNIST").
        looked: `(path, note)` for every place looked in, in order.
        how: the last line: how to get the data.

    Returns:
        The `DatasetNotFoundError` to raise (its `searched` are the places looked in).
    """
    lines = [f"{what} not found. Looked in:"]
    lines += [f"  - {path}: {note}" for path, note in looked]
    lines.append(how)
    return DatasetNotFoundError("\n".join(lines), [path for path, _ in looked])
