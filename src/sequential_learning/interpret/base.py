"""Shared helpers for the interpretability functions.

Three jobs live here so that every method does them the same way:

- **Finding layers** in a model, descending into nested models. A task model in this project is
  `keras.Model(inp, head(base(inp)))` where `base` is itself a model shared by every task, so the
  convolutional layers sit one level down. Layers are named by their plain name (`"conv2d"`) or by
  a path through the nesting (`"base/conv2d"`).
- **Probing**: getting the activations of chosen inner layers *and* the final logits in one
  forward pass (`Probe`, `build_probe`). Keras cannot wire `inner_layer.output` of a nested
  model to the outer model's inputs, so the probe runs the model's graph itself, descending into
  the nested models that hold the chosen layers and recording their outputs on the way. It uses
  the model's own layers (and so its current weights); it is cached on the model.
- **Validating input**: images, targets and layer names, with errors that say what is wrong and
  what was expected.

Logits: the probe's last output is the model's output *before* a final softmax. A model whose last
layer is a `Softmax` layer, a softmax `Activation` layer, or a layer built with
`activation="softmax"` (e.g. `Dense(10, activation="softmax")`) has that softmax removed in the
probe; any other final activation is taken as it is. Probabilities are always
`softmax(logits)`, which for a softmax model is exactly its output. (A layer's built-in softmax is
switched off for the duration of that one call, so explaining such a model while another thread
runs it is not safe; models ending in plain logits, as this project builds them, are unaffected.)

Keras internals used: the probe walks a functional model's graph with `Functional`'s own
`_run_through_graph` (the walk `Functional.call` runs), and reads `_call_has_training_arg` and
the output tensor's `_keras_history`. Checked on Keras 3.15; `tests/interpret` covers them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

CONV_TYPES: tuple[type, ...] = (
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
    keras.layers.SeparableConv1D,
    keras.layers.SeparableConv2D,
    keras.layers.DepthwiseConv1D,
    keras.layers.DepthwiseConv2D,
    keras.layers.Conv1DTranspose,
    keras.layers.Conv2DTranspose,
    keras.layers.Conv3DTranspose,
)


# --------------------------------------------------------------------------------------------
# Finding layers
# --------------------------------------------------------------------------------------------


def _sublayers(model: keras.layers.Layer) -> list[keras.layers.Layer]:
    layers = getattr(model, "layers", None) or []
    return [layer for layer in layers if not isinstance(layer, keras.layers.InputLayer)]


def walk_layers(model: keras.Model, prefix: str = "") -> list[tuple[str, keras.layers.Layer]]:
    """Lists every layer of a model depth first, descending into nested models.

    Args:
        model: a Keras model.
        prefix: prepended to every path (used by the recursion).

    Returns:
        `(path, layer)` pairs in the order the model runs them; a nested model is listed before
        its own layers, and a layer's path is `"outer_layer/inner_layer"`.

    Example:
    >>> [path for path, _ in walk_layers(task_model)]
    ['base', 'base/conv2d', 'base/global_average_pooling2d', 'head']
    """
    found = []
    for layer in _sublayers(model):
        path = prefix + layer.name
        found.append((path, layer))
        if isinstance(layer, keras.Model):
            found.extend(walk_layers(layer, path + "/"))
    return found


def is_conv(layer: keras.layers.Layer) -> bool:
    """Whether a layer is a convolution (Conv1D/2D/3D, separable, depthwise or transposed)."""
    return isinstance(layer, CONV_TYPES)


def conv_layer_paths(model: keras.Model) -> list[str]:
    """Paths of the convolutional layers of a model, nested ones included, in running order."""
    return [path for path, layer in walk_layers(model) if is_conv(layer)]


def _describe_layers(model: keras.Model) -> str:
    convs = conv_layer_paths(model)
    everything = [path for path, _ in walk_layers(model)]
    conv_text = ", ".join(repr(p) for p in convs) if convs else "none"
    return (
        f"convolutional layers: {conv_text}; all layers: {', '.join(repr(p) for p in everything)}"
    )


def find_layer(model: keras.Model, layer: str | keras.layers.Layer) -> keras.layers.Layer:
    """Finds a layer by name, path or identity, searching nested models.

    Args:
        model: a Keras model.
        layer: a layer name (`"conv2d"`), a path through nested models (`"base/conv2d"`), or a
            layer object that belongs to the model.

    Returns:
        The layer.

    Raises:
        ValueError: the layer is not in the model, or a plain name matches several nested
            layers; the message lists the model's convolutional layers.
    """
    walked = walk_layers(model)
    if isinstance(layer, keras.layers.Layer):
        if any(found is layer for _, found in walked):
            return layer
        raise ValueError(
            f"Layer {layer.name!r} is not part of model {model.name!r}; {_describe_layers(model)}."
        )
    if not isinstance(layer, str):
        raise ValueError(
            f"`layer` must be a layer name, a path like 'base/conv2d' or a layer object; "
            f"got {type(layer).__name__}."
        )
    by_path = [found for path, found in walked if path == layer]
    if by_path:
        return by_path[0]
    by_name = [(path, found) for path, found in walked if found.name == layer]
    if len(by_name) == 1:
        return by_name[0][1]
    if len(by_name) > 1:
        paths = ", ".join(repr(path) for path, _ in by_name)
        raise ValueError(
            f"Layer name {layer!r} is ambiguous in model {model.name!r}: it matches {paths}. "
            "Give the full path instead."
        )
    raise ValueError(
        f"No layer named {layer!r} in model {model.name!r}; {_describe_layers(model)}."
    )


def last_conv_layer(model: keras.Model, purpose: str = "this method") -> keras.layers.Layer:
    """The last convolutional layer of a model in running order, searching nested models.

    Args:
        model: a Keras model.
        purpose: named in the error message (e.g. `"Grad-CAM"`).

    Returns:
        The layer.

    Raises:
        ValueError: the model has no convolutional layer.
    """
    convs = [layer for _, layer in walk_layers(model) if is_conv(layer)]
    if not convs:
        everything = ", ".join(repr(path) for path, _ in walk_layers(model))
        raise ValueError(
            f"Model {model.name!r} has no convolutional layer; {purpose} needs one (Conv2D or "
            f"another convolution, possibly inside a nested base model). Its layers are: "
            f"{everything}. Occlusion sensitivity works on any image model."
        )
    return convs[-1]


def resolve_conv_layer(
    model: keras.Model, layer: str | keras.layers.Layer | None, purpose: str
) -> keras.layers.Layer:
    """`find_layer(model, layer)`, or the last convolutional layer when `layer` is None."""
    if layer is None:
        return last_conv_layer(model, purpose)
    return find_layer(model, layer)


# Probing: activations of inner layers and logits in one pass
# --------------------------------------------------------------------------------------------


def _is_softmax(activation: Any) -> bool:
    return activation is keras.activations.softmax or (
        getattr(activation, "__name__", None) == "softmax"
    )


def _call_without_activation(op: keras.layers.Layer, args: tuple, kwargs: dict) -> Any:
    """Calls a layer with its activation switched off (used to drop a final softmax)."""
    saved = op.activation
    op.activation = keras.activations.linear
    try:
        return op(*args, **kwargs)
    finally:
        op.activation = saved


def _contained_ids(model: Any) -> set[int]:
    if not isinstance(model, keras.Model):
        return set()
    return {id(layer) for _, layer in walk_layers(model)}


class _Replay:
    """Runs a model's graph op by op, descending into nested models, recording chosen outputs.

    Every layer that takes a `training` argument gets `training=False`.
    """

    def __init__(self, targets: Sequence[keras.layers.Layer]) -> None:
        self.target_ids = {id(layer) for layer in targets}
        self.captured: dict[int, Any] = {}

    def run(self, model: keras.Model, inputs: Any, strip_softmax: bool) -> Any:
        if isinstance(model, keras.Sequential):
            x = inputs
            layers = _sublayers(model)
            for i, layer in enumerate(layers):
                x = self.call(layer, (x,), {}, strip_softmax and i == len(layers) - 1)
            return x
        if hasattr(model, "_run_through_graph"):  # a functional model
            if len(model.outputs) != 1:
                raise ValueError(
                    f"Model {model.name!r} has {len(model.outputs)} outputs; the "
                    "interpretability functions need a model with a single output (the logits)."
                )
            history = getattr(model.outputs[0], "_keras_history", None)
            output_op = history.operation if history is not None else None

            def operation_fn(op: Any) -> Any:
                def call(*args: Any, **kwargs: Any) -> Any:
                    return self.call(op, args, kwargs, strip_softmax and op is output_op)

                return call

            # Keras' own graph walk (what `Functional.call` runs), with our call per operation.
            outputs = model._run_through_graph(
                keras.tree.flatten(inputs), operation_fn=operation_fn
            )
            if isinstance(outputs, (list, tuple)) and len(outputs) == 1:
                outputs = outputs[0]
            return outputs
        raise ValueError(
            f"Model {model.name!r} is a subclassed model ({type(model).__name__}); its inner "
            "layers cannot be reached. Use a Sequential or functional model (nested ones are fine)."
        )

    def call(self, op: Any, args: tuple, kwargs: dict, strip_softmax: bool) -> Any:
        is_target = id(op) in self.target_ids
        holds_targets = not is_target and bool(_contained_ids(op) & self.target_ids)
        if isinstance(op, keras.Model) and (holds_targets or strip_softmax):
            out = self.run(op, args[0] if len(args) == 1 else list(args), strip_softmax)
        else:
            if getattr(op, "_call_has_training_arg", False):
                kwargs = {**kwargs, "training": False}
            if strip_softmax and isinstance(op, keras.layers.Softmax):
                out = args[0]
            elif strip_softmax and _is_softmax(getattr(op, "activation", None)):
                if isinstance(op, keras.layers.Activation):
                    out = args[0]
                else:
                    out = _call_without_activation(op, args, kwargs)
            else:
                out = op(*args, **kwargs)
        if is_target:
            self.captured[id(op)] = out
        return out


def model_input_shape(model: keras.Model) -> tuple:
    """The model's single input shape, batch axis included, e.g. `(None, 28, 28, 1)`."""
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not inputs:
        raise ValueError(
            f"Model {model.name!r} has no known input shape: build it first (give it a "
            "`keras.Input`, or call it on a batch)."
        )
    if len(inputs) != 1:
        raise ValueError(
            f"Model {model.name!r} has {len(inputs)} inputs; the interpretability functions need "
            "a model with a single image input."
        )
    return tuple(inputs[0].shape)


