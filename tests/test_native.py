"""The fused native penalty kernel against TensorFlow's ops, its fallbacks and its cache."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from sequential_learning import native
from sequential_learning.importance.penalty import ConsolidationPenalty
from sequential_learning.training import ConsolidationTrainer


@pytest.fixture
def fresh_native():
    """Lets a test change the environment native reads; decides afresh before and after."""
    native.reset()
    yield
    native.reset()


@pytest.fixture
def cpu_only(fresh_native):
    """Skips where an accelerator is visible (the kernel is then never built or loaded)."""
    if tf.config.list_physical_devices("GPU") or tf.config.list_physical_devices("TPU"):
        pytest.skip("an accelerator is visible: the fused kernel is not considered")


@pytest.fixture
def kernel(fresh_native):
    op = native.penalty_kernel()
    if op is None:
        pytest.skip(f"no fused kernel here: {native.status()}")
    return op


def _reference(g, t, a, r, scale):
    g, t, a, r = (np.asarray(z, np.float64) for z in (g, t, a, r))
    e = r * (t - a)
    return g + scale * r * e, 0.5 * np.sum(e**2)


# 3 and (2, 5): below one vector width; (1 << 20) + 77: more than one block, so threads share
# the pass and their partial sums are added.
@pytest.mark.parametrize("shape", [(3,), (2, 5), (400, 400), ((1 << 20) + 77,)])
def test_kernel_equals_the_formula(kernel, shape, seeded):
    g, t, a = (seeded.normal(size=shape).astype(np.float32) for _ in range(3))
    r = seeded.random(shape).astype(np.float32)
    summed, value = kernel(g, t, a, r, 0.5)
    want_summed, want_value = _reference(g, t, a, r, 0.5)
    np.testing.assert_allclose(summed.numpy(), want_summed, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(value), want_value, rtol=1e-5)
    np.testing.assert_array_equal(g, g.copy())  # the caller's array is not written


def test_kernel_in_a_graph_never_overwrites_a_gradient_still_in_use(kernel, seeded):
    x, t, a, r = (seeded.random((64, 32)).astype(np.float32) for _ in range(4))

    @tf.function
    def step():
        g = x * 2.0  # a fresh buffer the kernel may write in place when nothing else reads it
        summed, value = kernel(g, t, a, r, 1.0)
        return g, summed, value

    g, summed, _ = step()
    np.testing.assert_allclose(g.numpy(), 2.0 * x, rtol=1e-6)
    np.testing.assert_allclose(summed.numpy(), _reference(2.0 * x, t, a, r, 1.0)[0], rtol=1e-5)


def test_kernel_rejects_mismatched_shapes(kernel):
    ones = np.ones((2, 3), np.float32)
    with pytest.raises(tf.errors.InvalidArgumentError, match="one shape"):
        kernel(ones, np.ones((3, 2), np.float32), ones, ones, 1.0)
    with pytest.raises(tf.errors.InvalidArgumentError, match="scale must be a scalar"):
        kernel(ones, ones, ones, ones, np.ones(2, np.float32))


def test_penalty_with_the_kernel_equals_tensorflow_ops(kernel, seeded, monkeypatch):
    variables = [tf.Variable(seeded.normal(size=s).astype(np.float32)) for s in [(5, 4), (4,)]]
    penalty = ConsolidationPenalty(variables, ewc_lambda=3.0)
    for _ in range(2):
        penalty.consolidate([seeded.random(v.shape) for v in variables])
        for v in variables:
            v.assign_add(seeded.normal(size=v.shape).astype(np.float32))
    grads = [tf.constant(seeded.normal(size=v.shape).astype(np.float32)) for v in variables]
    fused_value, fused = penalty.add_to_gradients(grads, 0.25)
    monkeypatch.setenv("SEQL_NATIVE", "0")
    native.reset()
    assert native.penalty_kernel() is None
    assert "SEQL_NATIVE=0" in native.status()
    ops_value, ops = penalty.add_to_gradients(grads, 0.25)
    np.testing.assert_allclose(float(fused_value), float(ops_value), rtol=1e-6)
    for f, o in zip(fused, ops):
        np.testing.assert_allclose(f.numpy(), o.numpy(), rtol=1e-6, atol=1e-7)


def _train(seed: int) -> list[np.ndarray]:
    keras.utils.set_random_seed(seed)
    inp = keras.Input((6,))
    base = keras.Model(inp, keras.layers.Dense(8, activation="relu")(inp))
    model = keras.Model(inp, keras.layers.Dense(3)(base(inp)))
    penalty = ConsolidationPenalty(base.trainable_variables, ewc_lambda=10.0)
    rng = np.random.default_rng(seed)
    penalty.consolidate([rng.random(v.shape) for v in base.trainable_variables])
    trainer = ConsolidationTrainer(model, penalty, None, base.trainable_variables)
    trainer.compile(optimizer="adam", steps_per_execution=2,
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = rng.random((40, 6)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    trainer.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    return [v.numpy() for v in model.trainable_variables]


def test_training_with_the_kernel_equals_training_with_tensorflow_ops(kernel, monkeypatch):
    fused = _train(3)
    monkeypatch.setenv("SEQL_NATIVE", "0")
    native.reset()  # the path is chosen when the step is traced
    ops = _train(3)
    for f, o in zip(fused, ops):
        np.testing.assert_allclose(f, o, rtol=1e-5, atol=1e-6)


def test_no_compiler_falls_back_to_tensorflow_ops(fresh_native, monkeypatch):
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    assert native.penalty_kernel() is None
    assert "no C++ compiler" in native.status()


def test_failed_build_warns_and_falls_back(cpu_only, monkeypatch, tmp_path):
    monkeypatch.setenv("CXX", "false")  # a "compiler" that always fails
    monkeypatch.setenv("SEQL_CACHE_DIR", str(tmp_path))
    monkeypatch.delitem(native._state, "library", raising=False)
    with pytest.warns(RuntimeWarning, match="could not be built or loaded"):
        assert native.penalty_kernel() is None
    assert "failed" in native.status()
    assert list(tmp_path.iterdir()) == []  # no half-written library left behind


def test_the_build_is_cached_per_source_and_toolchain(kernel):
    cxx = native.compiler()
    first = native._build(cxx, tf)
    stamp = os.stat(first).st_mtime_ns
    assert native._build(cxx, tf) == first
    assert os.stat(first).st_mtime_ns == stamp  # reused, not rebuilt
    assert first.parent == native.cache_dir()


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SEQL_CACHE_DIR", str(tmp_path / "a"))
    assert native.cache_dir() == tmp_path / "a"
    monkeypatch.delenv("SEQL_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "b"))
    assert native.cache_dir() == tmp_path / "b" / "sequential_learning"


def test_disabled_by_environment(fresh_native, monkeypatch):
    for off in ("0", "false", "OFF"):
        monkeypatch.setenv("SEQL_NATIVE", off)
        native.reset()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert native.penalty_kernel() is None


def test_runs_record_how_the_penalty_ran(fresh_native, monkeypatch):
    from sequential_learning.report import environment_info

    assert environment_info()["penalty_kernel"] == "not used in this process"
    monkeypatch.setenv("SEQL_NATIVE", "0")
    native.penalty_kernel()
    assert environment_info()["penalty_kernel"] == "TensorFlow ops (SEQL_NATIVE=0)"


def test_deciding_leaves_virtual_devices_configurable(tmp_path):
    # Asking for the kernel first and configuring two logical CPUs afterwards (as a
    # MirroredStrategy set-up does) must work: the decision may not start TensorFlow's runtime.
    import subprocess
    import sys

    code = (
        "from sequential_learning import native\n"
        "native.penalty_kernel()\n"
        "import tensorflow as tf\n"
        "cpu = tf.config.list_physical_devices('CPU')[0]\n"
        "tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)\n"
        "print(len(tf.config.list_logical_devices('CPU')), native.status())\n"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[0] == "2"


# --- The cache loads only what this package built -------------------------------------------

PLANTED_C = r"""
#include <stdio.h>
#include <stdlib.h>
__attribute__((constructor)) static void planted(void) {
  const char *marker = getenv("SEQL_TEST_MARKER");
  FILE *f = marker ? fopen(marker, "w") : NULL;
  if (f) { fputs("the planted library ran\n", f); fclose(f); }
}
"""


def _c_library(folder: Path, name: str, code: str) -> Path:
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler to build a test library")
    source, library = folder / f"{name}.c", folder / f"{name}.so"
    source.write_text(code)
    subprocess.run([cc, "-shared", "-fPIC", str(source), "-o", str(library)], check=True,
                   capture_output=True, timeout=120)
    return library


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> bytes:
    """A shared library whose constructor creates `$SEQL_TEST_MARKER`, shown to do so."""
    folder = tmp_path_factory.mktemp("planted")
    library = _c_library(folder, "planted", PLANTED_C)
    control = folder / "control-marker"
    subprocess.run([sys.executable, "-c", "import ctypes, sys; ctypes.CDLL(sys.argv[1])",
                    str(library)], env={**os.environ, "SEQL_TEST_MARKER": str(control)},
                   check=True, timeout=120)
    assert control.exists()  # loading it anywhere leaves the marker
    return library.read_bytes()


@pytest.fixture
def cache(cpu_only, monkeypatch, tmp_path) -> Path:
    """An empty cache folder of the test's own; the marker a planted library would write."""
    monkeypatch.setenv("SEQL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SEQL_TEST_MARKER", str(tmp_path / "marker"))
    monkeypatch.delitem(native._state, "library", raising=False)
    native.reset()  # after `kernel`, where a test asks for both
    return tmp_path / "cache"


