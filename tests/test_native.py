"""The fused native penalty kernel against TensorFlow's ops, its fallbacks and its cache."""

from __future__ import annotations

import os
import warnings

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


def test_failed_build_warns_and_falls_back(fresh_native, monkeypatch, tmp_path):
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
