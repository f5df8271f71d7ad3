"""Interpretability for convolutional networks: NumPy arrays in, NumPy arrays out.

Every function takes a batch, runs the model with `training=False`, takes the target as one class
index per image, and works on plain Sequential / functional models and on task models built from
a shared (nested) base model. Plotting is separate (`interpret.plots`).
"""

from sequential_learning.interpret.activations import (
    class_activation_maximization,
    filter_activation_maximization,
    layer_activations,
)
from sequential_learning.interpret.base import (
    build_probe,
    conv_layer_paths,
    find_layer,
    last_conv_layer,
    walk_layers,
)
from sequential_learning.interpret.gradcam import (
    BaseCAM,
    GradCAM,
    GradCAMPlusPlus,
    grad_cam,
    grad_cam_plus_plus,
)
from sequential_learning.interpret.kernels import kernel_weights
from sequential_learning.interpret.occlusion import occlusion_sensitivity
from sequential_learning.interpret.run import METHODS, explain_run, run_class_names

__all__ = [
    "METHODS",
    "BaseCAM",
    "GradCAM",
    "GradCAMPlusPlus",
    "build_probe",
    "class_activation_maximization",
    "conv_layer_paths",
    "explain_run",
    "filter_activation_maximization",
    "find_layer",
    "grad_cam",
    "grad_cam_plus_plus",
    "kernel_weights",
    "last_conv_layer",
    "layer_activations",
    "occlusion_sensitivity",
    "run_class_names",
    "walk_layers",
]
