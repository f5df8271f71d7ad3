"""The errors of the data package: `DataError` and `DatasetNotFoundError`.

Example:
```python
try:
    load_dataset("cifar10")
except DatasetNotFoundError as error:
    print(error.searched)        # every place looked in
```
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sequential_learning.errors import SeqlError

__all__ = ["DataError", "DatasetNotFoundError"]


class DataError(SeqlError):
    """A data set is missing, malformed or inconsistent.

    The message names the file (or array key, or split) at fault and, for a missing data set,
    every place that was looked in and how to get the data.
    """



class DatasetNotFoundError(DataError):
    """A data set is not on disk in any of the places looked in.

    Args:
        message: the error's one line (what is missing, where it was looked for, how to get it).
        searched: the paths looked in, in order.

    Example:
    ```python
    raise DatasetNotFoundError("Fashion-MNIST not found", [Path("/usr/share/datasets")])
    ```

    Attributes:
        searched: the paths looked in, in order.
    """

    def __init__(self, message: str, searched: Sequence[Path]):
        super().__init__(message)
        self.searched = list(searched)

