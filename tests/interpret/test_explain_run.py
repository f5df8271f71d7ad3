"""`explain_run` on small run directories laid out as the manager writes them."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from sequential_learning.interpret import METHODS, explain_run, grad_cam

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _write_run(run_dir: Path, tasks: int = 2, mlp: bool = False, samples_shape=None) -> Path:
    """models/task_K.keras (task models on one shared base) and samples/task_K.npz."""
    keras.utils.set_random_seed(0)
    (run_dir / "models").mkdir(parents=True)
    (run_dir / "samples").mkdir()
    base_in = keras.Input((12, 12, 1))
    if mlp:
        h = keras.layers.Dense(8, activation="relu")(keras.layers.Flatten()(base_in))
    else:
        h = keras.layers.Conv2D(4, 3, activation="relu", name="conv_a")(base_in)
        h = keras.layers.Conv2D(6, 3, activation="relu", name="conv_b")(h)
        h = keras.layers.GlobalAveragePooling2D()(h)
    base = keras.Model(base_in, h, name="shared_base")
    rng = np.random.default_rng(0)
    for k in range(1, tasks + 1):
        inp = keras.Input((12, 12, 1))
        model = keras.Model(
            inp, keras.layers.Dense(2, name=f"head_{k}")(base(inp)), name=f"task_{k}"
        )
        model.save(run_dir / "models" / f"task_{k}.keras")
        x = rng.uniform(size=(6, 12, 12, 1)).astype(np.float32)
        if samples_shape is not None:
            x = x.reshape(6, *samples_shape)
        np.savez(run_dir / "samples" / f"task_{k}.npz", x=x, y=rng.integers(0, 2, 6))
    return run_dir


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return _write_run(tmp_path_factory.mktemp("run"))


@pytest.mark.parametrize("method", METHODS)
def test_every_method_writes_one_png_per_task(run_dir, method):
    paths = explain_run(run_dir, method, images=3)
    assert len(paths) == 2
    for number, path in enumerate(paths, start=1):
        assert path.parent == run_dir / "explain"
        assert path.name.startswith(f"task_{number}_")
        assert path.suffix == ".png"
        assert path.read_bytes()[:8] == PNG_MAGIC


def test_file_names_say_what_was_explained(run_dir):
    names = [p.name for p in explain_run(run_dir, "grad-cam++", task=2, images=2)]
    assert names == ["task_2_grad-cam-pp_shared_base-conv_b.png"]
    names = [p.name for p in explain_run(run_dir, "kernels", task=1, layer="conv_a")]
    assert names == ["task_1_kernels_shared_base-conv_a.png"]
    names = [p.name for p in explain_run(run_dir, "occlusion", task=1)]
    assert names == ["task_1_occlusion.png"]


def test_grayscale_samples_without_channel_axis(tmp_path):
    run = _write_run(tmp_path / "run", tasks=1, samples_shape=(12, 12))
    assert len(explain_run(run, "grad-cam", images=2)) == 1


def test_explaining_leaves_the_model_saveable(tmp_path):
    """The per-model cache must not leak into what Keras saves."""
    run = _write_run(tmp_path / "run", tasks=1)
    model = keras.models.load_model(run / "models" / "task_1.keras", compile=False)
    x = np.random.default_rng(1).uniform(size=(2, 12, 12, 1)).astype(np.float32)
    maps = grad_cam(model, x, [0, 1])
    model.save(tmp_path / "again.keras")
    again = keras.models.load_model(tmp_path / "again.keras", safe_mode=True, compile=False)
    np.testing.assert_allclose(grad_cam(again, x, [0, 1]), maps, atol=1e-6)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda d: explain_run(d, "lime"),
            r"Unknown method 'lime'; known methods: grad-cam, grad-cam\+\+",
        ),
        (lambda d: explain_run(d, "grad-cam", task=3), r"Task 3 is out of range.*tasks \[1, 2\]"),
        (lambda d: explain_run(d, "grad-cam", task=0), r"Task 0 is out of range"),
        (lambda d: explain_run(d, "grad-cam", images=0), r"`images` must be a positive int"),
        (
            lambda d: explain_run(d, "kernels", layer="nope"),
            r"No layer named 'nope'.*'shared_base/conv_a'",
        ),
        (
            lambda d: explain_run(d, "grad-cam", layer="head_1"),
            r"'head_1' \(Dense\) is not convolutional",
        ),
        (lambda d: explain_run(d / "missing", "grad-cam"), r"does not exist"),
    ],
)
def test_bad_requests(run_dir, call, message):
    with pytest.raises(ValueError, match=message):
        call(run_dir)


def test_run_without_saved_models(tmp_path):
    (tmp_path / "models").mkdir()
    with pytest.raises(ValueError, match=r"No saved models in run directory.*task_1\.keras"):
        explain_run(tmp_path, "grad-cam")


def test_run_without_samples(tmp_path):
    run = _write_run(tmp_path / "run", tasks=1)
    (run / "samples" / "task_1.npz").unlink()
    with pytest.raises(
        ValueError, match=r"No validation samples for task 1: expected .*task_1\.npz"
    ):
        explain_run(run, "occlusion")
    assert len(explain_run(run, "kernels")) == 1  # the weight-only methods need no samples


def test_mlp_run(tmp_path):
    run = _write_run(tmp_path / "run", tasks=1, mlp=True)
    with pytest.raises(ValueError, match=r"no convolutional layer; Grad-CAM needs one"):
        explain_run(run, "grad-cam")
    with pytest.raises(ValueError, match=r"no convolutional layer; kernel inspection needs one"):
        explain_run(run, "kernels")
    assert len(explain_run(run, "occlusion", images=2)) == 1  # image input, dense layers
