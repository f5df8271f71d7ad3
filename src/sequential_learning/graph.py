"""Replaying a Keras functional graph layer by layer, nested models included.

`GraphWalker` runs a functional (or built Sequential) model's graph itself, node by node in
topological order, with Keras' own graph walk (`Functional._run_through_graph`, what
`Functional.call` runs). Every layer is called through `GraphWalker.call`, which a subclass
overrides to observe or replace what a layer gets and returns; nested functional models are
walked in turn (`GraphWalker.descend` decides which), so their inner layers are reached too.
Every layer is called in inference mode (`training=False`).

Two parts of the package use it: the per-sample gradient sums of `importance.per_sample` (which
record each Dense / Conv2D layer's input and pre-activation) and the probes of `interpret.probe`
(which record inner activations and drop a final softmax). This module imports nothing of the
package.

Keras internals used: `Functional._run_through_graph`, `Sequential._functional`, a layer's
`_call_context_args` / `_call_has_training_arg` and the output tensor's `_keras_history`.
Checked on Keras 3.15; `tests/test_graph.py` covers them.

Example:
```python
class Recorder(GraphWalker):
    def __init__(self):
        self.seen = []

    def call(self, op, args, kwargs, at_output):
        out = super().call(op, args, kwargs, at_output)
        self.seen.append((op.name, out))
        return out

outputs = Recorder().run(model, x)   # equals model(x, training=False)
```
"""

from __future__ import annotations

from typing import Any


def functional_graph(model: Any) -> Any:
    """The functional graph behind a functional or built Sequential model, else `None`.

    Args:
        model: a Keras model or layer.

    Returns:
        The `Functional` whose graph the model runs (the model itself for a functional model,
        its inner graph for a built Sequential one), or `None` for a plain layer, a subclassed
        model or a Sequential model built without a known input shape.

    Example:
    ```python
    functional_graph(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]))  # Functional
    functional_graph(keras.layers.Dense(2))                                         # None
    ```
    """
    from keras.src.models.functional import Functional
    from keras.src.models.sequential import Sequential

    if isinstance(model, Sequential):
        return model._functional
    if isinstance(model, Functional) and hasattr(model, "_run_through_graph"):
        return model
    return None


def call_layer(layer: Any, *args: Any, **kwargs: Any) -> Any:
    """Calls a layer (or model) in inference mode: with `training=False` when it takes it.

    Args:
        layer: a Keras layer, model or operation.
        *args: its positional arguments.
        **kwargs: its keyword arguments; `training` is overridden.

    Returns:
        What the layer returns.

    Example:
    ```python
    y = call_layer(keras.layers.Dropout(0.5), x)   # x itself: inference mode
    ```
    """
    if "training" in getattr(layer, "_call_context_args", ()) or getattr(
        layer, "_call_has_training_arg", False
    ):
        kwargs["training"] = False
    return layer(*args, **kwargs)


def output_operation(graph: Any) -> Any:
    """The layer that produces a functional graph's single output (`None` for several outputs).

    Args:
        graph: a functional graph, as returned by `functional_graph`.

    Returns:
        The operation (layer or nested model) whose call gives the output, or `None`.

    Example:
    ```python
    output_operation(functional_graph(model)).name   # 'head'
    ```
    """
    if len(graph.outputs) != 1:
        return None
    history = getattr(graph.outputs[0], "_keras_history", None)
    return history.operation if history is not None else None


class GraphWalker:
    """Runs a functional model's graph layer by layer, descending into nested models.

    `run` walks the nodes of the model's graph in topological order and calls `call` for each
    layer with the arguments the graph gives it; what `call` returns is what the layer's
    successors get. The default `call` walks a nested functional model's own graph when
    `descend` allows it (it does by default) and otherwise calls the layer with `call_layer`
    (inference mode). Override `call` to observe inputs and outputs or to replace a layer's
    computation, and `descend` to treat some nested models as single layers.

    `at_output` tells whether a call produces the output of the model `run` started from (the
    last layer of the outermost graph, or of the nested models that make that output), for a
    model with a single output.

    Example:
    ```python
    class Inputs(GraphWalker):
        def __init__(self):
            self.inputs = {}

        def call(self, op, args, kwargs, at_output):
            self.inputs[op.name] = args[0]
            return super().call(op, args, kwargs, at_output)

    walker = Inputs()
    y = walker.run(model, x)
    ```
    """

    def run(self, model: Any, inputs: Any, at_output: bool = True) -> Any:
        """Runs the model's graph on `inputs`, every layer through `call`.

        Args:
            model: a functional or built Sequential model.
            inputs: its inputs (a tensor, or a list for several inputs).
            at_output: whether this model's output is the output of the whole walk.

        Returns:
            The model's outputs (a single tensor for a single output).

        Example:
        ```python
        y = GraphWalker().run(model, x)   # equals model(x, training=False)
        ```
        """
        graph = functional_graph(model)
        if graph is None:
            raise ValueError(
                f"Model {model.name!r} is not a functional or built Sequential model "
                f"({type(model).__name__}); its graph cannot be walked."
            )
        final = output_operation(graph) if at_output else None

        def operation_fn(op: Any) -> Any:
            def call(*args: Any, **kwargs: Any) -> Any:
                return self.call(op, args, kwargs, final is not None and op is final)

            return call

        outputs = graph._run_through_graph(inputs, operation_fn=operation_fn)
        if isinstance(outputs, (list, tuple)) and len(outputs) == 1:
            return outputs[0]
        return outputs

    def descend(self, model: Any, at_output: bool) -> bool:
        """Whether `call` walks a nested functional model's graph (else calls it whole).

        Args:
            model: the nested model.
            at_output: whether it produces the output of the whole walk.

        Returns:
            `True` (every nested model is walked) unless overridden.

        Example:
        ```python
        class Shallow(GraphWalker):
            def descend(self, model, at_output):
                return False
        ```
        """
        return True

    def call(self, op: Any, args: tuple, kwargs: dict, at_output: bool) -> Any:
        """Computes one layer's output: walks a nested model or calls the layer.

        Args:
            op: the layer (or nested model) of the graph's node.
            args: its positional arguments, as the graph gives them.
            kwargs: its keyword arguments, as the graph gives them.
            at_output: whether its output is the output of the whole walk.

        Returns:
            The layer's output.

        Example:
        ```python
        def call(self, op, args, kwargs, at_output):   # in a subclass
            out = super().call(op, args, kwargs, at_output)
            self.outputs[op.name] = out
            return out
        ```
        """
        if functional_graph(op) is not None and self.descend(op, at_output):
            return self.run(op, args[0] if len(args) == 1 else list(args), at_output)
        return call_layer(op, *args, **kwargs)
