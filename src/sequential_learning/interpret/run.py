"""Explaining a saved run: the work behind `seql explain RUN_DIR`.

A run directory written by the manager holds

    models/task_1.keras, models/task_2.keras, ...   each task's model (`model.save`)
    samples/task_1.npz, samples/task_2.npz, ...     arrays `x` (validation images), `y` (labels)

`explain_run` loads the models (`safe_mode=True`) and the samples (`allow_pickle=False`), runs one
method and writes PNGs to `RUN_DIR/explain/`. Captions name classes as the data set does (e.g.
Fashion-MNIST's "T-shirt/top") when the run's `results.json` says which benchmark it learned
(`run_class_names`), else by class id.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np

from sequential_learning.checkpoint import load_model
from sequential_learning.interpret import base, plots
from sequential_learning.interpret.activations import (
    class_activation_maximization,
    filter_activation_maximization,
)
from sequential_learning.interpret.gradcam import (
    GradCAM,
    GradCAMPlusPlus,
    grad_cam,
    grad_cam_plus_plus,
)
from sequential_learning.interpret.kernels import kernel_weights
from sequential_learning.interpret.occlusion import occlusion_sensitivity
from sequential_learning.rundir import RunDir

METHODS: tuple[str, ...] = ("grad-cam", "grad-cam++", "occlusion", "kernels", "filters", "classes")

_TASK_FILE = re.compile(r"^task_(\d+)\.keras$")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name.replace("++", "-pp")).strip("-")


def find_task_models(run_dir: str | Path) -> dict[int, Path]:
    """The saved task models of a run, `{task number: path}`, from `RUN_DIR/models/task_K.keras`.

    Args:
        run_dir: the run folder.

    Returns:
        `{task number (1-based): path}`, in task order.

    Raises:
        ValueError: the run directory, its `models/` folder, or any `task_K.keras` is missing.

    Example:
    ```python
    find_task_models("runs/x")   # {1: Path('runs/x/models/task_1.keras'), ...}
    ```
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ValueError(f"Run directory {str(run_dir)!r} does not exist.")
    models_dir = RunDir(run_dir).models
    found = {}
    if models_dir.is_dir():
        for path in models_dir.iterdir():
            match = _TASK_FILE.match(path.name)
            if match and path.is_file():
                found[int(match.group(1))] = path
    if not found:
        raise ValueError(
            f"No saved models in run directory {str(run_dir)!r}: expected files "
            f"{str(RunDir(run_dir).model(1))!r}, 'task_2.keras', ... Explaining a run needs a "
            "run that saved its task models."
        )
    return dict(sorted(found.items()))


