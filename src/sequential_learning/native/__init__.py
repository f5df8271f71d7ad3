"""Native TensorFlow kernels, compiled once per machine with the system's C++ compiler.

One kernel so far: the consolidation penalty's per-step work (`penalty_kernel.cc`), which adds
λ Ω (θ − θ̄) to the task gradients and sums λ/2 Σ Ω (θ − θ̄)² in one pass over the parameters,
where TensorFlow's own ops take five. The penalty's share of a step is memory traffic, so this
is what keeps a penalised epoch close to a plain one (`bench/penalty_overhead.py`).

The source ships with the package. On first use it is compiled with the flags that
`tf.sysconfig` gives, into `$SEQL_CACHE_DIR` (default `$XDG_CACHE_HOME/sequential_learning`, else
`~/.cache/sequential_learning`), under a name that hashes the source, TensorFlow's version and
flags and the compiler; later processes load the cached library. Where that cannot happen (no
compiler, a failed build or load, `SEQL_NATIVE=0`, or a GPU or TPU visible, since the kernel is
CPU-only), `penalty_kernel()` returns None and the library uses TensorFlow's ops, with the same
results to float32 rounding. `status()` says which.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable
from pathlib import Path

SOURCE = Path(__file__).with_name("penalty_kernel.cc")
COMPILE_FLAGS = ("-O3", "-fopenmp-simd", "-w", "-shared", "-fPIC")
_lock = threading.Lock()
_state: dict[str, object] = {}


def enabled() -> bool:
    """Whether native kernels may be used (`SEQL_NATIVE` is not 0, false, no or off)."""
    return os.environ.get("SEQL_NATIVE", "1").strip().lower() not in ("0", "false", "no", "off")


def cache_dir() -> Path:
    """Where compiled kernels are kept (see the module's docstring)."""
    if os.environ.get("SEQL_CACHE_DIR"):
        return Path(os.environ["SEQL_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sequential_learning"


def compiler() -> str | None:
    """The C++ compiler: `$CXX`, else the first of g++, c++ and clang++ on the PATH."""
    if os.environ.get("CXX"):
        return shutil.which(os.environ["CXX"])
    for name in ("g++", "c++", "clang++"):
        found = shutil.which(name)
        if found:
            return found
    return None


def penalty_kernel() -> Callable | None:
    """The fused penalty op, or None where TensorFlow's ops must do (see `status()`).

    Returns:
        `op(gradient, value, anchor, root, scale) -> (summed, penalty)` with
        `summed = gradient + scale * root² (value − anchor)` and
        `penalty = ½ Σ (root (value − anchor))²`, float32 tensors of one shape on the CPU.

    Example:
    ```python
    op = native.penalty_kernel()
    if op is not None:
        summed, value = op(grad, tf.convert_to_tensor(var), anchor, root, 1.0)
    ```
    """
    with _lock:
        if "op" not in _state:
            _state["op"], _state["status"] = _load()
        return _state["op"]


def status(decide: bool = True) -> str:
    """One line: whether the fused penalty kernel is in use, and if not, why not.

    Args:
        decide: build or load the kernel now if that has not been decided yet; with False,
            say "not used in this process" instead (a run without a penalty never needs it).
    """
    if not decide and "status" not in _state:
        return "not used in this process"
    penalty_kernel()
    return str(_state["status"])


def reset() -> None:
    """Forgets the loaded state, so the next call decides again (the environment may differ).

    A library already loaded into this process stays loaded; TensorFlow cannot unload it.
    """
    with _lock:
        _state.pop("op", None)
        _state.pop("status", None)


def _load() -> tuple[Callable | None, str]:
    if not enabled():
        return None, "TensorFlow ops (SEQL_NATIVE=0)"
    import tensorflow as tf

    # Physical devices first: listing logical ones starts TensorFlow's runtime, after which
    # virtual devices can no longer be configured. Logical ones decide only where a GPU or TPU
    # exists (it may be hidden with tf.config.set_visible_devices).
    kinds = [k for k in ("GPU", "TPU") if tf.config.list_physical_devices(k)]
    if any(tf.config.list_logical_devices(k) for k in kinds):
        return None, "TensorFlow ops (the fused kernel is CPU-only and an accelerator is visible)"
    cxx = compiler()
    if cxx is None:
        return None, "TensorFlow ops (no C++ compiler found; set CXX or install g++)"
    if "library" in _state:  # loaded earlier in this process, before a reset()
        return _state["library"].seql_penalty_add_to_gradient, f"fused kernel {_state['path']}"
    try:
        path = _build(cxx, tf)
        library = tf.load_op_library(str(path))
    except Exception as err:  # a failed build or load must never stop training
        first = str(err).strip().splitlines()[:3]
        warnings.warn(
            "sequential_learning: the fused penalty kernel could not be built or loaded, so the "
            f"penalty uses TensorFlow's ops (same results, slower): {' '.join(first)}",
            RuntimeWarning,
            stacklevel=3,
        )
        return None, f"TensorFlow ops (the fused kernel failed: {' '.join(first)[:200]})"
    _state["library"], _state["path"] = library, path
    return library.seql_penalty_add_to_gradient, f"fused kernel {path}"


def _build(cxx: str, tf) -> Path:
    """Compiles the kernel unless a library for this source, TensorFlow and compiler exists."""
    flags = [*COMPILE_FLAGS, *tf.sysconfig.get_compile_flags()]
    link = list(tf.sysconfig.get_link_flags())
    version = subprocess.run(
        [cxx, "--version"], capture_output=True, text=True, timeout=60
    ).stdout.splitlines()[:1]
    key = hashlib.sha256(
        "\n".join(
            [SOURCE.read_text(), tf.__version__, sys.platform, cxx, *version, *flags, *link]
        ).encode()
    ).hexdigest()[:16]
    target = cache_dir() / f"penalty_kernel-{key}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Built beside its final name, then renamed: a concurrent process (a second worker, say)
    # sees either no library or a whole one.
    fd, tmp = tempfile.mkstemp(prefix=f"{target.stem}.building-", suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        done = subprocess.run(
            [cxx, *flags, str(SOURCE), "-o", tmp, *link],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{cxx} exited with status {done.returncode}: {done.stderr[-2000:]}")
        os.chmod(tmp, 0o755)  # mkstemp made it private; a shared cache is read by others too
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target