def _key() -> str:
    return native._toolchain(native.compiler(), tf)[0]


def _as_if_no_kernel_was_loaded(monkeypatch) -> None:
    """The process as before its first kernel: a loaded op serves every later request (one
    registration per process), so a test of what happens at the first load starts here."""
    monkeypatch.setattr(native, "_kernel", None)


def _fake_compiler(monkeypatch, data: bytes) -> list[str]:
    """Makes the build write `data` instead of compiling; returns the outputs it wrote."""
    monkeypatch.setenv("CXX", sys.executable)  # any program that answers --version
    built = []

    def compile_(cxx, flags, link, output):
        Path(output).write_bytes(data)
        built.append(output)

    monkeypatch.setattr(native, "_compile", compile_)
    return built


def _manifest(cache: Path) -> dict:
    return json.loads((cache / f"penalty_kernel-{_key()}.json").read_text())


def _small_penalty_step(op):
    g, t, a, r = (np.full(4, v, np.float32) for v in (1.0, 3.0, 1.0, 0.5))
    summed, value = op(g, t, a, r, 1.0)
    want_summed, want_value = _reference(g, t, a, r, 1.0)
    np.testing.assert_allclose(summed.numpy(), want_summed, rtol=1e-6)
    np.testing.assert_allclose(float(value), want_value, rtol=1e-6)


