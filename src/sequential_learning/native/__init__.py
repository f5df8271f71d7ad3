"""Native TensorFlow kernels, compiled once per machine with the system's C++ compiler.

TensorFlow only: nothing here imports TensorFlow before it is asked for a kernel, and under
another Keras backend `penalty_kernel()` is None without importing it (the penalty then runs in
`keras.ops`). `fused_optimizers` holds the fused Adam and SGD, TensorFlow's too.

One kernel so far: the consolidation penalty's per-step work (`penalty_kernel.cc`), which adds
λ Ω (θ − θ̄) to the task gradients and sums λ/2 Σ Ω (θ − θ̄)² in one pass over the parameters,
where TensorFlow's own ops take five. The penalty's share of a step is memory traffic, so this
is what keeps a penalised epoch close to a plain one (`bench/penalty_overhead.py`).

The source ships with the package. On first use it is compiled with the flags that
`tf.sysconfig` gives, in a fresh private temporary folder, and the library is copied into the
cache folder `$SEQL_CACHE_DIR` (default `$XDG_CACHE_HOME/sequential_learning`, else
`~/.cache/sequential_learning`) under a name that hashes the source, TensorFlow's version and
flags and the compiler; later processes load the cached library. Where that cannot happen (no
compiler, a failed build or load, `SEQL_NATIVE=0`, or a GPU or TPU visible, since the kernel is
CPU-only), `penalty_kernel()` returns None and the library uses TensorFlow's ops, with the same
results to float32 rounding. `status()` says which.

Loading a library runs its code, so the cache only ever loads what this package built:

- The cache folder is private: created with mode 0700, and an existing one is used only when it
  belongs to the current user and neither its group nor others may write to it. Otherwise the
  penalty uses TensorFlow's ops with a warning naming the folder, rather than a silent fresh
  folder each run: that would recompile the kernel (seconds) in every process without saying
  why, and the warning tells the user the one-line fix (`chmod 700` the folder, or point
  `SEQL_CACHE_DIR` elsewhere).
- Beside each library `penalty_kernel-<key>.so` the build writes `penalty_kernel-<key>.json`, a
  manifest holding the library's SHA-256, the key and the source's SHA-256. It is written after
  the library, and both go to a temporary name in the folder first and are renamed into place,
  so no process sees half of either.
- On load, the library is opened once (not through a symbolic link, owned by the user, writable
  by no one else), its bytes are hashed, and only when the hash, key and source hash match the
  manifest is that same open file handed to `tf.load_op_library` (as `/proc/self/fd/<n>` on
  Linux, so a file swapped in after the check is never the one loaded). A library without a
  manifest, with a manifest that does not match, or planted under the expected name is never
  loaded: it is rebuilt and replaced, under a lock on the folder so that concurrent processes
  build it once.
- The manifest is itself just a file, so it is only worth something because the folder is
  private: anyone who can write to the folder could write a matching manifest beside their own
  library. In a folder that only the user can write, a manifest could only have been written by
  the user's own processes, which is why a folder that others can write is refused outright
  rather than checked file by file.

Any failure on the way (the folder, the compiler, the hash, `tf.load_op_library`, an op missing
from what it loaded) gives one `RuntimeWarning` naming it and TensorFlow's ops, never an error
out of the run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

SOURCE = Path(__file__).with_name("penalty_kernel.cc")
COMPILE_FLAGS = ("-O3", "-fopenmp-simd", "-w", "-shared", "-fPIC")
OP_NAME = "seql_penalty_add_to_gradient"
MANIFEST_FORMAT = 1
_lock = threading.Lock()
_state: dict[str, object] = {}
# Libraries loaded into this process, by SHA-256: loading the same bytes again returns these.
_loaded: dict[str, object] = {}
# The first loaded library that registers the op. TensorFlow refuses a kernel registered twice
# ("Multiple OpKernel registrations" at the op's first use), and two builds of the one source
# differ in their bytes (another folder, another compiler), so once the op is registered every
# later build is verified and cached but not loaded: this library serves.
_kernel: object | None = None
# Descriptors handed to tf.load_op_library as /proc/self/fd/<n>, kept open for the process's
# life: the dynamic loader and TensorFlow both remember a library by that name, so the number
# must never come back for another file.
_held: list[int] = []


class _NotUsable(RuntimeError):
    """Why the fused kernel cannot be used; its message becomes the warning's reason."""


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

    Returns:
        "fused kernel <path>", or "TensorFlow ops (<why>)".

    Example:
    ```python
    print(status())   # e.g. "fused kernel ~/.cache/sequential_learning/..." or "TensorFlow ops (...)"
    ```
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
    from sequential_learning import backend

    if not backend.is_tensorflow():  # never import TensorFlow under another backend
        return None, (f"keras.ops (the {backend.name()} backend; the fused kernel is "
                      "TensorFlow's)")
    if not enabled():
        return None, "TensorFlow ops (SEQL_NATIVE=0)"
    if os.name != "posix":
        return None, "TensorFlow ops (the fused kernel is built on POSIX systems only)"
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
        return getattr(_state["library"], OP_NAME), f"fused kernel {_state['path']}"
    try:
        library, path = _load_verified(cxx, tf)
        op = getattr(library, OP_NAME, None)
        if op is None:
            raise _NotUsable(f"{path} loaded but has no op {OP_NAME}")
    except Exception as err:  # a failed build or load must never stop training
        first = " ".join(str(err).strip().splitlines()[:3]) or type(err).__name__
        warnings.warn(
            "sequential_learning: the fused penalty kernel could not be built or loaded, so the "
            f"penalty uses TensorFlow's ops (same results, slower): {first}",
            RuntimeWarning,
            stacklevel=3,
        )
        return None, f"TensorFlow ops (the fused kernel failed: {first[:200]})"
    _state["library"], _state["path"] = library, path
    return op, f"fused kernel {path}"


