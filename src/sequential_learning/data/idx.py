"""Compatibility: the IDX reader and writer now live in `sequential_learning.data.formats.idx`.

Example:
```python
from sequential_learning.data.idx import read_idx   # same as data.formats.idx.read_idx
```
"""

from sequential_learning.data.errors import DataError
from sequential_learning.data.formats.idx import IDX_TYPES, MAX_IDX_BYTES, read_idx, write_idx

__all__ = ["DataError", "IDX_TYPES", "MAX_IDX_BYTES", "read_idx", "write_idx"]
