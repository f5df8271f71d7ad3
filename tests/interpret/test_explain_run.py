"""`explain_run` on small run directories laid out as the manager writes them."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from sequential_learning.interpret import METHODS, explain_run, grad_cam

pytestmark = pytest.mark.all_backends

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


# -- captions name classes as the data set does --------------------------------------------------
def _results(run_dir: Path, benchmark: str, scenario: str, classes, heads, **info) -> None:
    import json

    config = {"benchmark": benchmark,
              "benchmark_info": {"scenario": scenario, "classes": classes, "head_sizes": heads,
                                 **info}}
    (run_dir / "results.json").write_text(json.dumps({"config": config}))


def test_run_class_names_map_each_heads_outputs_to_the_data_sets_names(tmp_path):
    from sequential_learning.interpret import run_class_names

    _results(tmp_path, "split-fashion-mnist", "task", [[0, 1], [2, 3]], [2, 2])
    assert run_class_names(tmp_path) == {1: ["T-shirt/top", "Trouser"], 2: ["Pullover", "Dress"]}
    _results(tmp_path, "split-fashion-mnist", "class", [[9, 0], [5, 7]], [4, 4],
             class_order=[9, 0, 5, 7])
    assert run_class_names(tmp_path)[2] == ["Ankle boot", "T-shirt/top", "Sandal", "Sneaker"]
    _results(tmp_path, "permuted-digits", "class", [list(range(10)), list(range(10, 20))],
             [20, 20])
    assert run_class_names(tmp_path)[2][12] == "2"
    _results(tmp_path, "split", "task", [[4, 6]], [2], data=str(tmp_path / "gone.npz"))
    assert run_class_names(tmp_path) == {1: ["4", "6"]}  # no names known: the class ids
    (tmp_path / "results.json").write_text("{not json")
    assert run_class_names(tmp_path) == {}


def test_explain_captions_use_class_names_and_the_maps_get_a_colour_bar(tmp_path, monkeypatch):
    from sequential_learning.interpret import run as run_module

    run = _write_run(tmp_path / "run", tasks=2)
    _results(run, "split-fashion-mnist", "task", [[0, 1], [2, 3]], [2, 2])
    calls = []
    original = run_module.plots.heatmap_overlays
    monkeypatch.setattr(run_module.plots, "heatmap_overlays",
                        lambda *a, **k: calls.append(k) or original(*a, **k))
    explain_run(run, "occlusion", task=2, images=3)
    explain_run(run, "grad-cam", task=2, images=3)
    _, y = np.load(run / "samples" / "task_2.npz")["x"], np.load(run / "samples" / "task_2.npz")["y"]
    for call in calls:
        for caption, label in zip(call["titles"], y[:3], strict=True):
            assert caption.startswith(["Pullover", "Dress"][int(label)] + "\npred: ")
            assert caption.split("\n")[1] in ("pred: Pullover", "pred: Dress")
    occlusion, cam = calls
    assert occlusion["symmetric"] and "drop in p(label) when occluded" in occlusion["colorbar_label"]
    assert cam["value_range"] == (0.0, 1.0) and "evidence" in cam["colorbar_label"]