def _load_verified(cxx: str, tf) -> tuple[object, Path]:
    """Builds the kernel if need be and loads the library its manifest vouches for."""
    global _kernel
    fd, digest, path = _ensure_in_cache(cxx, tf)
    if digest in _loaded or _kernel is not None:  # these bytes, or the op, are loaded already
        os.close(fd)
        return _loaded.get(digest, _kernel), path
    if os.path.isdir("/proc/self/fd"):
        # The very file that was hashed, whatever happens to its name afterwards.
        name = f"/proc/self/fd/{fd}"
        _held.append(fd)
    else:  # no /proc: by name, in a folder only this user can write
        name = str(path)
        os.close(fd)
    try:
        library = tf.load_op_library(name)
    except Exception as err:
        reason = " ".join(str(err).strip().splitlines()[:2])
        raise _NotUsable(f"tf.load_op_library could not load {path}: {reason}") from err
    _loaded[digest] = library
    if hasattr(library, OP_NAME):
        _kernel = library
    return library, path


def _build(cxx: str, tf) -> Path:
    """Compiles the kernel unless a verified library for this source, TensorFlow and compiler
    is in the cache; returns the library's path (nothing is loaded)."""
    fd, _, path = _ensure_in_cache(cxx, tf)
    os.close(fd)
    return path


def _ensure_in_cache(cxx: str, tf) -> tuple[int, str, Path]:
    """`_ensure_library` in the private cache folder, opened for the call and closed after."""
    folder = cache_dir()
    folder_fd = _open_private_folder(folder)
    try:
        return _ensure_library(folder_fd, folder, cxx, tf)
    finally:
        os.close(folder_fd)