class Probe:
    """Returns chosen inner layers' outputs and the logits of a (possibly nested) model.

    Keras cannot wire the output of a layer inside a nested model to the outer model's input, and
    a flattened copy of the graph can hold two layers of the same name (legal in separate nested
    models, illegal in one). So the probe does not build a new model: it runs the model's own
    graph op by op (Keras' `Functional` graph walk), descending into the nested models that hold
    the chosen layers, with `training=False` for every layer that takes it. It shares the model's
    layers, so it always sees the current weights.

    Use `forward` inside your own `tf.function` / `GradientTape`, or call the probe for a
    compiled forward pass.

    Args:
        model: a Sequential or functional Keras model with one input and one output; nested
            Sequential / functional models inside it are fine.
        layers: layers of `model` (or of models nested in it) whose outputs to return.

    Example:
    >>> probe = build_probe(task_model, [find_layer(task_model, "base/conv2d")])
    >>> activations, logits = probe(images)
    """

    def __init__(self, model: keras.Model, layers: Sequence[keras.layers.Layer] = ()) -> None:
        self.model = model
        self.layers = list(layers)
        self.input_shape = model_input_shape(model)
        spec = tf.TensorSpec((None, *self.input_shape[1:]), tf.float32)
        self._compiled = tf.function(self.forward, input_signature=[spec])
        # Tracing once checks that the layers are reachable and gives the output shapes.
        outputs = self._compiled.get_concrete_function().structured_outputs
        shapes = [tuple(t.shape) for t in keras.tree.flatten(outputs)]
        self.layer_shapes: list[tuple] = shapes[:-1]
        self.logits_shape: tuple = shapes[-1]

    @property
    def num_classes(self) -> int:
        """The number of logits."""
        return int(self.logits_shape[-1])

    def forward(self, images: Any) -> Any:
        """`[*layer_outputs, logits]` (just `logits` without layers), uncompiled."""
        replay = _Replay(self.layers)
        logits = replay.run(self.model, images, strip_softmax=True)
        missing = [layer.name for layer in self.layers if id(layer) not in replay.captured]
        if missing:
            raise ValueError(
                f"Layer(s) {missing} of model {self.model.name!r} are not on the path from its "
                "input to its output."
            )
        if not self.layers:
            return logits
        return [replay.captured[id(layer)] for layer in self.layers] + [logits]

    def __call__(self, images: Any) -> Any:
        """The compiled `forward` (inference mode)."""
        return self._compiled(tf.convert_to_tensor(images, tf.float32))


