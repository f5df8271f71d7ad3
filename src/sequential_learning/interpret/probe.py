"""Probing: the activations of chosen inner layers *and* the logits in one forward pass.

Keras cannot wire `inner_layer.output` of a nested model to the outer model's inputs, so the probe
runs the model's graph itself, descending into the nested models that hold the chosen layers and
recording their outputs on the way. It uses the model's own layers (and so its current weights);
it is cached on the model (`model_cache`).

Logits: the probe's last output is the model's output *before* a final softmax. A model whose last
layer is a `Softmax` layer, a softmax `Activation` layer, or a layer built with
`activation="softmax"` (e.g. `Dense(10, activation="softmax")`) has that softmax removed in the
probe; any other final activation is taken as it is. Probabilities are always
`softmax(logits)`, which for a softmax model is exactly its output. (A layer's built-in softmax is
switched off for the duration of that one call, so explaining such a model while another thread
runs it is not safe; models ending in plain logits, as this project builds them, are unaffected.)

Gradients with respect to an inner layer's output: JAX cannot differentiate with respect to a
tensor computed inside the function after the fact, so the probe's `forward` takes `replace`, a
tensor per layer that stands in for that layer's output. A method differentiates
`lambda a: probe.forward(images, replace={layer: a})` with respect to `a`, the activations of a
first pass (`backend.ops().input_gradients`), on every backend alike.

Backends: the math is `keras.ops`; compilation is `backend.ops().compiled` (`tf.function` on
TensorFlow, `jax.jit` on JAX, eager on PyTorch). Arrays go in, NumPy arrays come out.

Keras internals used: the probe walks a functional model's graph with the package's
`graph.GraphWalker` (Keras' own `Functional._run_through_graph`, the walk `Functional.call` runs;
see that module), and finds its output shapes with `keras.src.backend.compute_output_spec`.
Checked on Keras 3.15; `tests/interpret` and `tests/test_graph.py` cover them.

Example:
```python
activations, logits = build_probe(task_model, [last_conv_layer(task_model)])(images)
```
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from sequential_learning import backend
from sequential_learning.graph import GraphWalker, call_layer, functional_graph
from sequential_learning.interpret.layers import walk_layers


def _is_softmax(activation: Any) -> bool:
    return activation is keras.activations.softmax or (
        getattr(activation, "__name__", None) == "softmax"
    )


def _call_without_activation(op: keras.layers.Layer, args: tuple, kwargs: dict) -> Any:
    """Calls a layer with its activation switched off (used to drop a final softmax)."""
    saved = op.activation
    op.activation = keras.activations.linear
    try:
        return call_layer(op, *args, **kwargs)
    finally:
        op.activation = saved


def _contained_ids(model: Any) -> set[int]:
    if not isinstance(model, keras.Model):
        return set()
    return {id(layer) for _, layer in walk_layers(model)}


class _Replay(GraphWalker):
    """Runs a model's graph op by op, recording chosen outputs and dropping a final softmax.

    Descends only into the nested models that hold chosen (or replaced) layers or make the
    output. A layer in `replace` is not called: the tensor given for it is its output.
    """

    def __init__(
        self, targets: Sequence[keras.layers.Layer], replace: Mapping[int, Any] | None = None
    ) -> None:
        self.replace = dict(replace or {})
        self.target_ids = {id(layer) for layer in targets} | set(self.replace)
        self.captured: dict[int, Any] = {}

    def run(self, model: keras.Model, inputs: Any, at_output: bool = True) -> Any:
        graph = functional_graph(model)
        if graph is None:
            raise ValueError(
                f"Model {model.name!r} is a subclassed model ({type(model).__name__}); its inner "
                "layers cannot be reached. Use a Sequential or functional model (nested ones are "
                "fine)."
            )
        if len(graph.outputs) != 1:
            raise ValueError(
                f"Model {model.name!r} has {len(graph.outputs)} outputs; the "
                "interpretability functions need a model with a single output (the logits)."
            )
        return super().run(model, inputs, at_output)

    def call(self, op: Any, args: tuple, kwargs: dict, at_output: bool) -> Any:
        is_target = id(op) in self.target_ids
        holds_targets = not is_target and bool(_contained_ids(op) & self.target_ids)
        if id(op) in self.replace:
            out = self.replace[id(op)]
        elif isinstance(op, keras.Model) and (holds_targets or at_output):
            out = self.run(op, args[0] if len(args) == 1 else list(args), at_output)
        elif at_output and isinstance(op, keras.layers.Softmax):
            out = args[0]
        elif at_output and _is_softmax(getattr(op, "activation", None)):
            if isinstance(op, keras.layers.Activation):
                out = args[0]
            else:
                out = _call_without_activation(op, args, kwargs)
        else:
            out = call_layer(op, *args, **kwargs)
        if is_target:
            self.captured[id(op)] = out
        return out


def model_input_shape(model: keras.Model) -> tuple:
    """The model's single input shape, batch axis included, e.g. `(None, 28, 28, 1)`.

    Args:
        model: a built Keras model with one input.

    Returns:
        The shape as a tuple.

    Example:
    ```python
    model_input_shape(task_model)   # (None, 8, 8, 1)
    ```
    """
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

    Use `forward` inside a function you differentiate or compile yourself, or call the probe
    for a compiled forward pass (NumPy arrays out).

    Args:
        model: a Sequential or functional Keras model with one input and one output; nested
            Sequential / functional models inside it are fine.
        layers: layers of `model` (or of models nested in it) whose outputs to return.

    Example:
    ```python
    >>> probe = build_probe(task_model, [find_layer(task_model, "base/conv2d")])
    >>> activations, logits = probe(images)
    ```
    """

    def __init__(self, model: keras.Model, layers: Sequence[keras.layers.Layer] = ()) -> None:
        from keras.src.backend import compute_output_spec

        self.model = model
        self.layers = list(layers)
        self.input_shape = model_input_shape(model)
        # A symbolic pass checks that the layers are reachable and gives the output shapes.
        spec = keras.KerasTensor((None, *self.input_shape[1:]), "float32")
        outputs = compute_output_spec(self.forward, spec)
        shapes = [tuple(t.shape) for t in keras.tree.flatten(outputs)]
        self.layer_shapes: list[tuple] = shapes[:-1]
        self.logits_shape: tuple = shapes[-1]
        self._compiled = compile_for(model, self.forward)

    @property
    def num_classes(self) -> int:
        """The number of logits."""
        return int(self.logits_shape[-1])

    def forward(self, images: Any, replace: Mapping[keras.layers.Layer, Any] | None = None) -> Any:
        """`[*layer_outputs, logits]` (just `logits` without layers), uncompiled.

        Args:
            images: a batch of images (a tensor of the running backend).
            replace: `{layer: tensor}`: the tensor stands in for that layer's output (the layer
                is not called), so the logits can be differentiated with respect to it.

        Returns:
            `[*layer_outputs, logits]`, or `logits` when the probe has no layers.

        Example:
        ```python
        logits = probe.forward(images, replace={conv: activations})
        ```
        """
        replay = _Replay(self.layers, {id(k): v for k, v in (replace or {}).items()})
        logits = replay.run(self.model, images)
        wanted = list(self.layers) + [k for k in (replace or {}) if k not in self.layers]
        missing = [layer.name for layer in wanted if id(layer) not in replay.captured]
        if missing:
            raise ValueError(
                f"Layer(s) {missing} of model {self.model.name!r} are not on the path from its "
                "input to its output."
            )
        if not self.layers:
            return logits
        return [replay.captured[id(layer)] for layer in self.layers] + [logits]

    def __call__(self, images: Any) -> Any:
        """The compiled `forward` (inference mode), as NumPy arrays."""
        x = ops.convert_to_tensor(np.asarray(images, np.float32))
        with backend.ops().no_grad():
            out = self._compiled(x)
        return keras.tree.map_structure(ops.convert_to_numpy, out)