def test_a_library_planted_under_the_expected_name_is_rebuilt_never_loaded(kernel, planted,
                                                                           cache):
    # The real compiler, no manifest: what an attacker who guessed the key would leave.
    cache.mkdir(mode=0o700)
    library = cache / f"penalty_kernel-{_key()}.so"
    library.write_bytes(planted)
    op = native.penalty_kernel()
    assert not (cache.parent / "marker").exists()
    assert op is not None, native.status()
    _small_penalty_step(op)  # the run's penalty works, with the kernel built afresh
    data = library.read_bytes()
    assert data != planted
    assert _manifest(cache)["sha256"] == hashlib.sha256(data).hexdigest()
    assert sorted(p.name for p in cache.iterdir()) == sorted([library.name, f"{library.stem}.json"])


@pytest.mark.parametrize("manifest", ["of the genuine build", "missing", "of another source",
                                      "not JSON", "for a symbolic link"])
def test_a_library_its_manifest_does_not_vouch_for_is_never_loaded(kernel, planted, cache,
                                                                   monkeypatch, manifest):
    genuine = Path(str(native._state["path"])).read_bytes()
    built = _fake_compiler(monkeypatch, genuine)
    assert native.penalty_kernel() is not None and len(built) == 1
    library = cache / f"penalty_kernel-{_key()}.so"
    manifest_path = library.with_suffix(".json")
    planted_sha = hashlib.sha256(planted).hexdigest()
    library.write_bytes(planted)  # the manifest still names the genuine library's SHA-256
    if manifest == "missing":
        manifest_path.unlink()
    elif manifest == "of another source":  # the library's own hash, but not this source's
        manifest_path.write_text(json.dumps({**_manifest(cache), "sha256": planted_sha,
                                             "source_sha256": "0" * 64}))
    elif manifest == "not JSON":
        manifest_path.write_text("{not json")
    elif manifest == "for a symbolic link":
        library.unlink()
        (cache.parent / "elsewhere.so").write_bytes(planted)
        library.symlink_to(cache.parent / "elsewhere.so")
        manifest_path.write_text(json.dumps({**_manifest(cache), "sha256": planted_sha}))
    native.reset()
    monkeypatch.delitem(native._state, "library")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a rebuild is no failure: no warning
        op = native.penalty_kernel()
    assert not (cache.parent / "marker").exists()
    assert len(built) == 2  # refused, so rebuilt
    assert op is not None, native.status()
    _small_penalty_step(op)
    assert not library.is_symlink() and library.read_bytes() == genuine
    assert _manifest(cache)["sha256"] == hashlib.sha256(genuine).hexdigest()


