"""The one exception type for failures a user can fix, and what the CLI does with it.

Every error the user can provoke (a bad option, a bad file, a run folder in the way, a diverged
run, a full disk) is a `SeqlError`, or one of its subclasses (`CheckpointError`, `DataError`,
`TrainingDivergedError`, `RunDirError`). `seql` catches it once and prints its message as one
line with exit status 2. It subclasses `ValueError`, so code that caught `ValueError` before
keeps working.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path


class SeqlError(ValueError):
    """A failure the user can fix; its message names what is wrong and what is expected.

    Example:
    ```python
    raise SeqlError("learning_rate: inf is not allowed; expected a finite number > 0")
    ```
    """


class RunDirError(SeqlError):
    """A run folder cannot be used as asked (it holds another run, or is a file)."""


def disk_error(error: OSError, path: str | os.PathLike, saved: str = "") -> SeqlError:
    """A `SeqlError` for an `OSError` met while writing `path` (disk full, no permission, ...).

    Args:
        error: the operating system's error.
        path: the file or folder being written.
        saved: what is already safely on disk, said after the error (e.g. "tasks 1-2 are saved
            in runs/x").

    Returns:
        The error to raise (`raise disk_error(e, path) from None`).

    Example:
    ```python
    try:
        path.write_text(text)
    except OSError as e:
        raise disk_error(e, path) from None
    ```
    """
    where = Path(error.filename) if getattr(error, "filename", None) else Path(path)
    text = f"cannot write {where}: {os_error_reason(error)}"
    return SeqlError(f"{text}; {saved}" if saved else text)


def os_error_reason(error: OSError) -> str:
    """What an `OSError` means, in a few words ("the disk is full", "permission denied").

    Args:
        error: the operating system's error.

    Returns:
        The words for its `errno` (disk full, quota exceeded, permission denied, read-only file
        system, a file in the way, a folder); else its `strerror`, else `str(error)`.

    Example:
    ```python
    os_error_reason(OSError(errno.ENOSPC, "No space left on device"))    # 'the disk is full'
    ```
    """
    return {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
            errno.EACCES: "permission denied", errno.EROFS: "the file system is read-only",
            errno.EEXIST: "a file is in the way", errno.ENOTDIR: "a file is in the way",
            errno.EISDIR: "it is a folder"}.get(error.errno, error.strerror or str(error))