def _open_private_folder(folder: Path) -> int:
    """A descriptor of the cache folder, created with mode 0700 if missing.

    Raises:
        _NotUsable: the folder belongs to another user, or its group or others may write to
            it (then neither its libraries nor its manifests can be trusted).
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(folder, 0o700)
        created = True
    except FileExistsError:
        created = False
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        info = os.fstat(fd)
        if info.st_uid != os.getuid():
            raise _NotUsable(
                f"cache folder {folder} belongs to uid {info.st_uid}, not to this user "
                f"(uid {os.getuid()}); expected a folder of your own (set SEQL_CACHE_DIR)"
            )
        if created:
            os.fchmod(fd, 0o700)  # whatever the umask
        elif info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise _NotUsable(
                f"cache folder {folder} may be written by its group or others "
                f"(mode {stat.S_IMODE(info.st_mode):04o}); expected one only you can write "
                f"(chmod 700 {folder}, or set SEQL_CACHE_DIR)"
            )
    except BaseException:
        os.close(fd)
        raise
    return fd


def _toolchain(cxx: str, tf) -> tuple[str, list[str], list[str]]:
    """The cache key (source, TensorFlow, platform, compiler and flags), compile and link flags."""
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
    return key, flags, link


def _ensure_library(folder_fd: int, folder: Path, cxx: str, tf) -> tuple[int, str, Path]:
    """An open descriptor of the verified library, its SHA-256 and its path; builds it (into
    the folder, replacing whatever had its name) when none matches its manifest."""
    key, flags, link = _toolchain(cxx, tf)
    name = f"penalty_kernel-{key}.so"
    expected = {
        "format": MANIFEST_FORMAT,
        "library": name,
        "key": key,
        "source_sha256": hashlib.sha256(SOURCE.read_bytes()).hexdigest(),
    }
    found = _open_verified(folder_fd, name, expected)
    if found is None:
        with _folder_locked(folder_fd):
            # Another process may have built it while this one waited for the lock.
            found = _open_verified(folder_fd, name, expected)
            if found is None:
                _build_into(folder_fd, name, expected, cxx, flags, link, tf)
                found = _open_verified(folder_fd, name, expected)
    if found is None:
        raise _NotUsable(f"{folder / name} does not match the manifest written with it")
    fd, digest = found
    return fd, digest, folder / name


def _manifest_name(library: str) -> str:
    return library.removesuffix(".so") + ".json"


def _open_own_file(folder_fd: int, name: str) -> int | None:
    """`name` in the folder opened for reading, or None unless it is a regular file (not a
    symbolic link) of this user's that no one else may write."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=folder_fd)
    except OSError:
        return None
    info = os.fstat(fd)
    if (
        not stat.S_ISREG(info.st_mode)
        or info.st_uid != os.getuid()
        or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    ):
        os.close(fd)
        return None
    return fd


def _open_verified(folder_fd: int, name: str, expected: dict) -> tuple[int, str] | None:
    """The library `name` opened, with its SHA-256, if its manifest vouches for it; else None."""
    manifest_fd = _open_own_file(folder_fd, _manifest_name(name))
    if manifest_fd is None:
        return None
    try:
        with os.fdopen(manifest_fd, "rb") as f:
            manifest = json.loads(f.read(1 << 16))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or any(manifest.get(k) != v for k, v in expected.items()):
        return None
    fd = _open_own_file(folder_fd, name)
    if fd is None:
        return None
    digest = hashlib.sha256()
    with os.fdopen(os.dup(fd), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != manifest.get("sha256"):
        os.close(fd)
        return None
    return fd, digest.hexdigest()


def _compile(cxx: str, flags: list[str], link: list[str], output: str) -> None:
    """Runs the compiler on `SOURCE`, writing the library to `output`."""
    done = subprocess.run(
        [cxx, *flags, str(SOURCE), "-o", output, *link],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise _NotUsable(f"{cxx} exited with status {done.returncode}: {done.stderr[-2000:]}")


def _build_into(
    folder_fd: int, name: str, expected: dict, cxx: str, flags: list[str], link: list[str], tf
) -> None:
    """Compiles in a fresh private temporary folder, then puts the library and its manifest
    into the cache folder, each whole (temporary name, then rename), the manifest last."""
    scratch = tempfile.mkdtemp(prefix="seql-kernel-")  # mode 0700, a name no one can guess
    try:
        output = os.path.join(scratch, name)
        _compile(cxx, flags, link, output)
        with open(output, "rb") as f:
            data = f.read()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    _write_whole(folder_fd, name, data, 0o700)
    manifest = {
        **expected,
        "sha256": hashlib.sha256(data).hexdigest(),
        "tensorflow": tf.__version__,
        "compiler": cxx,
    }
    _write_whole(folder_fd, _manifest_name(name), json.dumps(manifest, indent=1).encode(), 0o600)


def _write_whole(folder_fd: int, name: str, data: bytes, mode: int) -> None:
    """Writes `name` in the folder under a temporary name, then renames it into place."""
    temporary = f".{name}.{secrets.token_hex(8)}.partial"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    fd = os.open(temporary, flags, mode, dir_fd=folder_fd)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary, dir_fd=folder_fd)
        raise


@contextlib.contextmanager
def _folder_locked(folder_fd: int) -> Iterator[None]:
    """Holds an exclusive lock on the folder, so concurrent processes build one at a time."""
    try:
        import fcntl
    except ImportError:  # no flock: concurrent builds each write whole files anyway
        yield
        return
    fcntl.flock(folder_fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(folder_fd, fcntl.LOCK_UN)