class _Cache:
    """Per-model cache of probes and compiled functions, kept on the model itself.

    Kept on the model (outside Keras' attribute tracking) so that it lives exactly as long as the
    model; never copied or serialised.
    """

    def __init__(self) -> None:
        self.entries: dict = {}

    def __deepcopy__(self, memo: dict) -> _Cache:
        return _Cache()

    def __getstate__(self) -> dict:
        return {"entries": {}}


_CACHE_ATTRIBUTE = "_sequential_learning_interpret_cache"


def model_cache(model: keras.Model) -> dict:
    """A dict cached on the model, for probes and compiled functions built for it."""
    cache = model.__dict__.get(_CACHE_ATTRIBUTE)
    if cache is None:
        cache = _Cache()
        object.__setattr__(model, _CACHE_ATTRIBUTE, cache)  # bypasses Keras' tracking
    return cache.entries


def build_probe(model: keras.Model, layers: Sequence[keras.layers.Layer] = ()) -> Probe:
    """A `Probe` for `[*layer_outputs, logits]` of a model, cached per model and layers.

    A final softmax is left out (see the module docstring), so the last output is logits.

    Args:
        model: a Sequential or functional Keras model with one input and one output; nested
            Sequential / functional models inside it are fine.
        layers: layers of `model` (or of models nested in it) whose outputs to return.

    Returns:
        The probe: `probe(images)` gives `[*layer_outputs, logits]`, or just `logits` when
        `layers` is empty.

    Example:
    >>> activations, logits = build_probe(task_model, [last_conv_layer(task_model)])(images)
    """
    cache = model_cache(model)
    key = ("probe", tuple(id(layer) for layer in layers))
    if key not in cache:
        cache[key] = Probe(model, layers)
    return cache[key]