def test_a_library_without_the_op_falls_back_with_a_warning(cache, monkeypatch, tmp_path):
    _as_if_no_kernel_was_loaded(monkeypatch)
    empty = _c_library(tmp_path, "empty", "int seql_not_a_kernel(void) { return 1; }\n")
    built = _fake_compiler(monkeypatch, empty.read_bytes())
    with pytest.warns(RuntimeWarning, match="loaded but has no op seql_penalty_add_to_gradient"):
        assert native.penalty_kernel() is None
    assert len(built) == 1
    assert "TensorFlow ops (the fused kernel failed" in native.status()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # decided: one warning, not one per step
        assert native.penalty_kernel() is None
    variable = tf.Variable(np.ones(3, np.float32))
    penalty = ConsolidationPenalty([variable], ewc_lambda=2.0)
    penalty.consolidate([np.ones(3)])
    variable.assign_add(np.ones(3, np.float32))
    value, (summed,) = penalty.add_to_gradients([tf.zeros(3)])
    np.testing.assert_allclose(float(value), 3.0, rtol=1e-6)  # λ/2 Σ Ω (θ − θ̄)² = 1 · 3
    np.testing.assert_allclose(summed.numpy(), np.full(3, 2.0), rtol=1e-6)


def test_a_library_tensorflow_cannot_load_falls_back_with_a_warning(cache, monkeypatch):
    _as_if_no_kernel_was_loaded(monkeypatch)
    _fake_compiler(monkeypatch, os.urandom(4096))
    with pytest.warns(RuntimeWarning, match="tf.load_op_library could not load"):
        assert native.penalty_kernel() is None
    assert "failed" in native.status()


def test_the_cache_folder_is_created_private(cache, monkeypatch):
    _as_if_no_kernel_was_loaded(monkeypatch)
    nested = cache / "a" / "b"
    monkeypatch.setenv("SEQL_CACHE_DIR", str(nested))
    _fake_compiler(monkeypatch, os.urandom(64))
    old = os.umask(0)  # the mode may not depend on the umask
    try:
        with pytest.warns(RuntimeWarning):
            native.penalty_kernel()
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(nested).st_mode) == 0o700
    for path in nested.iterdir():  # the library and its manifest: no one else writes them
        assert stat.S_IMODE(os.stat(path).st_mode) & 0o022 == 0, path


def _plant_with_a_matching_manifest(cache: Path, planted: bytes) -> None:
    library = cache / f"penalty_kernel-{_key()}.so"
    library.write_bytes(planted)
    source = hashlib.sha256(native.SOURCE.read_bytes()).hexdigest()
    library.with_suffix(".json").write_text(json.dumps({
        "format": native.MANIFEST_FORMAT, "library": library.name, "key": _key(),
        "source_sha256": source, "sha256": hashlib.sha256(planted).hexdigest()}))


def test_a_folder_others_may_write_is_not_used(cache, planted, monkeypatch):
    # Anyone who can write there can write a matching manifest, so nothing there is trusted.
    built = _fake_compiler(monkeypatch, b"never built")
    cache.mkdir()
    _plant_with_a_matching_manifest(cache, planted)
    cache.chmod(0o775)
    with pytest.warns(RuntimeWarning, match="may be written by its group or others"):
        assert native.penalty_kernel() is None
    assert not (cache.parent / "marker").exists()
    assert built == []
    assert "chmod 700" in native.status()


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="needs root to chown")
def test_a_folder_of_another_user_is_not_used(cache, planted, monkeypatch):
    _fake_compiler(monkeypatch, b"never built")
    cache.mkdir(mode=0o700)
    _plant_with_a_matching_manifest(cache, planted)
    os.chown(cache, 65534, 65534)
    with pytest.warns(RuntimeWarning, match="belongs to uid 65534"):
        assert native.penalty_kernel() is None
    assert not (cache.parent / "marker").exists()


def test_a_second_build_in_the_same_process_is_cached_but_not_loaded(kernel, cache, monkeypatch):
    # Another build of the same source (another folder, another compiler: other bytes) would
    # register the op a second time, which TensorFlow refuses at the op's first use.
    genuine = Path(str(native._state["path"])).read_bytes()
    built = _fake_compiler(monkeypatch, genuine + b"\0" * 64)
    loaded = native._kernel
    assert loaded is not None
    op = native.penalty_kernel()
    assert len(built) == 1 and op is not None, native.status()
    assert native._kernel is loaded and native._state["library"] is loaded
    _small_penalty_step(op)
    variable = tf.Variable(np.ones(3, np.float32))  # through a compiled function, as in training
    penalty = ConsolidationPenalty([variable], ewc_lambda=2.0)
    penalty.consolidate([np.ones(3)])
    variable.assign_add(np.ones(3, np.float32))
    value, (summed,) = tf.function(penalty.add_to_gradients)([tf.zeros(3)])
    np.testing.assert_allclose(float(value), 3.0, rtol=1e-6)
    np.testing.assert_allclose(summed.numpy(), np.full(3, 2.0), rtol=1e-6)
