"""The small base every interpretability method shares, one concept per module:

- `interpret/layers.py`: finding layers, descending into nested models (`find_layer`,
  `walk_layers`, `conv_layer_paths`, `last_conv_layer`, `resolve_conv_layer`).
- `interpret/probe.py`: the activations of inner layers and the logits in one pass (`Probe`,
  `build_probe`, `model_cache`, `model_input_shape`).
- `interpret/inputs.py`: validating images, targets and patch sizes.

The methods import this module as `base` (`base.find_layer`, `base.build_probe`, ...).

Example:
```python
from sequential_learning.interpret import base
probe = base.build_probe(model, [base.last_conv_layer(model)])
```
"""

from sequential_learning.interpret.inputs import pair, validate_images, validate_targets
from sequential_learning.interpret.layers import (
    CONV_TYPES,
    conv_layer_paths,
    find_layer,
    is_conv,
    last_conv_layer,
    resolve_conv_layer,
    walk_layers,
)
from sequential_learning.interpret.probe import Probe, build_probe, model_cache, model_input_shape

__all__ = [
    "CONV_TYPES",
    "Probe",
    "build_probe",
    "conv_layer_paths",
    "find_layer",
    "is_conv",
    "last_conv_layer",
    "model_cache",
    "model_input_shape",
    "pair",
    "resolve_conv_layer",
    "validate_images",
    "validate_targets",
    "walk_layers",
]
