"""Kernel inspection: a convolutional layer's weights, one entry per filter."""

from __future__ import annotations

import keras
import numpy as np

from sequential_learning.interpret import base


def kernel_weights(
    model: keras.Model, layer: str | keras.layers.Layer | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """A convolutional layer's kernels and biases, filter first.

    Args:
        model: a Keras model; nested base models are searched.
        layer: the convolutional layer (name, path like `"base/conv2d"`, or object); None picks
            the last convolutional layer.

    Returns:
        `(kernels, biases)`. For `Conv2D` the kernels have shape
        `(filters, kernel_height, kernel_width, input_channels)`: the layer's kernel with its
        output axis moved to the front (likewise for 1D / 3D and transposed convolutions, whose
        output axis Keras keeps second to last). For `DepthwiseConv2D` each of the
        `input_channels * depth_multiplier` filters sees one input channel, so the shape is
        `(filters, kernel_height, kernel_width, 1)`; for separable convolutions the depthwise
        kernels are returned that way. `biases` has shape `(filters,)`, or is None when the layer
        has no bias.

    Raises:
        ValueError: the layer is unknown or not convolutional (the message lists the
            convolutional layers).

    Example:
    ```python
    >>> kernels, biases = kernel_weights(task_model, "base/conv2d")
    >>> kernels.shape, biases.shape
    ((32, 3, 3, 1), (32,))
    ```
    """
    found = base.resolve_conv_layer(model, layer, "kernel inspection")
    if not base.is_conv(found):
        raise ValueError(
            f"Layer {found.name!r} ({type(found).__name__}) is not convolutional; kernel "
            f"inspection needs one of: {base.conv_layer_paths(model) or 'none'}."
        )
    bias = getattr(found, "bias", None)
    biases = None if bias is None else np.asarray(keras.ops.convert_to_numpy(bias))
    separable = isinstance(found, (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D))
    if separable or isinstance(found, (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)):
        depthwise = found.depthwise_kernel if separable else found.kernel
        weights = np.asarray(keras.ops.convert_to_numpy(depthwise))  # (..., in, multiplier)
        per_filter = weights.reshape(*weights.shape[:-2], -1)  # filter = in * multiplier + m
        kernels = np.moveaxis(per_filter, -1, 0)[..., None]
        if separable:
            biases = None  # the bias belongs to the pointwise filters, not these
        return kernels, biases
    weights = np.asarray(keras.ops.convert_to_numpy(found.kernel))
    transposed = isinstance(
        found,
        (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose),
    )
    out_axis = -2 if transposed else -1
    kernels = np.moveaxis(weights, out_axis, 0)
    return kernels, biases
