"""Class activation maps from gradients: Grad-CAM and Grad-CAM++.

Both share one template (`BaseCAM`, after pytorch-grad-cam): run the model once with
`training=False`, take the gradient of the target's **logit** (the pre-softmax score) with respect
to a convolutional layer's output `A` (shape `(N, h, w, K)`), weight the `K` channels, and

    map = normalise(upsample(ReLU(Σ_k w_k A_k)))

where `upsample` is bilinear resizing to the input's height and width and `normalise` divides each
map by its maximum, so every map lies in [0, 1] and an all-zero map stays all zero. The two
methods differ only in the channel weights `w_k`:

- Grad-CAM (Selvaraju et al. 2017): `w_k = mean_ij ∂y/∂A_kij`.
- Grad-CAM++ (Chattopadhyay et al. 2018), in its usual closed form for an exponential score:
  `w_k = Σ_ij a_kij ReLU(g_kij)` with `a_kij = g² / (2 g² + Σ_ab A_kab g³)` and `g = ∂y/∂A_kij`
  (`a = 0` where the denominator is 0).

For a model whose convolutional features go straight into global average pooling and a dense
layer, Grad-CAM equals CAM (Zhou et al. 2016): `ReLU(Σ_k w_ck A_k)`, normalised.

Every backend: the math is `keras.ops`; `∂y/∂A` comes from `backend.ops().input_gradients` of the
logits as a function of `A` (the probe replays the graph with the layer's output replaced by `A`,
see `interpret/probe.py`), and the whole map is one compiled function per (model, layer).
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from sequential_learning import backend
from sequential_learning.interpret import base
from sequential_learning.interpret.probe import compile_for, fixed_batches, pad_rows


class BaseCAM:
    """Template for gradient-weighted class activation maps.

    Subclasses override only `channel_weights`. Instances keep one compiled function per
    (model, layer), so repeated calls on the same model are fast.

    Args:
        model: a Sequential or functional Keras model (nested base models are fine) that maps
            images `(N, H, W, C)` to logits or softmax probabilities.
        layer: the layer to explain: a convolutional layer (or any layer whose output is
            `(N, h, w, channels)`), by name, path (`"base/conv2d"`) or object. None picks the last
            convolutional layer, searching nested models.

    Example:
    ```python
    >>> maps = GradCAM(model)(images, targets=labels)   # (N, H, W) in [0, 1]
    ```
    """

    method_name = "CAM"

    def __init__(self, model: keras.Model, layer: str | keras.layers.Layer | None = None) -> None:
        self.model = model
        self.layer = base.resolve_conv_layer(model, layer, self.method_name)
        self.probe = base.build_probe(model, [self.layer])
        activation_shape = self.probe.layer_shapes[0]
        if len(activation_shape) != 4:
            raise ValueError(
                f"Layer {self.layer.name!r} ({type(self.layer).__name__}) is not convolutional: its "
                f"output has shape {tuple(activation_shape)}, and {self.method_name} needs a layer "
                "whose output is (batch, height, width, channels). Convolutional layers of model "
                f"{model.name!r}: {base.conv_layer_paths(model) or 'none'}."
            )
        input_shape = base.model_input_shape(model)
        if len(input_shape) != 4:
            raise ValueError(
                f"{self.method_name} needs image inputs (batch, height, width, channels); model "
                f"{model.name!r} takes {input_shape}."
            )
        self._num_classes = self.probe.num_classes
        self._backend = backend.ops()  # resolved here, not inside the traced function
        self._compute = compile_for(model, self._maps)

    def channel_weights(self, activations: Any, grads: Any) -> Any:
        """Weights of the channels, shape `(N, K)`, from `A` and `∂y/∂A` (both `(N, h, w, K)`).

        Args:
            activations: the layer's output `A`, `(N, h, w, K)`.
            grads: the gradient of the target's logit with respect to `A`, `(N, h, w, K)`.

        Returns:
            The channel weights `(N, K)` (a tensor of the running backend).

        Example:
        ```python
        weights = GradCAM(model).channel_weights(activations, grads)
        ```
        """
        raise NotImplementedError

    def _maps(self, images: Any, targets: Any) -> Any:
        with self._backend.no_grad():
            activations = ops.stop_gradient(self.probe.forward(images)[0])

        def score(a: Any) -> tuple[Any, None]:
            logits = self.probe.forward(images, replace={self.layer: a})[-1]
            chosen = ops.take_along_axis(logits, ops.expand_dims(targets, 1), axis=1)
            # Each image's score depends only on its own activations, so one gradient of the
            # sum gives every image's gradient (zero where the logits ignore the layer).
            return ops.sum(chosen), None

        _, _, (grads,) = self._backend.input_gradients(score, [activations])
        weights = self.channel_weights(activations, grads)
        cam = ops.relu(ops.einsum("nhwk,nk->nhw", activations, weights))
        size = tuple(images.shape[1:3])
        if None in size:  # a model taking any image size, traced without a static one
            size = tuple(ops.shape(images)[1:3])
        cam = ops.image.resize(cam[..., None], size, interpolation="bilinear")[..., 0]
        peak = ops.max(cam, axis=(1, 2), keepdims=True)
        return ops.divide_no_nan(cam, peak)

    def __call__(self, images: Any, targets: Any, batch_size: int = 64) -> np.ndarray:
        """Computes the maps of a batch of images.

        Args:
            images: array of shape `(N, H, W, C)` matching the model's input.
            targets: the class to explain for each image, shape `(N,)` (or one int for all).
            batch_size: images per gradient computation.

        Returns:
            Float32 array `(N, H, W)`, each map scaled to [0, 1] (all zero where the target's
            logit has no positive evidence in the layer).
        """
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive int; got {batch_size!r}.")
        x = base.validate_images(self.model, images, require_spatial=True)
        y = base.validate_targets(targets, len(x), self._num_classes)
        chunks = []
        for start, stop, size in fixed_batches(len(x), batch_size):
            maps = self._compute(
                ops.convert_to_tensor(pad_rows(x[start:stop], size)),
                ops.convert_to_tensor(pad_rows(y[start:stop], size)),
            )
            chunks.append(ops.convert_to_numpy(maps)[: stop - start])
        return np.concatenate(chunks, axis=0).astype(np.float32, copy=False)


class GradCAM(BaseCAM):
    """Grad-CAM: channel weight = spatial mean of the gradient (see `BaseCAM`).

    Args:
        model: a Keras model mapping images `(N, H, W, C)` to logits or probabilities.
        layer: the layer to explain, by name, path or object; None: the last convolutional one.

    Example:
    ```python
    maps = GradCAM(model, layer="base/conv2d_1")(images, targets=labels)   # (N, H, W)
    ```
    """

    method_name = "Grad-CAM"

    def channel_weights(self, activations: Any, grads: Any) -> Any:
        """`mean_ij ∂y/∂A_kij`, shape `(N, K)` (see `BaseCAM.channel_weights`).

        Args:
            activations: `A`, `(N, h, w, K)` (unused).
            grads: `∂y/∂A`, `(N, h, w, K)`.

        Returns:
            The weights `(N, K)`.

        Example:
        ```python
        GradCAM(model).channel_weights(activations, grads)
        ```
        """
        return ops.mean(grads, axis=(1, 2))


class GradCAMPlusPlus(BaseCAM):
    """Grad-CAM++: positive gradients weighted by the closed-form α (see the module docstring).

    Args:
        model: a Keras model mapping images `(N, H, W, C)` to logits or probabilities.
        layer: the layer to explain, by name, path or object; None: the last convolutional one.

    Example:
    ```python
    maps = GradCAMPlusPlus(model)(images, targets=labels)   # (N, H, W) in [0, 1]
    ```
    """

    method_name = "Grad-CAM++"

    def channel_weights(self, activations: Any, grads: Any) -> Any:
        """`Σ_ij α_kij ReLU(g_kij)`, shape `(N, K)` (see the module docstring).

        Args:
            activations: `A`, `(N, h, w, K)`.
            grads: `g = ∂y/∂A`, `(N, h, w, K)`.

        Returns:
            The weights `(N, K)`.

        Example:
        ```python
        GradCAMPlusPlus(model).channel_weights(activations, grads)
        ```
        """
        g2 = ops.square(grads)
        g3 = g2 * grads
        activation_sums = ops.sum(activations, axis=(1, 2), keepdims=True)
        # No ε in the denominator: with small gradients (g² ~ 1e-5) it biases α visibly. Only
        # positive gradients count, and an exactly zero denominator gives α = 0.
        alpha = ops.divide_no_nan(g2, 2.0 * g2 + activation_sums * g3)
        return ops.sum(alpha * ops.relu(grads), axis=(1, 2))


def _explainer(cls: type[BaseCAM], model: keras.Model, layer: Any) -> BaseCAM:
    resolved = base.resolve_conv_layer(model, layer, cls.method_name)
    cache = base.model_cache(model)
    key = (cls.__name__, id(resolved))
    if key not in cache:
        cache[key] = cls(model, resolved)
    return cache[key]


def grad_cam(
    model: keras.Model,
    images: Any,
    targets: Any,
    layer: str | keras.layers.Layer | None = None,
    batch_size: int = 64,
) -> np.ndarray:
    """Grad-CAM maps of a batch of images.

    Args:
        model: a Sequential or functional model (a task model built on a shared nested base is
            fine) from images to logits (or softmax probabilities: the softmax is left out).
        images: array `(N, H, W, C)` matching the model's input.
        targets: the class to explain for each image, shape `(N,)`, or one int for all.
        layer: a convolutional layer (name, path like `"base/conv2d"`, or object); None picks
            the last convolutional layer, searching nested models.
        batch_size: images per gradient computation.

    Returns:
        Float32 array `(N, H, W)`: ReLU of the gradient-weighted channel sum, upsampled to the
        input size, divided by its maximum per image (all-zero maps stay zero).

    Raises:
        ValueError: unknown layer (the message lists the convolutional layers), a layer without
            a spatial output, a model without convolutional layers, or bad images / targets.

    Example:
    ```python
    >>> maps = grad_cam(task_model, x_val[:8], y_val[:8])
    >>> maps.shape, float(maps.max())
    ((8, 28, 28), 1.0)
    ```
    """
    return _explainer(GradCAM, model, layer)(images, targets, batch_size=batch_size)


def grad_cam_plus_plus(
    model: keras.Model,
    images: Any,
    targets: Any,
    layer: str | keras.layers.Layer | None = None,
    batch_size: int = 64,
) -> np.ndarray:
    """Grad-CAM++ maps of a batch of images; arguments and result as in `grad_cam`.

    Args:
        model: a Keras model mapping images `(N, H, W, C)` to logits or probabilities.
        images: the images, `(N, H, W, C)` (or one image `(H, W, C)`).
        targets: the class explained per image (an int, or one per image).
        layer: the layer to explain; None: the last convolutional one.
        batch_size: images per compiled call.

    Returns:
        The maps, a float32 NumPy array `(N, H, W)` in [0, 1].

    Example:
    ```python
    maps = grad_cam_plus_plus(task_model, x_val[:8], y_val[:8], layer="base/conv2d_1")
    ```
    """
    return _explainer(GradCAMPlusPlus, model, layer)(images, targets, batch_size=batch_size)