def compile_for(model: keras.Model, fn: Callable) -> Callable:
    """`fn` compiled for the running backend, reading `model`'s current weights at every call.

    `backend.ops().compiled(fn, model.variables)`: `tf.function` on TensorFlow, `jax.jit` on
    JAX (the model's variables go in as arguments, so later weight changes are seen), `fn` itself
    on PyTorch.

    Args:
        model: the model whose variables `fn` reads.
        fn: a function of tensors (the model's layers may be called inside).

    Returns:
        The compiled function.

    Example:
    ```python
    logits = compile_for(model, lambda x: model(x, training=False))(x)
    ```
    """
    return backend.ops().compiled(fn, model.variables)


def fixed_batches(total: int, batch_size: int) -> list[tuple[int, int, int]]:
    """`(start, stop, padded)` chunks of `range(total)`, padded to one size on JAX.

    `jax.jit` compiles once per input shape, so on JAX every chunk is padded up to
    `min(batch_size, total)` rows (`padded` is that size; the caller pads and drops the extra
    rows); on the other backends `padded` is the chunk's own size.

    Args:
        total: the number of rows.
        batch_size: rows per chunk.

    Returns:
        The chunks in order.

    Example:
    ```python
    for start, stop, size in fixed_batches(len(x), 64):
        out = fn(pad_rows(x[start:stop], size))[: stop - start]
    ```
    """
    fixed = min(batch_size, total) if backend.name() == "jax" else None
    chunks = []
    for start in range(0, total, batch_size):
        stop = min(start + batch_size, total)
        chunks.append((start, stop, fixed or stop - start))
    return chunks


def pad_rows(array: np.ndarray, size: int) -> np.ndarray:
    """`array` with its last row repeated up to `size` rows (unchanged when it has them).

    Args:
        array: a NumPy array with at least one row.
        size: the wanted number of rows.

    Returns:
        The padded array.

    Example:
    ```python
    pad_rows(np.arange(3), 5)   # array([0, 1, 2, 2, 2])
    ```
    """
    missing = size - len(array)
    if missing <= 0:
        return array
    return np.concatenate([array, np.repeat(array[-1:], missing, axis=0)], axis=0)


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
    """A dict cached on the model, for probes and compiled functions built for it.

    Args:
        model: a Keras model.

    Returns:
        The same dict on every call with this model.

    Example:
    ```python
    cache = model_cache(model)
    if "saliency" not in cache:
        cache["saliency"] = compile_for(model, lambda x: model(x, training=False))
    ```
    """
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
    ```python
    >>> activations, logits = build_probe(task_model, [last_conv_layer(task_model)])(images)
    ```
    """
    cache = model_cache(model)
    key = ("probe", tuple(id(layer) for layer in layers))
    if key not in cache:
        cache[key] = Probe(model, layers)
    return cache[key]
