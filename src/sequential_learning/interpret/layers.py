"""Finding layers in a model, descending into nested models.

A task model in this project is `keras.Model(inp, head(base(inp)))` where `base` is itself a model
shared by every task, so the convolutional layers sit one level down. Layers are named by their
plain name (`"conv2d"`) or by a path through the nesting (`"base/conv2d"`).

Example:
```python
conv_layer_paths(task_model)          # ['base/base_conv_1', 'base/base_conv_2']
find_layer(task_model, "base/base_conv_2") is last_conv_layer(task_model)
```
"""

from __future__ import annotations

import keras

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



def sublayers(model: keras.layers.Layer) -> list[keras.layers.Layer]:
    """A model's direct layers, its input layers left out (none for a plain layer).

    Args:
        model: a Keras model or layer.

    Returns:
        Its layers, in order.

    Example:
    ```python
    [layer.name for layer in sublayers(task_model)]   # ['base', 'head']
    ```
    """
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
    ```python
    >>> [path for path, _ in walk_layers(task_model)]
    ['base', 'base/conv2d', 'base/global_average_pooling2d', 'head']
    ```
    """
    found = []
    for layer in sublayers(model):
        path = prefix + layer.name
        found.append((path, layer))
        if isinstance(layer, keras.Model):
            found.extend(walk_layers(layer, path + "/"))
    return found


def is_conv(layer: keras.layers.Layer) -> bool:
    """Whether a layer is a convolution (Conv1D/2D/3D, separable, depthwise or transposed).

    Args:
        layer: a Keras layer.

    Returns:
        True for a convolutional layer.

    Example:
    ```python
    is_conv(keras.layers.Conv2D(8, 3))   # True
    ```
    """
    return isinstance(layer, CONV_TYPES)


def conv_layer_paths(model: keras.Model) -> list[str]:
    """Paths of the convolutional layers of a model, nested ones included, in running order.

    Args:
        model: a Keras model.

    Returns:
        e.g. `["base/conv2d", "base/conv2d_1"]`.

    Example:
    ```python
    conv_layer_paths(task_model)
    ```
    """
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

    Example:
    ```python
    layer = find_layer(task_model, "base/conv2d_1")
    ```
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

    Example:
    ```python
    last_conv_layer(task_model, "Grad-CAM").path   # e.g. "base/conv2d_1"
    ```
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
    """`find_layer(model, layer)`, or the last convolutional layer when `layer` is None.

    Args:
        model: a Keras model.
        layer: a layer name, path (`"base/conv2d"`) or object, or None.
        purpose: the method that needs the layer (`Grad-CAM`), for the message.

    Returns:
        The layer.

    Raises:
        ValueError: when the layer is not found, or `layer` is None and the model has no
            convolutional layer.

    Example:
    ```python
    layer = resolve_conv_layer(task_model, None, "Grad-CAM")
    ```
    """
    if layer is None:
        return last_conv_layer(model, purpose)
    return find_layer(model, layer)
