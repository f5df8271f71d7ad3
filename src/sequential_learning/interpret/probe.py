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

Keras internals used: the probe walks a functional model's graph with the package's
`graph.GraphWalker` (Keras' own `Functional._run_through_graph`, the walk `Functional.call` runs;
see that module). Checked on Keras 3.15; `tests/interpret` and `tests/test_graph.py` cover them.

Example:
```python
activations, logits = build_probe(task_model, [last_conv_layer(task_model)])(images)
```
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf

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

    Descends only into the nested models that hold chosen layers or make the output.
    """

    def __init__(self, targets: Sequence[keras.layers.Layer]) -> None:
        self.target_ids = {id(layer) for layer in targets}
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
        if isinstance(op, keras.Model) and (holds_targets or at_output):
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

    Use `forward` inside your own `tf.function` / `GradientTape`, or call the probe for a
    compiled forward pass.

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
        logits = replay.run(self.model, images)
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
    """A dict cached on the model, for probes and compiled functions built for it.

    Args:
        model: a Keras model.

    Returns:
        The same dict on every call with this model.

    Example:
    ```python
    cache = model_cache(model)
    if "saliency" not in cache:
        cache["saliency"] = tf.function(lambda x: model(x, training=False))
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