# --------------------------------------------------------------------------------------------
# Validating input
# --------------------------------------------------------------------------------------------


def _shape_text(shape: Sequence[int | None]) -> str:
    return "(" + ", ".join("N" if i == 0 else str(d) for i, d in enumerate(shape)) + ")"


def validate_images(model: keras.Model, images: Any, require_spatial: bool = False) -> np.ndarray:
    """Checks a batch of images against the model's input shape.

    Args:
        model: the model the images are for.
        images: array-like of shape `(N, *input_shape)`.
        require_spatial: also require images shaped `(N, height, width, channels)`.

    Returns:
        The images as a float32 NumPy array.

    Raises:
        ValueError: not numeric, an empty batch, a single image without the batch axis, or a
            shape the model does not take.
    """
    expected = model_input_shape(model)
    name = model.name
    try:
        array = np.asarray(images, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"`images` must be a numeric array; could not convert it: {error}"
        ) from error
    per_image = expected[1:]
    matches = array.ndim == len(expected) and all(
        want is None or want == got for want, got in zip(per_image, array.shape[1:], strict=True)
    )
    if not matches:
        if array.ndim == len(per_image) and all(
            want is None or want == got for want, got in zip(per_image, array.shape, strict=True)
        ):
            raise ValueError(
                f"`images` must be a batch of shape {_shape_text(expected)}; got a single image "
                f"of shape {array.shape}. Add the batch axis: `images[None]`."
            )
        raise ValueError(
            f"`images` have shape {array.shape}; model {name!r} expects a batch of shape "
            f"{_shape_text(expected)}."
        )
    if array.shape[0] == 0:
        raise ValueError("`images` is an empty batch; give at least one image.")
    if require_spatial and array.ndim != 4:
        raise ValueError(
            f"This method needs images shaped (N, height, width, channels); model "
            f"{name!r} takes inputs of shape {_shape_text(expected)}."
        )
    return array


def validate_targets(targets: Any, n: int, num_classes: int) -> np.ndarray:
    """Checks the target class of each image.

    Args:
        targets: one class index per image (shape `(n,)`), or a single int for every image.
        n: the number of images.
        num_classes: the number of model outputs.

    Returns:
        The targets as an int32 array of shape `(n,)`.

    Raises:
        ValueError: wrong length, not integers (e.g. one-hot labels), or out of range.
    """
    array = np.asarray(targets)
    if array.ndim == 0:
        array = np.full((n,), array)
    if array.ndim != 1:
        raise ValueError(
            f"`targets` must be one class index per image, shape ({n},); got shape {array.shape}"
            + (" (one-hot labels? use `labels.argmax(-1)`)" if array.ndim == 2 else "")
            + "."
        )
    if array.shape[0] != n:
        raise ValueError(
            f"`targets` has {array.shape[0]} entries but there are {n} images; give one class "
            "index per image."
        )
    if not np.issubdtype(array.dtype, np.integer):
        if np.issubdtype(array.dtype, np.floating) and np.all(np.mod(array, 1) == 0):
            array = array.astype(np.int64)
        else:
            raise ValueError(f"`targets` must be integer class indices; got dtype {array.dtype}.")
    bad = (array < 0) | (array >= num_classes)
    if np.any(bad):
        raise ValueError(
            f"`targets` must lie in [0, {num_classes}) (the model has {num_classes} outputs); "
            f"got {array[bad][:5].tolist()}."
        )
    return array.astype(np.int32)


def pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    """`3 -> (3, 3)`; `(3, 4) -> (3, 4)`; checks that both are positive integers."""
    values = (value, value) if np.ndim(value) == 0 else tuple(value)
    if len(values) != 2 or not all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in values
    ):
        raise ValueError(f"`{name}` must be a positive int or a pair of them; got {value!r}.")
    return int(values[0]), int(values[1])
