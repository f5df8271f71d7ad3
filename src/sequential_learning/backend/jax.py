"""JAX: stateless steps. Every variable a step reads goes in as a value and comes out updated.

Keras's JAX trainer compiles `train_step(state, data)` with `jax.jit`; a variable that is not in
`state` would be baked into the compiled step as a constant. `ContinualTrainer` therefore tracks
every variable its plugins, router and class masks use (they are the trainer's non-trainable
variables), and `train_step` runs the backend-neutral step inside a `keras.StatelessScope` that maps
each variable to its value in `state` and collects what the step assigned.

Gradients of a function of variables (`value_and_grad`) open a nested scope that maps the
differentiated variables to `jax.value_and_grad`'s arguments and falls back to the enclosing
scope for every other variable; what the function assigns (a seed counter, BatchNorm statistics)
comes out through the gradient's aux and is assigned in the enclosing scope.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from keras import StatelessScope
from keras.src.backend.common.stateless_scope import get_stateless_scope


def replicas() -> int:
    """Replicas in sync (1: `keras.distribution` shards the batch, the step sees it whole).

    Returns:
        1.

    Example:
    ```python
    replicas()   # 1
    ```
    """
    return 1


class _NestedScope(StatelessScope):
    """A stateless scope that reads variables it does not map from the enclosing scope and
    records which variables were assigned."""

    def __init__(self, mapping) -> None:
        self.parent = get_stateless_scope()
        super().__init__(state_mapping=mapping)
        self.written: dict[int, Any] = {}

    def add_update(self, update) -> None:
        variable, _ = update
        self.written[id(variable)] = variable
        super().add_update(update)

    def get_current_value(self, variable):
        value = self.state_mapping.get(id(variable))
        if value is None and self.parent is not None:
            value = self.parent.get_current_value(variable)
        return value


def _assign_all(written: dict, values: dict) -> None:
    for key, variable in written.items():
        variable.assign(values[key])


def _recording(fn: Callable, variables: Sequence, written: dict) -> Callable:
    """`fn` as a pure function `(values, *args) -> (out, (aux, updates))` for JAX's transforms.

    `values` stand for `variables` in a nested scope (every other variable reads the enclosing
    scope's value); what `fn` assigns leaves as `updates` (keyed by variable id) and the
    variables themselves are noted in `written`, for `_assign_all` after the transform.
    """

    def run(values, *args):
        with _NestedScope(list(zip(variables, values))) as scope:
            out, aux = fn(*args)
        written.update(scope.written)
        return out, (aux, {k: scope.state_mapping[k] for k in scope.written})

    return run


def value_and_grad(fn: Callable[[], tuple[Any, Any]], variables: Sequence) -> tuple:
    """`fn()`'s value, its aux and the value's gradients with respect to `variables`.

    Works inside the compiled train step (the enclosing `StatelessScope`) and eagerly. The
    variables `fn` assigns are assigned again outside the differentiated function.

    Args:
        fn: a function of no arguments returning `(scalar, aux)`; aux holds tensors only.
        variables: Keras variables; an unconnected one gets a zero gradient.

    Returns:
        `(value, aux, gradients)`.

    Example:
    ```python
    value, aux, grads = value_and_grad(lambda: (ops.sum(v * v), {}), [v])
    ```
    """
    variables = list(variables)
    written: dict[int, Any] = {}
    parent = get_stateless_scope()

    def current(v):
        value = parent.get_current_value(v) if parent is not None else None
        return v.value if value is None else value

    differentiated = _recording(fn, variables, written)
    (value, (aux, updates)), gradients = jax.value_and_grad(differentiated, has_aux=True)(
        [current(v) for v in variables])
    _assign_all(written, updates)
    return value, aux, list(gradients)


def input_gradients(fn: Callable[..., tuple[Any, Any]], inputs: Sequence) -> tuple:
    """`fn(*inputs)`'s value, its aux and the value's gradients with respect to `inputs`.

    Args:
        fn: a function of the tensors `inputs` returning `(scalar, aux)`.
        inputs: tensors.

    Returns:
        `(value, aux, gradients)` (zeros where the value does not depend on an input).

    Example:
    ```python
    value, aux, (gx,) = input_gradients(lambda x: (ops.sum(x * x), None), [x])
    ```
    """
    written: dict[int, Any] = {}

    run = _recording(fn, [], written)

    def differentiated(tensors):
        return run([], *tensors)

    tensors = [jnp.asarray(t) for t in inputs]
    (value, (aux, updates)), gradients = jax.value_and_grad(differentiated, has_aux=True)(tensors)
    _assign_all(written, updates)
    return value, aux, list(gradients)


def no_grad() -> contextlib.AbstractContextManager:
    """A context in which nothing is recorded for gradients (nothing to do on JAX).

    Returns:
        A context manager.

    Example:
    ```python
    with no_grad():
        optimizer.apply(gradients, variables)
    ```
    """
    return contextlib.nullcontext()


def apply_gradients(optimizer, gradients: Sequence, variables: Sequence) -> None:
    """One optimizer update (inside the step's stateless scope its assignments are collected).

    Args:
        optimizer: a Keras optimizer.
        gradients: one per variable.
        variables: the trained variables.

    Returns:
        None.

    Example:
    ```python
    apply_gradients(trainer.optimizer, grads, trainer.trained_variables)
    ```
    """
    optimizer.apply(list(gradients), list(variables))


class _StepScope(StatelessScope):
    """The train step's stateless scope, noting every variable read that is not in its state
    (JAX would compile such a variable's value into the step as a constant)."""

    def __init__(self, mapping) -> None:
        super().__init__(state_mapping=mapping)
        self.untracked: dict[int, Any] = {}

    def get_current_value(self, variable):
        value = super().get_current_value(variable)
        if value is None:
            self.untracked.setdefault(id(variable), variable)
        return value


def train_step(trainer, state, data) -> tuple[dict, tuple]:
    """Keras's JAX `train_step`: the backend-neutral step on the values in `state`.

    Args:
        trainer: a `ContinualTrainer`.
        state: `(trainable, non_trainable, optimizer, metrics)` variable values, in the order of
            the trainer's `trainable_variables`, `non_trainable_variables`, its optimizer's
            `variables` and its `metrics_variables`.
        data: one batch.

    Returns:
        `(logs, new_state)`.

    Example:
    ```python
    logs, state = train_step(trainer, state, (x, y))
    ```
    """
    groups = (trainer.trainable_variables, trainer.non_trainable_variables,
              trainer.optimizer.variables, trainer.metrics_variables)
    mapping = [pair for refs, values in zip(groups, state) for pair in zip(refs, values)]
    with _StepScope(mapping) as scope:
        logs = trainer.continual_step(data)
    if scope.untracked:
        # Traced once: a variable the step reads but the trainer does not track would keep its
        # value of this moment for every later step (a mask, a buffer, a plugin's state).
        from sequential_learning.errors import SeqlError

        names = ", ".join(getattr(v, "path", "?") for v in scope.untracked.values())
        raise SeqlError(f"the JAX train step of {trainer.name} reads variables it does not "
                        f"track ({names}); make them reachable from a plugin's variables() or "
                        "the trainer's own, or they are compiled in as constants")
    new_state = []
    for refs, values in zip(groups, state):
        out = []
        for ref, value in zip(refs, values):
            new = scope.get_current_value(ref)
            out.append(value if new is None else new)
        new_state.append(out)
    return logs, tuple(new_state)


def compiled(fn: Callable, variables: Sequence | Callable[[], Sequence] = (),
             shared: tuple[dict, Any] | None = None) -> Callable:
    """`fn` compiled with `jax.jit`, reading the variables' current values at every call.

    A jitted function would otherwise compile the variables' values in as constants. The
    variables `fn` assigns are assigned after the call. When `fn` creates variables on first
    use (a compiled model's metrics), pass `variables` as a function returning the list: the
    first call then runs `fn` once eagerly inside a `StatelessScope` (the variables are created,
    nothing is assigned, the outputs are dropped) before the compiled call, so every call,
    the first included, gives the compiled function's numbers.

    With `shared = (cache, signature)` the compiled function is kept in `cache` under the
    signature and the variables' shapes, and another `compiled` of a function that computes the
    same (the same `signature`: another task's model with a head of the same size) reuses it
    with its own variables' values: one compilation for both.

    Args:
        fn: a function of arrays that may read and assign Keras variables.
        variables: every Keras variable `fn` reads or assigns, or a function returning them.
        shared: `(cache, signature)`: a dict the compiled function is shared through, and what
            `fn` computes apart from the variables' values (None: nothing shared).

    Returns:
        A function with `fn`'s arguments and outputs.

    Example:
    ```python
    step = compiled(lambda x: model(x, training=False), lambda: model.variables)
    ```
    """
    growing = callable(variables)
    listed = variables if growing else (lambda fixed=list(variables): fixed)
    jitted: dict = {} if shared is None or shared[1] is None else shared[0]
    warm = [] if growing else [True]

    def make(variables):
        @jax.jit
        def pure(values, *args):
            with StatelessScope(state_mapping=list(zip(variables, values))) as scope:
                out = fn(*args)
            new = [scope.get_current_value(v) for v in variables]
            return out, [old if n is None else n for old, n in zip(values, new)]

        return pure

    def call(*args):
        if not warm:
            warm.append(True)
            with StatelessScope():
                fn(*args)
        variables = list(listed())
        if shared is None or shared[1] is None:
            key = tuple(id(v) for v in variables)
        else:
            key = ("compiled", shared[1],
                   tuple((tuple(v.shape), str(v.dtype)) for v in variables))
        if key not in jitted:
            jitted[key] = make(variables)
        out, new = jitted[key]([v.value for v in variables], *args)
        for variable, value in zip(variables, new):
            variable.assign(value)
        return out

    return call


def scan_assigning(fn: Callable[[Any], Any], carried: Sequence, stacked: Any) -> None:
    """Calls `fn(batch)` for every batch of `stacked` (its leading axis) in one `lax.scan`.

    For use inside a compiled function (`compiled`) or eagerly: the `carried` variables (what
    `fn` assigns, e.g. metrics' totals and counts) are threaded through the scan as its carry and
    assigned their final values in the enclosing scope; every other variable `fn` reads comes
    from the enclosing scope and must not be assigned by `fn`.

    Args:
        fn: a function of one batch; its return value is dropped.
        carried: every variable `fn` assigns.
        stacked: batches stacked on a new leading axis (a pytree of arrays).

    Returns:
        None.

    Example:
    ```python
    scan_assigning(lambda batch: test_step(model, batch), model.metrics_variables, stacked)
    ```
    """
    carried = list(carried)
    carried_ids = {id(v) for v in carried}
    parent = get_stateless_scope()

    def current(v):
        value = parent.get_current_value(v) if parent is not None else None
        return v.value if value is None else value

    def body(values, batch):
        with _NestedScope(list(zip(carried, values))) as scope:
            fn(batch)
        unknown = [v for key, v in scope.written.items() if key not in carried_ids]
        if unknown:
            raise ValueError(f"scan_assigning: {unknown[0].path} is assigned but not carried")
        return [scope.get_current_value(v) for v in carried], None

    final, _ = jax.lax.scan(body, [current(v) for v in carried], stacked)
    for variable, value in zip(carried, final):
        variable.assign(value)


def per_sample_gradient_sums(fn: Callable[..., tuple[Any, Any]], variables: Sequence,
                             inputs: Sequence, transform: Callable) -> list:
    """Σ_n Σ_k w_nk · transform(∂ obj_nk / ∂θ) per variable, with exact per-sample gradients.

    `jax.jacrev` over the variables for one sample, `jax.vmap` over the samples; inside the
    compiled step or eagerly (variables not differentiated are read from the enclosing scope).

    Args:
        fn: called with one sample of each of `inputs` (no batch axis); returns
            `(objectives [1, K], weights [1, K])`; the weights are not differentiated.
        variables: the variables to differentiate.
        inputs: arrays with the samples on their first axis.
        transform: applied to every per-sample gradient (a square, an absolute value).

    Returns:
        One array per variable, shaped like it.

    Example:
    ```python
    sums = per_sample_gradient_sums(lambda x, y: objective(model(x[None]), y[None]),
                                    model.trainable_variables, [x, labels], jnp.square)
    ```
    """
    variables = list(variables)
    parent = get_stateless_scope()
    values = [v.value if parent is None or parent.get_current_value(v) is None
              else parent.get_current_value(v) for v in variables]

    def objectives(current, *sample):
        with _NestedScope(list(zip(variables, current))):
            found, weights = fn(*sample)
        return found[0], weights[0]

    def one(*sample):
        jacobians, weights = jax.jacrev(objectives, has_aux=True)(values, *sample)
        weights = jax.lax.stop_gradient(weights)
        return [jnp.tensordot(weights, transform(j), axes=1) for j in jacobians]

    per = jax.vmap(one)(*[jnp.asarray(t) for t in inputs])
    return [jnp.sum(p, axis=0) for p in per]


def per_output_gradients(fn: Callable[..., tuple[Any, Any]], inputs: Sequence) -> tuple:
    """Gradients of each output column's sum with respect to `inputs`: one forward pass, the
    backward passes vectorised (`jax.vjp`, `jax.vmap` over one-hot cotangents).

    Args:
        fn: a function of the tensors `inputs` returning `(outputs [N, K], aux)`.
        inputs: tensors.

    Returns:
        `(outputs, aux, gradients)` with `gradients[k][i]` = ∂ Σ_n outputs[n, k] / ∂ inputs[i].

    Example:
    ```python
    out, aux, grads = per_output_gradients(lambda z: (ops.tanh(z) * w, None), [z])
    ```
    """
    written: dict[int, Any] = {}

    run = _recording(fn, [], written)

    def forward(tensors):
        return run([], *tensors)

    tensors = [jnp.asarray(t) for t in inputs]
    outputs, backward, (aux, updates) = jax.vjp(forward, tensors, has_aux=True)
    _assign_all(written, updates)
    count = outputs.shape[-1]
    one_hot = jnp.eye(count, dtype=outputs.dtype)[:, None, :]
    (stacked,) = jax.vmap(backward)(jnp.broadcast_to(one_hot, (count, *outputs.shape)))
    return outputs, aux, [[g[k] for g in stacked] for k in range(count)]


def scan_steps() -> bool:
    """Whether the train function runs `steps_per_execution` steps as one `lax.scan`.

    On by default on an accelerator, where one compiled call per step leaves the device idle
    between launches; off on the CPU, where Keras's one jitted call per step measured faster
    (MLP 784-400-400-10, batch 128, 8 steps per call: 0.5 s against 1.7 s an epoch of 94
    steps). `SEQL_JAX_SCAN=1` or `0` overrides.

    Returns:
        True to scan.

    Example:
    ```python
    if scan_steps(): ...
    ```
    """
    setting = os.environ.get("SEQL_JAX_SCAN")
    if setting is not None:
        return setting not in ("", "0", "false", "no")
    return jax.default_backend() != "cpu"


def make_train_function(trainer, shared: tuple[dict, Any] | None = None) -> Callable | None:
    """Keras's JAX train function, compiled once per step signature, scanning where it pays.

    The compiled step is a pure function of the trainer's state, so trainers with the same
    signature (`signature.train_step_signature`: the tasks of a task-incremental stream, a head
    of the same size each) share it through `shared`: one compilation per stream instead of one
    per task (`SEQL_JAX_SHARE=0` turns the sharing off). On an accelerator (`scan_steps`) each compiled call takes `steps_per_execution`
    batches stacked into one array and runs them in a `lax.scan` (the state carried), so the
    device runs many steps per launch; a short last group (the end of an epoch) runs step by
    step through the same step function. The numbers are those of Keras's own loop (the same
    step, the same order).

    Args:
        trainer: a `ContinualTrainer` (compiled and built).
        shared: `(cache, signature)`: the run's compiled steps by signature, and this
            trainer's step's (None, or a None signature: nothing shared).

    Returns:
        The train function (`(state, iterator) -> (logs, state)`), or None for Keras's own
        (under a distribution, eagerly, or without jit compilation).

    Example:
    ```python
    trainer.train_function = make_train_function(trainer) or trainer.train_function
    ```
    """
    from keras import tree
    from keras.distribution import distribution

    if trainer.run_eagerly or not trainer.jit_compile or distribution() is not None:
        return None
    steps = int(trainer.steps_per_execution)
    scan = steps > 1 and scan_steps()
    key = cache = None
    if shared is not None and shared[1] is not None \
            and os.environ.get("SEQL_JAX_SHARE", "1") not in ("", "0"):
        cache, key = shared[0], ("train", shared[1], scan)
    if key is not None and key in cache:
        single, many = cache[key]
    else:
        def one(state, data):
            return train_step(trainer, state, data)

        def stepped(state, stacked):
            def body(carry, data):
                logs, carry = one(carry, data)
                return carry, logs

            state, logs = jax.lax.scan(body, state, stacked)
            return tree.map_structure(lambda t: t[-1], logs), state

        single = jax.jit(one, donate_argnums=0)
        many = jax.jit(stepped, donate_argnums=0) if scan else None
        if key is not None:
            cache[key] = (single, many)
    if not scan:
        return trainer._make_function(single)

    def iterator_step(state, iterator):
        batches = [next(iterator)]
        for _ in range(steps - 1):
            try:
                batches.append(next(iterator))
            except StopIteration:
                break
        shapes = {tuple(tuple(t.shape) for t in tree.flatten(b)) for b in batches}
        if len(batches) == steps and len(shapes) == 1:
            return many(state, tree.map_structure(lambda *t: jnp.stack(t), *batches))
        logs = None
        for data in batches:
            logs, state = single(state, data)
        return logs, state

    return iterator_step
