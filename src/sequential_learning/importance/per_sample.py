"""Sums of per-sample gradient statistics, in closed form where the layer allows it.

Fisher information and MAS both need, for every covered variable θ,

    Σ_n Σ_k w_nk · R(∂ obj_nk / ∂θ)        with R(g) = g² or |g|,

where `obj[n, k]` is a scalar per sample `n` and objective `k` (for the exact Fisher, the
log-probability of class k; for MAS the squared output norm) and `w[n, k]` a weight that is not
differentiated. Taking one gradient per sample is slow; this module avoids it:

* **Dense** (`z = a W + b`): the per-sample gradient of `W` for objective k is the outer product
  `a_n δ_nkᵀ` with `δ_nk = ∂ obj_nk / ∂ z_n`. Because `R(a δᵀ) = R(a) R(δ)ᵀ` for both squares and
  absolute values, the sum over samples is one matrix product `R(A)ᵀ (Σ_k w_k R(Δ_k))`. All
  `δ_nk` of a batch come from one backward pass per objective (samples are independent when the
  model runs with `training=False`).
* **Conv2D**: the per-sample kernel gradient is `Σ_p patch_np ⊗ δ_np` over output positions p,
  formed for the whole batch with one einsum, then reduced.
* **Anything else** (BatchNorm scales, embeddings, layers called twice, subclassed models): exact
  per-sample gradients (`per_sample_gradient_sums` of the backend: `tf.vectorized_map`,
  `jax.vmap` of `jax.jacrev`, a loop on torch), in chunks so memory stays bounded.

The model graph is walked op by op (Keras functional graphs, nested models included, with the
package's `graph.GraphWalker`) so that each Dense / Conv2D layer's input and pre-activation are
available to differentiate. The δ come from a persistent `tf.GradientTape` on TensorFlow (the
numbers the package always had); on the other backends from `input_gradients` with respect to a
zero tensor added to each recorded pre-activation (∂ obj / ∂ ε = ∂ obj / ∂ z at ε = 0).
Everything else is `keras.ops`, compiled with the backend's `compiled`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
from keras import ops

from sequential_learning import backend
from sequential_learning.graph import GraphWalker, call_layer, functional_graph

ObjectiveFn = Callable[[Any, Any], tuple[Any, Any]]
"""Maps (model outputs [N, ...], labels [N]) to (objectives [N, K], weights [N, K])."""

_REDUCTIONS = ("square", "abs")
#: Per-sample gradients of fallback variables held at once (floats), bounding a chunk.
_FALLBACK_FLOATS = 1 << 26


def _reduce(g: Any, reduce: str) -> Any:
    return ops.square(g) if reduce == "square" else ops.abs(g)


@dataclass
class _Record:
    """One call of a probed layer in a forward pass."""

    layer: keras.layers.Layer
    inputs: Any
    preactivation: Any


class _Probe(GraphWalker):
    """Forward pass that records Dense / Conv2D inputs and pre-activations.

    With `perturbations` (one tensor per recorded call, in call order) each pre-activation gets
    its perturbation added, so that gradients with respect to the perturbations are the
    gradients with respect to the pre-activations.
    """

    def __init__(self, covered_ids: set[int], perturbations: Sequence | None = None) -> None:
        self.covered_ids = covered_ids
        self.perturbations = perturbations
        self.records: list[_Record] = []

    def run(self, model, inputs, at_output: bool = True):
        if functional_graph(model) is None:  # a subclassed model: nothing to record
            return call_layer(model, inputs)
        return super().run(model, inputs, at_output)

    def call(self, op, args, kwargs, at_output):
        if _is_probeable_dense(op) and id(op._kernel) in self.covered_ids:
            z = ops.matmul(args[0], ops.convert_to_tensor(op._kernel))
            if op.use_bias:
                z = z + ops.convert_to_tensor(op.bias)
            return self._record(op, args[0], z)
        if _is_probeable_conv(op) and id(op._kernel) in self.covered_ids:
            z = op.convolution_op(args[0], ops.convert_to_tensor(op._kernel))
            if op.use_bias:
                z = z + ops.reshape(ops.convert_to_tensor(op.bias), (1, 1, 1, -1))
            return self._record(op, args[0], z)
        return super().call(op, args, kwargs, at_output)

    def _record(self, layer, inputs, z):
        if self.perturbations is not None:
            z = z + self.perturbations[len(self.records)]
        self.records.append(_Record(layer, inputs, z))
        return layer.activation(z) if layer.activation is not None else z


def _is_probeable_dense(op) -> bool:
    return (
        type(op) is keras.layers.Dense
        and not getattr(op, "lora_enabled", False)
        and getattr(op, "quantization_mode", None) is None
        and len(op.input.shape) == 2
    )


def _is_probeable_conv(op) -> bool:
    return (
        type(op) is keras.layers.Conv2D
        and op.groups == 1
        and op.data_format == "channels_last"
        and not getattr(op, "lora_enabled", False)
    )


def _conv_sample_gradients(layer, inputs: Any, delta: Any) -> Any:
    """Per-sample kernel gradients of a Conv2D, [N, kh*kw*cin, cout], from patches and δ."""
    kh, kw = layer.kernel_size
    sh, sw = layer.strides
    dh, dw = layer.dilation_rate
    if backend.is_tensorflow():
        import tensorflow as tf

        patches = tf.image.extract_patches(
            inputs, sizes=[1, kh, kw, 1], strides=[1, sh, sw, 1], rates=[1, dh, dw, 1],
            padding=layer.padding.upper(),
        )
    else:
        patches = ops.image.extract_patches(
            inputs, (kh, kw), strides=(sh, sw), dilation_rate=(dh, dw),
            padding=layer.padding, data_format="channels_last",
        )
    return ops.einsum("nhwk,nhwo->nko", patches, delta)


def _transposed_product(a: Any, b: Any) -> Any:
    """aᵀ b (TensorFlow's own transposed matmul there, as the package always computed it)."""
    if backend.is_tensorflow():
        import tensorflow as tf

        return tf.matmul(a, b, transpose_a=True)
    return ops.matmul(ops.transpose(a), b)


def _padded(xs: np.ndarray, ls: np.ndarray, size: int) -> tuple:
    """A chunk padded with zeros to `size` samples, and its mask (1 for the real samples): every
    chunk then has one shape, so JAX compiles the computation once."""
    pad = size - len(xs)
    mask = np.concatenate([np.ones(len(xs), np.float32), np.zeros(pad, np.float32)])
    if pad:
        xs = np.concatenate([xs, np.zeros((pad, *xs.shape[1:]), xs.dtype)])
        ls = np.concatenate([ls, np.zeros(pad, ls.dtype)])
    return tuple(ops.convert_to_tensor(a) for a in (xs, ls, mask))


def _distinct(*groups: Sequence) -> list:
    """The variables of `groups`, each once, in order."""
    seen: dict[int, Any] = {}
    for group in groups:
        for v in group:
            seen.setdefault(id(v), v)
    return list(seen.values())


class PerSampleReducer:
    """Computes Σ_n Σ_k w_nk R(∂obj_nk/∂θ) for a list of variables of a model.

    Args:
        model: a Keras model (functional, Sequential, nested or not; subclassed models use the
            vectorised fallback for every variable).
        variables: the variables to cover (e.g. the shared base's trainable variables).
        objective_fn: maps `(outputs, labels)` to `(objectives [N, K], weights [N, K])`; the
            weights are not differentiated.
        reduce: `"square"` (Fisher) or `"abs"` (MAS).
        chunk_size: samples per compiled call; bounds memory.

    Example:
    ```python
    reducer = PerSampleReducer(model, model.trainable_variables, objective, "square")
    sums = reducer(x, y)   # list of arrays shaped like the variables
    ```
    """

    def __init__(
        self,
        model: keras.Model,
        variables: Sequence,
        objective_fn: ObjectiveFn,
        reduce: str = "square",
        chunk_size: int = 256,
    ) -> None:
        if reduce not in _REDUCTIONS:
            raise ValueError(f"reduce must be one of {_REDUCTIONS}, got {reduce!r}")
        self.model = model
        self.variables = list(variables)
        self.objective_fn = objective_fn
        self.reduce = reduce
        self.chunk_size = int(chunk_size)
        self._plan: dict | None = None
        self._fn = None

    # -- planning -----------------------------------------------------------------------------
    def _make_plan(self, x_one: np.ndarray, labels_one: np.ndarray) -> dict:
        """Decides which variables take the closed form: a dry probe run on one sample."""
        ids = {id(v) for v in self.variables}
        probe = _Probe(ids)
        try:
            outputs = probe.run(self.model, ops.convert_to_tensor(x_one))
        except Exception:  # noqa: BLE001 - any graph we cannot walk falls back entirely
            probe.records = []
            outputs = self.model(x_one, training=False)
        objectives, _ = self.objective_fn(outputs, ops.convert_to_tensor(labels_one))
        calls: dict[int, int] = {}
        for rec in probe.records:
            calls[id(rec.layer)] = calls.get(id(rec.layer), 0) + 1
        closed: dict[int, tuple[str, int]] = {}  # variable id -> (role, layer id)
        for rec in probe.records:
            if calls[id(rec.layer)] != 1:
                continue
            closed[id(rec.layer._kernel)] = ("kernel", id(rec.layer))
            if rec.layer.use_bias:
                closed[id(rec.layer.bias)] = ("bias", id(rec.layer))
        fallback = [i for i, v in enumerate(self.variables) if id(v) not in closed]
        chunk = self.chunk_size
        if fallback:
            # Per-sample gradients of the fallback variables are held for a whole chunk (on JAX
            # one per objective too): keep that buffer to about 64M floats.
            n_params = sum(int(np.prod(self.variables[i].shape)) for i in fallback)
            if not backend.is_tensorflow():
                n_params *= int(objectives.shape[-1])
            chunk = max(1, min(chunk, _FALLBACK_FLOATS // max(n_params, 1)))
        return {
            "closed": closed, "fallback": fallback, "probe": bool(closed), "chunk": chunk,
            "objectives": int(objectives.shape[-1]),
            # Per recorded call (in call order): its kernel's id and its pre-activation's shape
            # without the batch axis, for the perturbations of the non-TensorFlow backends.
            "kernels": [id(r.layer._kernel) for r in probe.records],
            "layers": [r.layer for r in probe.records],
            "shapes": [tuple(r.preactivation.shape[1:]) for r in probe.records],
        }

    @property
    def closed_form_fraction(self) -> float:
        """Fraction of covered parameters computed in closed form (after the first call)."""
        if self._plan is None:
            return 0.0
        total = sum(int(np.prod(v.shape)) for v in self.variables)
        fb = sum(int(np.prod(self.variables[i].shape)) for i in self._plan["fallback"])
        return 1.0 - fb / max(total, 1)

    def _compile(self, sample_shape: tuple) -> Callable:
        """The chunk's computation, compiled once (one trace for every chunk size on TF)."""
        if backend.is_tensorflow():
            import tensorflow as tf

            return tf.function(
                self._chunk,
                input_signature=[
                    tf.TensorSpec((None, *sample_shape), tf.float32),
                    tf.TensorSpec((None,), tf.int32),
                ],
            )
        return backend.ops().compiled(self._chunk, _distinct(self.model.variables,
                                                             self.variables))

    # -- computation ---------------------------------------------------------------------------
    def __call__(self, x, labels=None) -> list[np.ndarray]:
        """Returns the sums over all samples, one float32 array per variable.

        Args:
            x: inputs, an array with the model's input shape (batch first).
            labels: integer labels per sample (used by objectives that need them).

        Returns:
            A list of NumPy arrays shaped like `variables`.
        """
        x = np.asarray(x, dtype=np.float32)
        n = x.shape[0]
        if n == 0:
            raise ValueError("PerSampleReducer needs at least one sample, got an empty array")
        labels = np.zeros((n,), np.int32) if labels is None else np.asarray(labels, np.int32)
        if self._plan is None:
            self._plan = self._make_plan(x[:1], labels[:1])
            self._fn = self._compile(x.shape[1:])
        totals = [np.zeros(v.shape, np.float64) for v in self.variables]
        chunk = self._plan["chunk"]
        replicas = backend.replicas()
        for start in range(0, n, chunk * replicas):
            xs = x[start : start + chunk * replicas]
            ls = labels[start : start + chunk * replicas]
            if replicas != 1:
                parts = self._distributed(xs, ls)
            elif backend.is_tensorflow():
                parts = self._fn(ops.convert_to_tensor(xs), ops.convert_to_tensor(ls))
            else:
                parts = self._fn(*_padded(xs, ls, chunk if n > chunk else len(xs)))
            for i, part in enumerate(parts):
                totals[i] += ops.convert_to_numpy(part)
        return [t.astype(np.float32) for t in totals]

    def _distributed(self, xs: np.ndarray, ls: np.ndarray) -> list:
        """One slice of the inputs per replica, summed with the strategy's all-reduce (TF)."""
        import tensorflow as tf

        strategy = tf.distribute.get_strategy()
        replicas = strategy.num_replicas_in_sync
        x_parts, l_parts = np.array_split(xs, replicas), np.array_split(ls, replicas)
        per_x = strategy.experimental_distribute_values_from_function(
            lambda ctx: tf.constant(x_parts[ctx.replica_id_in_sync_group])
        )
        per_l = strategy.experimental_distribute_values_from_function(
            lambda ctx: tf.constant(l_parts[ctx.replica_id_in_sync_group])
        )
        if getattr(self, "_distributed_fn", (None, None))[0] is not strategy:

            @tf.function
            def step(px, pl):
                per_replica = strategy.run(self._chunk, args=(px, pl))
                return [strategy.reduce(tf.distribute.ReduceOp.SUM, p, axis=None)
                        for p in per_replica]

            self._distributed_fn = (strategy, step)
        return self._distributed_fn[1](per_x, per_l)

    def _chunk(self, x: Any, labels: Any, mask: Any = None) -> list:
        plan = self._plan
        out: list[Any] = [None] * len(self.variables)
        if plan["probe"]:
            for i, value in self._closed_form(x, labels, plan["closed"], mask).items():
                out[i] = value
        if plan["fallback"]:
            vars_fb = [self.variables[i] for i in plan["fallback"]]
            for i, value in zip(plan["fallback"], self._vectorised(x, labels, vars_fb, mask)):
                out[i] = value
        return [ops.zeros(v.shape) if o is None else o for v, o in zip(self.variables, out)]

    def _closed_form(self, x, labels, closed, mask=None) -> dict[int, Any]:
        if backend.is_tensorflow():
            layers, inputs, weights, count, deltas = self._taped_deltas(x, labels, closed)
        else:
            layers, inputs, weights, count, deltas = self._perturbed_deltas(x, labels, closed)
        if mask is not None:  # padding samples weigh nothing
            weights = weights * mask[:, None]
        # Σ_k w_k R(δ_k) for dense layers; Σ_k w_k R(per-sample kernel grads) for convs.
        dense_acc: list[Any] = [None] * len(layers)
        conv_k_acc: list[Any] = [None] * len(layers)
        conv_b_acc: list[Any] = [None] * len(layers)
        for k in range(count):
            w = weights[:, k]
            for j, (layer, a, delta) in enumerate(zip(layers, inputs, deltas(k))):
                if isinstance(layer, keras.layers.Conv2D):
                    g_kernel = _conv_sample_gradients(layer, a, delta)
                    g_bias = ops.sum(delta, axis=[1, 2])
                    ck = ops.einsum("n,nko->ko", w, _reduce(g_kernel, self.reduce))
                    cb = ops.einsum("n,no->o", w, _reduce(g_bias, self.reduce))
                    conv_k_acc[j] = ck if conv_k_acc[j] is None else conv_k_acc[j] + ck
                    conv_b_acc[j] = cb if conv_b_acc[j] is None else conv_b_acc[j] + cb
                else:
                    d = w[:, None] * _reduce(delta, self.reduce)
                    dense_acc[j] = d if dense_acc[j] is None else dense_acc[j] + d
        result: dict[int, Any] = {}
        index = {id(v): i for i, v in enumerate(self.variables)}
        for j, (layer, a) in enumerate(zip(layers, inputs)):
            if isinstance(layer, keras.layers.Conv2D):
                kernel = ops.reshape(conv_k_acc[j], layer._kernel.shape)
                bias = conv_b_acc[j]
            else:
                kernel = _transposed_product(_reduce(a, self.reduce), dense_acc[j])
                bias = ops.sum(dense_acc[j], axis=0)
            result[index[id(layer._kernel)]] = kernel
            if layer.use_bias and id(layer.bias) in index:
                result[index[id(layer.bias)]] = bias
        return result

    def _taped_deltas(self, x, labels, closed) -> tuple[list, list, Any, int, Callable]:
        """TensorFlow: every δ_k from one persistent tape over one forward pass."""
        import tensorflow as tf

        probe = _Probe({id(v) for v in self.variables})
        with tf.GradientTape(persistent=True) as tape:
            outputs = probe.run(self.model, x)
            objectives, weights = self.objective_fn(outputs, labels)
            # Slices are taken inside the tape so that they are recorded.
            targets = [objectives[:, k] for k in range(objectives.shape[-1])]
        records = [r for r in probe.records if id(r.layer._kernel) in closed]
        z_list = [r.preactivation for r in records]

        def deltas(k: int) -> list:
            return tape.gradient(
                targets[k], z_list, unconnected_gradients=tf.UnconnectedGradients.ZERO
            )

        return ([r.layer for r in records], [r.inputs for r in records],
                tf.stop_gradient(weights), len(targets), deltas)

    def _perturbed_deltas(self, x, labels, closed) -> tuple[list, list, Any, int, Callable]:
        """JAX, torch: δ_k as the gradient of Σ_n obj_nk with respect to a zero tensor added to
        each recorded pre-activation (one forward pass, a backward pass per objective)."""
        plan = self._plan
        ids = {id(v) for v in self.variables}
        chosen = [i for i, kernel in enumerate(plan["kernels"]) if kernel in closed]
        n = ops.shape(x)[0]

        def objectives(*perturbations):
            probe = _Probe(ids, perturbations)
            found, weights = self.objective_fn(probe.run(self.model, x), labels)
            return found, ([probe.records[i].inputs for i in chosen], weights)

        zeros = [ops.zeros((n, *shape)) for shape in plan["shapes"]]
        found, (inputs, weights), grads = backend.ops().per_output_gradients(objectives, zeros)
        layers = [plan["layers"][i] for i in chosen]
        return (layers, list(inputs), ops.stop_gradient(weights), int(found.shape[-1]),
                lambda k: [grads[k][i] for i in chosen])

    def _vectorised(self, x, labels, variables, mask=None) -> list:
        """Exact per-sample gradients (the backend's vectorised map), reduced and summed."""
        model, objective_fn, reduce = self.model, self.objective_fn, self.reduce

        def one(xi, li, *mi):
            objectives, weights = objective_fn(model(xi[None], training=False), li[None])
            return objectives, weights * mi[0] if mi else weights

        inputs = [x, labels] if mask is None else [x, labels, mask]
        return backend.ops().per_sample_gradient_sums(
            one, variables, inputs, lambda g: _reduce(g, reduce))


class ReducerCache:
    """Keeps compiled `PerSampleReducer`s between tasks, so a model is traced once per run.

    Tracing the reducer costs more than running it (0.65 s against 0.1 s for 1000 inputs of an
    MLP 784-400-400-10): an estimator that measures the same model after every task keeps one.
    Functional models made of the same layer objects (the task models of a shared-head stream)
    count as one. Entries hold their model, so the ids in a key stay valid while cached.

    Example:
    ```python
    cache = ReducerCache()
    reducer = cache.get(model, variables, objective, "square", key="exact")
    ```
    """

    def __init__(self) -> None:
        self._items: dict[tuple, PerSampleReducer] = {}

    def get(
        self,
        model: keras.Model,
        variables: Sequence,
        objective_fn: ObjectiveFn,
        reduce: str = "square",
        chunk_size: int = 256,
        key: object = None,
    ) -> PerSampleReducer:
        """The cached reducer for (model, variables, `key`, reduce, chunk size), or a new one.

        Args:
            model, variables, objective_fn, reduce, chunk_size: as for `PerSampleReducer`.
            key: names the objective (closures made afresh for each call compare unequal).

        Returns:
            A `PerSampleReducer`.
        """
        index = (_model_key(model), tuple(id(v) for v in variables), key, reduce, int(chunk_size))
        reducer = self._items.get(index)
        if reducer is None:
            reducer = PerSampleReducer(model, variables, objective_fn, reduce, chunk_size)
            self._items[index] = reducer
        return reducer

    def __len__(self) -> int:
        return len(self._items)


def _model_key(model: keras.Model) -> tuple:
    """Identifies the function a model computes: its layer objects in order and input shapes
    for a functional model (two wrappers of the same layers are the same), else the model."""
    if functional_graph(model) is None:
        return ("model", id(model))
    layers = tuple(id(layer) for layer in model.layers
                   if not isinstance(layer, keras.layers.InputLayer))
    return ("layers", layers, tuple(tuple(t.shape) for t in model.inputs))


def reference_per_sample(
    model: keras.Model,
    variables: Sequence,
    x,
    labels,
    objective_fn: ObjectiveFn,
    reduce: str = "square",
) -> list[np.ndarray]:
    """The same sums with a plain Python loop over samples and objectives (slow).

    Kept as the brute-force reference for tests and `bench/`; never used in training. One
    gradient (the backend's `value_and_grad`) per sample and objective, on every backend.

    Args:
        model: the model.
        variables: variables to cover.
        x: inputs.
        labels: integer labels per sample.
        objective_fn: as for `PerSampleReducer`.
        reduce: `"square"` or `"abs"`.

    Returns:
        A list of NumPy arrays shaped like `variables`.

    Example:
    ```python
    expected = reference_per_sample(model, model.trainable_variables, x[:16], y[:16],
                                    fisher_objective("empirical"))
    ```
    """
    x = np.asarray(x, np.float32)
    labels = np.asarray(labels, np.int32)
    value_and_grad = backend.ops().value_and_grad
    totals = [np.zeros(v.shape, np.float64) for v in variables]
    for n in range(x.shape[0]):
        xn, ln = x[n : n + 1], ops.convert_to_tensor(labels[n : n + 1])
        _, weights = objective_fn(model(xn, training=False), ln)
        weights = ops.convert_to_numpy(weights)
        for k in range(weights.shape[-1]):

            def target(k=k, xn=xn, ln=ln):
                objectives, _ = objective_fn(model(xn, training=False), ln)
                return objectives[0, k], None

            _, _, grads = value_and_grad(target, variables)
            for i, g in enumerate(grads):
                totals[i] += float(weights[0, k]) * ops.convert_to_numpy(_reduce(g, reduce))
    return [t.astype(np.float32) for t in totals]