def _load_samples(run_dir: Path, task: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    path = RunDir(run_dir).sample(task)
    if not path.is_file():
        raise ValueError(
            f"No validation samples for task {task}: expected {str(path)!r} holding arrays "
            "'x' (images) and 'y' (integer labels)."
        )
    with np.load(path, allow_pickle=False) as data:
        missing = [key for key in ("x", "y") if key not in data.files]
        if missing:
            raise ValueError(
                f"{str(path)!r} lacks array(s) {missing}; expected 'x' (images) and 'y' (labels); "
                f"found {data.files}."
            )
        x, y = data["x"][:count], data["y"][:count]
    if len(x) == 0:
        raise ValueError(f"{str(path)!r} holds no images.")
    return x, y


def _fit_to_model(model: keras.Model, x: np.ndarray) -> np.ndarray:
    """Adds a missing channel axis (or the like) when the sizes agree: (N, 28, 28) -> (N, 28, 28, 1)."""
    per_image = base.model_input_shape(model)[1:]
    if None in per_image or x.shape[1:] == tuple(per_image):
        return x
    if int(np.prod(x.shape[1:])) == int(np.prod(per_image)):
        return x.reshape((len(x), *per_image))
    return x


def _dataset_class_names(config: dict) -> list[str] | None:
    """The class names of the data set a run's benchmark reads, when known."""
    from sequential_learning.data import datasets
    from sequential_learning.data.benchmarks import BENCHMARKS

    spec = BENCHMARKS.get(str(config.get("benchmark")))
    if spec is None:
        return None
    known = {"fashion-mnist": datasets.FASHION_MNIST_CLASS_NAMES,
             "cifar10": datasets.CIFAR10_CLASS_NAMES,
             "mnist": datasets.DIGIT_CLASS_NAMES, "digits": datasets.DIGIT_CLASS_NAMES}
    if spec.dataset in known:
        return list(known[spec.dataset])
    if spec.dataset == "npz" and config.get("data"):
        try:
            with np.load(Path(config["data"]), allow_pickle=False) as arrays:
                if "class_names" in arrays.files:
                    return [str(n.decode() if isinstance(n, bytes) else n)
                            for n in arrays["class_names"]]
        except (OSError, ValueError):  # the file moved or changed: class ids will do
            return None
    return None


def run_class_names(run_dir: str | Path) -> dict[int, list[str]]:
    """What each output of each task model means, as a name, from the run's `results.json`.

    A split stream's task head predicts labels 0, 1, ... standing for the task's classes (task 2
    of split-fashion-mnist: 0 = "Pullover", 1 = "Dress"); a class-incremental head predicts
    positions in the class order; a permuted or rotated stream's labels are the data set's
    classes (offset per task in the class-incremental scenario). Names come from the data set
    (Fashion-MNIST, CIFAR-10, digits, MNIST, or `class_names` in the run's npz file); without
    them the original class id is used (`"7"`).

    Args:
        run_dir: a run directory.

    Returns:
        `{task number (1-based): [name of output 0, name of output 1, ...]}`; empty when the
        run's `results.json` is missing, unreadable or names no known stream (callers then show
        the label itself).

    Example:
    ```python
    >>> run_class_names("runs/split-fashion")[1]
    ['T-shirt/top', 'Trouser']
    ```
    """
    import json

    path = RunDir(run_dir).results
    try:
        config = json.loads(path.read_text()).get("config") or {}
    except (OSError, ValueError, AttributeError):
        return {}
    info = config.get("benchmark_info") or {}
    classes = info.get("classes")
    heads = info.get("head_sizes")
    if not isinstance(classes, list) or not isinstance(heads, list) or len(classes) != len(heads):
        return {}
    from sequential_learning.data.benchmarks import BENCHMARKS

    spec = BENCHMARKS.get(str(config.get("benchmark")))
    if spec is None or spec.kind not in ("split", "permuted", "rotated"):
        return {}
    names = _dataset_class_names(config)
    order = info.get("class_order")
    scenario = info.get("scenario")
    out: dict[int, list[str]] = {}
    for task, (task_classes, head) in enumerate(zip(classes, heads), start=1):
        try:
            if spec.kind == "split" and scenario == "class":
                original = [int(order[label]) for label in range(int(head))]
            elif spec.kind == "split":
                original = [int(task_classes[label]) for label in range(int(head))]
            else:  # same classes in every task; class-incremental labels offset per task
                per_task = len(task_classes)
                original = [label % per_task for label in range(int(head))]
        except (IndexError, TypeError, ValueError):
            return {}
        out[task] = [names[c] if names is not None and 0 <= c < len(names) else str(c)
                     for c in original]
    return out


def _class_name(names: Sequence[str] | None, label: int) -> str:
    label = int(label)
    if names is not None and 0 <= label < len(names):
        return names[label]
    return f"class {label}"


def _last_spatial_layer_name(model: keras.Model, layer: str | None, purpose: str) -> str:
    found = base.resolve_conv_layer(model, layer, purpose)
    paths = [path for path, candidate in base.walk_layers(model) if candidate is found]
    return paths[0]


def explain_run(
    run_dir: str | Path,
    method: str,
    task: int | None = None,
    images: int = 8,
    layer: str | None = None,
    seed: int = 0,
) -> list[Path]:
    """Explains a saved run's task models and writes the figures as PNGs.

    Args:
        run_dir: a run directory with `models/task_K.keras` (and, for the image methods,
            `samples/task_K.npz`).
        method: one of `METHODS`:
            - `"grad-cam"`, `"grad-cam++"`: heatmaps of the first `images` validation images of
              each task, for their labels, at `layer` (default: the last convolutional layer).
            - `"occlusion"`: occlusion sensitivity of the same images for their labels (square
              patches of about a seventh of the image side, half-overlapping, baseline 0).
            - `"kernels"`: the kernels of `layer` (default: the last convolutional layer).
            - `"filters"`: activation maximisation of the first `images` filters of `layer`.
            - `"classes"`: activation maximisation of every output class of the task's model.
        task: explain only this task (numbered from 1, as in `task_1.keras`); None explains all.
        images: how many validation images (or filters, for `"filters"`) to show.
        layer: layer name or path (`"base/conv2d"`) for the layer-based methods.
        seed: seeds the starting noise of activation maximisation.

    The image methods caption each image with its label and the model's prediction, by class
    name when the run's `results.json` says which data set it learned (`run_class_names`), else
    by class id (a wrong prediction in red); their maps share one colour scale with a labelled
    colour bar (occlusion: diverging, centred on 0).

    Returns:
        The PNG paths written, under `RUN_DIR/explain/`.

    Raises:
        ValueError: unknown method (the message lists the known ones), no saved models, missing
            samples, a task number the run does not have, a bad layer, or a model the method
            cannot explain (e.g. Grad-CAM on a model without convolutional layers).

    Example:
    ```python
    >>> explain_run("runs/abc123", "grad-cam", images=4)
    [PosixPath('runs/abc123/explain/task_1_grad-cam_base-conv2d_1.png'), ...]
    ```
    """
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}; known methods: {', '.join(METHODS)}.")
    if not isinstance(images, (int, np.integer)) or isinstance(images, bool) or images < 1:
        raise ValueError(f"`images` must be a positive int; got {images!r}.")
    run_dir = Path(run_dir)
    models = find_task_models(run_dir)
    if task is not None:
        if task not in models:
            raise ValueError(
                f"Task {task} is out of range: run {str(run_dir)!r} has saved models for tasks "
                f"{sorted(models)} (numbered from 1)."
            )
        models = {task: models[task]}
    out_dir = RunDir(run_dir).explain_dir
    written = []
    class_names = run_class_names(run_dir)
    for number, model_path in models.items():
        model = load_model(model_path)  # safe_mode; a bad file is one CheckpointError
        prefix = f"task_{number}_{_safe(method)}"
        names = class_names.get(number)
        title = f"Task {number}: {method}"
        if method in ("grad-cam", "grad-cam++", "occlusion"):
            x, y = _load_samples(run_dir, number, images)
            x = _fit_to_model(model, x)
            if method == "occlusion":
                side = min(x.shape[1:3]) if x.ndim == 4 else 1
                patch = max(1, side // 7)
                maps = occlusion_sensitivity(
                    model, x, y, patch_size=patch, stride=max(1, patch // 2), baseline=0.0
                )
                name, symmetric, value_range = f"{prefix}.png", True, None
                meaning = "drop in p(label) when occluded\n(red: the pixel supports the label)"
            else:
                cam = GradCAM if method == "grad-cam" else GradCAMPlusPlus
                where = _last_spatial_layer_name(model, layer, cam.method_name)
                explain = grad_cam if method == "grad-cam" else grad_cam_plus_plus
                maps = explain(model, x, y, layer=where)
                name, symmetric, value_range = f"{prefix}_{_safe(where)}.png", False, (0.0, 1.0)
                meaning = f"{method} evidence for the label\n(1 = the image's strongest)"
                title += f" at {where}"
            predicted = np.argmax(model.predict(x, verbose=0), axis=-1)
            captions = [
                f"{_class_name(names, t)}\npred: {_class_name(names, p)}"
                for t, p in zip(y, predicted, strict=True)
            ]
            if not symmetric:  # a Grad-CAM map of zeros: nothing in the layer spoke for the label
                captions = [c + ("" if np.max(m) > 0 else "\n(no evidence)")
                            for c, m in zip(captions, maps, strict=True)]
            written.append(
                plots.heatmap_overlays(
                    x,
                    maps,
                    out_dir / name,
                    titles=captions,
                    suptitle=f"{title} (caption: label, prediction; red: wrong)",
                    symmetric=symmetric,
                    colorbar_label=meaning,
                    value_range=value_range,
                    title_colors=["black" if t == p else "tab:red"
                                  for t, p in zip(y, predicted, strict=True)],
                )
            )
        elif method == "kernels":
            where = _last_spatial_layer_name(model, layer, "kernel inspection")
            kernels, biases = kernel_weights(model, where)
            captions = [
                f"#{i}" + ("" if biases is None else f" b={biases[i]:.2g}")
                for i in range(len(kernels))
            ]
            if kernels.ndim == 3:  # Conv1D: (filters, width, in) -> one row image per filter
                kernels = kernels.transpose(0, 2, 1)
            written.append(
                plots.image_grid(
                    kernels,
                    out_dir / f"{prefix}_{_safe(where)}.png",
                    titles=captions,
                    suptitle=f"{title} of {where}",
                    symmetric=True,
                )
            )
        elif method == "filters":
            where = _last_spatial_layer_name(model, layer, "filter activation maximisation")
            probe = base.build_probe(model, [base.find_layer(model, where)])
            chosen = list(range(min(images, int(probe.layer_shapes[0][-1]))))
            result = filter_activation_maximization(model, where, chosen, seed=seed)
            written.append(
                plots.image_grid(
                    result,
                    out_dir / f"{prefix}_{_safe(where)}.png",
                    titles=[f"filter {i}" for i in chosen],
                    suptitle=f"{title} of {where}",
                )
            )
        else:  # classes
            result = class_activation_maximization(model, seed=seed)
            written.append(
                plots.image_grid(
                    result,
                    out_dir / f"{prefix}.png",
                    titles=[_class_name(names, i) for i in range(len(result))],
                    suptitle=title,
                )
            )
    return written
