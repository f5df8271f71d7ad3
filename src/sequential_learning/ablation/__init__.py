"""Model augmentation by weight importance: does Ω explain what a network learned?

The reference design's `ModelAugmentation` thresholded weights by their importance Ω. This package
asks the question with measurements, one module per concept:

* `options`: the ablation's options (`LEVELS`, `HOWS`, `SCOPES`, `ORDERS`, `ACTIONS`) and checks.
* `aggregation`: `aggregate_importance`, Ω per weight, per unit or per convolutional filter.
* `thresholding`: `threshold_model`, a *new* model in which a fraction of the weights chosen by Ω
  is set to zero, to noise N(0, std(w)/10), or back to an anchor θ*.
* `curves`: `ablation_curve`, every task's accuracy as the fraction grows, per order.
* `maps`: `importance_maps`, per conv filter Ω beside its kernel and activation-maximisation image.
* `plots`: `ablation.png` and the importance maps' figure (Agg canvas, never shown).
* `settings`: output names and labels of `seql augment`'s settings.
* `run`: `augment_run`, the work behind `seql augment RUN_DIR`.

Explanation drift (`seql drift`) lives in `sequential_learning.interpret.drift`.

Example:
```python
from sequential_learning.ablation import ablation_curve, threshold_model
from sequential_learning.checkpoint import load_importance, load_task_models
models = load_task_models("runs/x")
importance = load_importance("runs/x")            # (paths, arrays), summed over tasks
pruned = threshold_model(models[0], importance, 0.2, order="low")   # named task_1_zero_low_0.2
table = ablation_curve(tasks, models, importance, [0.1, 0.2, 0.5], path="ablation.png")
```
"""

from sequential_learning.ablation.aggregation import aggregate_importance, as_importance
from sequential_learning.ablation.curves import (
    ablation_curve,
    ablation_drops,
    ablation_rows,
    ablation_text,
    accuracy,
)
from sequential_learning.ablation.maps import importance_maps
from sequential_learning.ablation.options import (
    ACTIONS,
    HOWS,
    LEVELS,
    ORDERS,
    SCOPES,
    check_fraction,
    parse_fractions,
)
from sequential_learning.ablation.plots import (
    importance_maps_figure,
    plot_ablation,
    plot_importance_maps,
)
from sequential_learning.ablation.run import augment_run, evaluation_tasks, folded_anchor
from sequential_learning.ablation.settings import (
    AUGMENT_DEFAULTS,
    augment_settings_label,
    augment_settings_suffix,
)
from sequential_learning.ablation.thresholding import NOISE_DIVISOR, ablation_name, threshold_model

__all__ = [
    "ACTIONS",
    "AUGMENT_DEFAULTS",
    "HOWS",
    "LEVELS",
    "NOISE_DIVISOR",
    "ORDERS",
    "SCOPES",
    "ablation_curve",
    "ablation_drops",
    "ablation_name",
    "ablation_rows",
    "ablation_text",
    "accuracy",
    "aggregate_importance",
    "as_importance",
    "augment_run",
    "augment_settings_label",
    "augment_settings_suffix",
    "check_fraction",
    "evaluation_tasks",
    "folded_anchor",
    "importance_maps",
    "importance_maps_figure",
    "parse_fractions",
    "plot_ablation",
    "plot_importance_maps",
    "threshold_model",
]
