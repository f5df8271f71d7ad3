"""`importance_maps`: per conv filter, Ω beside the filter's kernel and what excites it most.

Example:
```python
maps = importance_maps(model, load_importance("runs/x"), "base_conv_2", path="maps.png")
maps["order"][:3]    # the three most important filters
```
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from sequential_learning.ablation.aggregation import aggregate_importance, is_plain_conv
from sequential_learning.ablation.options import Importance
from sequential_learning.ablation.plots import plot_importance_maps


def importance_maps(
    model: keras.Model,
    importance: Importance,
    layer: str | keras.layers.Layer | None = None,
    how: str = "mean",
    steps: int = 64,
    seed: int = 0,
    path: str | Path | None = None,
    show: int = 8,
) -> dict:
    """Per conv filter: Ω aggregated, the filter's kernel and its activation-maximisation image.

    Args:
        model: a model with a convolutional layer Ω covers.
        importance: Ω, as for `threshold_model`.
        layer: the convolutional layer (name, path or object); None: the last one.
        how: Ω's reduction per filter.
        steps: gradient-ascent steps of activation maximisation.
        seed: seeds activation maximisation's starting noise.
        path: write a figure there: the `show` most and least important filters, each with its
            kernel (mean over input channels) and activation-maximisation image.
        show: filters drawn at each end.

    Returns:
        `{"layer": name, "importance": (F,), "kernels": (F, kh, kw, in), "images": (F, *input),
        "order": filter indices from most to least important}`.

    Example:
    ```python
    maps = importance_maps(task_model, load_importance("runs/cnn"), path="runs/cnn/importance.png")
    maps["order"][:3]   # the three most important filters
    ```
    """
    from sequential_learning.interpret.activations import filter_activation_maximization
    from sequential_learning.interpret.kernels import kernel_weights
    from sequential_learning.interpret.layers import resolve_conv_layer

    found = resolve_conv_layer(model, layer, "importance maps")
    if not is_plain_conv(found):
        raise ValueError(f"layer {found.name!r} ({type(found).__name__}) is not a plain "
                         "convolution; importance maps need Conv1D/2D/3D")
    per_filter = aggregate_importance(importance, model, "filter", how)
    if found.kernel.path not in per_filter:
        raise ValueError(f"the importance does not cover layer {found.name!r} (its kernel is "
                         f"{found.kernel.path!r}; covered: {', '.join(per_filter) or 'none'})")
    omega = per_filter[found.kernel.path]
    kernels, _ = kernel_weights(model, found)
    images = filter_activation_maximization(model, found, steps=steps, seed=seed)
    result = {"layer": found.name, "importance": omega, "kernels": kernels, "images": images,
              "order": np.argsort(-omega, kind="stable")}
    if path is not None:
        plot_importance_maps(result, path, show)
    return result

