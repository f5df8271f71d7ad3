"""Shared bases and per-task heads, built with the functional API so layers are shared.

Bases: `mlp_base`, `cnn_base` and `resnet18_base` (the ResNet-18 of the GEM and DER papers, as
Mammoth's `backbone/ResNet18.py`). Each takes `preprocessing`: layers applied to the inputs
first (`augmentation.input_preprocessing`: random crop + flip in training, standardisation).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras


def _inputs(input_shape: Sequence[int], name: str, preprocessing: Sequence) -> tuple:
    """The base's `keras.Input` and the tensor after the preprocessing layers."""
    inputs = keras.Input(tuple(input_shape), name=f"{name}_input")
    h = inputs
    for layer in preprocessing:
        h = layer(h)
    return inputs, h


def mlp_base(
    input_shape: Sequence[int],
    hidden: Sequence[int] = (100, 100),
    activation: str = "relu",
    name: str = "base",
    preprocessing: Sequence[keras.layers.Layer] = (),
) -> keras.Model:
    """A multilayer perceptron base (inputs of any rank are flattened first).

    Args:
        input_shape: shape of one input, e.g. `(8, 8, 1)` or `(64,)`.
        hidden: units of each hidden Dense layer.
        activation: their activation.
        name: the model's name.
        preprocessing: layers applied to the inputs first (see `augmentation`).

    Returns:
        A functional `keras.Model` from inputs to the last hidden layer.

    Example:
    ```python
    base = mlp_base((28, 28, 1), hidden=(400, 400))
    ```
    """
    if not hidden:
        raise ValueError("mlp_base needs at least one hidden layer size")
    inputs, h = _inputs(input_shape, name, preprocessing)
    h = keras.layers.Flatten(name=f"{name}_flatten")(h) if len(input_shape) > 1 else h
    for i, units in enumerate(hidden):
        if int(units) < 1:
            raise ValueError(f"hidden layer sizes must be >= 1, got {list(hidden)}")
        h = keras.layers.Dense(int(units), activation=activation, name=f"{name}_dense_{i + 1}")(h)
    return keras.Model(inputs, h, name=name)


def cnn_base(
    input_shape: Sequence[int],
    filters: Sequence[int] = (32, 64),
    dense: int = 128,
    kernel_size: int = 3,
    name: str = "base",
    preprocessing: Sequence[keras.layers.Layer] = (),
) -> keras.Model:
    """A small convolutional base: conv-pool blocks, then one Dense layer.

    Args:
        input_shape: `(H, W, C)` of one image.
        filters: filters of each conv block (3×3 conv, ReLU, 2×2 max-pool).
        dense: units of the Dense layer after flattening (0 for none).
        kernel_size: the convolutions' kernel size.
        name: the model's name.
        preprocessing: layers applied to the inputs first (see `augmentation`).

    Returns:
        A functional `keras.Model`.

    Example:
    ```python
    base = cnn_base((28, 28, 1), filters=(32, 64), dense=128)
    ```
    """
    if len(input_shape) != 3:
        raise ValueError(f"cnn_base needs images shaped (H, W, C), got input shape {input_shape}")
    inputs, h = _inputs(input_shape, name, preprocessing)
    for i, f in enumerate(filters):
        h = keras.layers.Conv2D(
            int(f), kernel_size, padding="same", activation="relu", name=f"{name}_conv_{i + 1}"
        )(h)
        if min(h.shape[1], h.shape[2]) >= 2:
            h = keras.layers.MaxPooling2D(2, name=f"{name}_pool_{i + 1}")(h)
    h = keras.layers.Flatten(name=f"{name}_flatten")(h)
    if dense:
        h = keras.layers.Dense(int(dense), activation="relu", name=f"{name}_dense")(h)
    return keras.Model(inputs, h, name=name)


#: PyTorch's default initialisation of convolution and linear kernels (Kaiming uniform with
#: a = √5: U(±1/√fan_in)), which Mammoth's ResNet-18 keeps.
def _torch_init() -> keras.initializers.Initializer:
    return keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform")


def _conv(h, filters: int, kernel: int, stride: int, name: str):
    """A convolution without bias, padded like PyTorch's `padding=kernel // 2`."""
    if kernel > 1:
        h = keras.layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(h)
    return keras.layers.Conv2D(filters, kernel, strides=stride, padding="valid", use_bias=False,
                               kernel_initializer=_torch_init(), name=name)(h)


def _batch_norm(h, name: str):
    """BatchNorm with PyTorch's defaults (momentum 0.1 of the new batch, ε = 1e-5)."""
    return keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name)(h)


def _basic_block(h, planes: int, stride: int, name: str):
    """ResNet's BasicBlock: conv-BN-ReLU, conv-BN, plus the shortcut (1×1 conv-BN when the
    shape changes), ReLU."""
    out = keras.layers.ReLU(name=f"{name}_relu1")(
        _batch_norm(_conv(h, planes, 3, stride, f"{name}_conv1"), f"{name}_bn1"))
    out = _batch_norm(_conv(out, planes, 3, 1, f"{name}_conv2"), f"{name}_bn2")
    shortcut = h
    if stride != 1 or int(h.shape[-1]) != planes:
        shortcut = _batch_norm(_conv(h, planes, 1, stride, f"{name}_shortcut_conv"),
                               f"{name}_shortcut_bn")
    out = keras.layers.Add(name=f"{name}_add")([out, shortcut])
    return keras.layers.ReLU(name=f"{name}_relu2")(out)


def resnet18_base(
    input_shape: Sequence[int],
    nf: int = 64,
    name: str = "base",
    preprocessing: Sequence[keras.layers.Layer] = (),
) -> keras.Model:
    """The ResNet-18 of the GEM and DER papers (Mammoth's `backbone/ResNet18.py`), up to the
    pooled features; `build_task_models` adds the linear head(s).

    A 3×3 stem convolution (stride 1, no max-pool) with `nf` filters, BatchNorm and ReLU; four
    stages of two `BasicBlock`s with `nf`, 2·`nf`, 4·`nf` and 8·`nf` filters (strides 1, 2, 2,
    2; a 1×1 convolution with BatchNorm on the shortcut where the shape changes); global average
    pooling. Convolutions have no bias and PyTorch's default initialisation; BatchNorm has
    PyTorch's momentum (0.1) and ε (1e-5). `nf=64` is Mammoth's `resnet18` (Seq-CIFAR-10 in DER:
    11,173,962 parameters with a 10-way head); `nf=20` is GEM's "reduced ResNet-18".

    Args:
        input_shape: `(H, W, C)` of one image (CIFAR: `(32, 32, 3)`).
        nf: filters of the stem and the first stage.
        name: the model's name.
        preprocessing: layers applied to the inputs first (see `augmentation`).

    Returns:
        A functional `keras.Model` from images to `8 * nf` features.

    Raises:
        ValueError: for inputs that are not images, or `nf` < 1.

    Example:
    ```python
    base = resnet18_base((32, 32, 3), nf=20)          # GEM's reduced ResNet-18
    models = build_task_models(base, [10] * 5, shared_head=True)
    ```
    """
    if len(input_shape) != 3:
        raise ValueError(f"resnet18 needs images shaped (H, W, C), got input shape "
                         f"{tuple(input_shape)}")
    if isinstance(nf, bool) or int(nf) != nf or nf < 1:
        raise ValueError(f"resnet18: nf {nf!r} is not allowed; expected an integer >= 1")
    nf = int(nf)
    inputs, h = _inputs(input_shape, name, preprocessing)
    h = keras.layers.ReLU(name=f"{name}_stem_relu")(
        _batch_norm(_conv(h, nf, 3, 1, f"{name}_stem_conv"), f"{name}_stem_bn"))
    for stage, (factor, stride) in enumerate(((1, 1), (2, 2), (4, 2), (8, 2)), start=1):
        for block in (1, 2):
            h = _basic_block(h, nf * factor, stride if block == 1 else 1,
                             f"{name}_layer{stage}_block{block}")
    h = keras.layers.GlobalAveragePooling2D(name=f"{name}_pool")(h)
    return keras.Model(inputs, h, name=name)


def build_task_models(
    base: keras.Model,
    head_sizes: Sequence[int],
    shared_head: bool = False,
    head_activation: str | None = None,
) -> list[keras.Model]:
    """One model per task: the shared base plus a head (its own, or one shared by all tasks).

    Args:
        base: the shared base model (its layers are reused, not copied).
        head_sizes: outputs of each task's head (all equal when the head is shared).
        shared_head: one head for every task (domain- and class-incremental scenarios) instead
            of one head per task (task-incremental).
        head_activation: the heads' activation; None gives logits (the default everywhere).

    Returns:
        A list of functional models, one per task, sharing the base's variables.

    Example:
    ```python
    models = build_task_models(base, [2, 2, 2, 2, 2])             # five 2-way heads
    models = build_task_models(base, [10] * 5, shared_head=True)  # one 10-way head
    ```
    """
    if shared_head and len(set(head_sizes)) > 1:
        raise ValueError(f"A shared head needs equal sizes for every task, got {list(head_sizes)}")
    shared = (
        keras.layers.Dense(int(head_sizes[0]), activation=head_activation, name="head")
        if shared_head
        else None
    )
    models = []
    for k, size in enumerate(head_sizes, start=1):
        inputs = keras.Input(tuple(base.input_shape[1:]), name=f"task_{k}_input")
        head = shared or keras.layers.Dense(int(size), activation=head_activation, name=f"head_{k}")
        models.append(keras.Model(inputs, head(base(inputs)), name=f"task_{k}"))
    return models
