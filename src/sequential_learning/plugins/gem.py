"""GEM (Lopez-Paz & Ranzato 2017, "Gradient episodic memory for continual learning").

An episodic memory keeps `memory // T` random samples of each finished task (T tasks in the
stream, as A-GEM here and GEM's `n_memories` per task). Every step computes, for each earlier
task k, the gradient g_k of the loss on *all* of task k's memory (each sample through its own
task's model), and, when the step's gradient g would raise any of those losses (g · g_k < 0 for
some k), replaces g by the projection of the paper's dual quadratic program: with G the matrix
of the g_k (one row each),

    min_v ½ vᵀ (G Gᵀ + εI) v + gᵀ Gᵀ v   subject to   v ≥ margin,      g̃ = Gᵀ v + g.

As the authors' code (`project2cone2`, also Mammoth's): ε = 1e-3 on the diagonal, and the margin
(`gem_margin`, their `memory_strength`, default 0.5) is the lower bound on v, which biases the
update towards lowering the old tasks' losses. With no conflict the gradient is left as it is.
The dot products run over every variable the step trains.

The QP is solved inside the compiled step in `keras.ops` (`solve_gem_dual`), not by a solver
library: quadprog, qpsolvers or cvxpy run on NumPy arrays on the host, and cannot run inside a
compiled step (a TensorFlow graph, a JAX trace, a torch step) without a host round trip every
step. The QP has one unknown per earlier task, so it is tiny and of a size fixed per task: up to
`ENUMERATED` constraints every active set is tried at once (a batch of small linear solves, exact
to float32 rounding: the one that satisfies the KKT conditions is the solution); above that,
projected Gauss-Seidel (Hildreth's method) runs a fixed number of sweeps.

Under a strategy with several replicas g and every g_k are summed across replicas before the
projection, as A-GEM here. Where the trainer is shared by tasks (one head for all: domain- and
class-incremental streams) the step is traced once, so there are always T − 1 constraints, those
of tasks not yet finished masked out (their memory is empty); with a head per task the trainer is
made per task and task k has k constraints. On TensorFlow (one replica) the memory's passes are
skipped while nothing is stored (`tf.cond`); elsewhere they run with no effect (as A-GEM).
Mammoth trains GEM as a class-incremental learner with one head; here with a head per task each
memory sample goes through its own task's head.
"""

from __future__ import annotations

import itertools
from typing import Any

import keras
import numpy as np
from keras import ops

from sequential_learning import backend
from sequential_learning.plugins.base import Experience, Run, Step
from sequential_learning.plugins.buffer import MemoryBuffer, buffer_for
from sequential_learning.plugins.registry import GEM_MARGIN, MEMORY
from sequential_learning.plugins.rehearsal import RehearsalPlugin
from sequential_learning.plugins.replay import check_memory_fits

#: Up to this many constraints the dual QP is solved by trying every active set (2^n small
#: linear solves); above it by projected Gauss-Seidel.
ENUMERATED = 12
#: Sweeps of projected Gauss-Seidel (more than ENUMERATED constraints).
SWEEPS = 500
#: The authors' ε on the diagonal of G Gᵀ.
EPSILON = 1e-3


class GEM(RehearsalPlugin):
    """Gradient episodic memory: the gradient projected so no earlier task's memory loss rises.

    Args:
        memory: samples of memory, all tasks together (`memory // T` per task).
        gem_margin: the lower bound on the dual variables (the authors' `memory_strength`): 0
            is the plain projection, larger values favour lowering old tasks' losses.
        seed: seed of the memory's draws (None: the run's seed).

    Logs `projected`: the fraction of steps whose gradient was projected.

    Example:
    ```python
    manager = SequentialLearningManager(base, tasks, method=GEM(memory=500, gem_margin=0.5))
    ```
    """

    name = "gem"
    family = "projection"
    log_names = ("projected",)
    needs_boundaries = True
    boundary_use = "it fills each task's episodic memory when the task ends"

    def __init__(self, memory: int = MEMORY.default, gem_margin: float = GEM_MARGIN.default,
                 seed: int | None = None) -> None:
        MEMORY.validate(memory)
        GEM_MARGIN.validate(gem_margin)
        self.memory = int(memory)
        self.margin = float(gem_margin)
        self.seed = seed

    def check(self, run: Run) -> None:
        super().check(run)
        check_memory_fits(self.name, self.memory, run)
        if self.memory < run.num_tasks:
            raise ValueError(f"memory: {self.memory} is smaller than the {run.num_tasks} tasks "
                             "(gem keeps memory // tasks samples of each)")
        run.require_arrays(self.name, "it fills its memory from each finished task")

    def build(self, run: Run) -> None:
        self._seed = run.seed if self.seed is None else self.seed
        self.num_tasks = run.num_tasks
        self.shared_head = run.shared_head
        self.per_task = self.memory // run.num_tasks
        self.buffer: MemoryBuffer = buffer_for(run.tasks, self.per_task * run.num_tasks,
                                               seed=self._seed + 4, name="gem")
        self.buffer.build()
        self.current_task = keras.Variable(0, dtype="int32", trainable=False, name="gem_task")

    def after_training_exp(self, exp: Experience) -> None:
        x, y = exp.task.sample(self.per_task, seed=self._seed + 7 * exp.index + 6)
        self.buffer.fill_slots(exp.index * self.per_task, np.asarray(x, np.float32), y, exp.index)
        exp.summary["gem_memory"] = self.buffer.composition()

    def _constraints(self, step: Step) -> int:
        """The QP's size, fixed when the step is traced: T − 1 with one model for every task,
        else the earlier tasks whose heads the step routes to."""
        if self.shared_head:
            return self.num_tasks - 1
        return min(len(step.trainer.router.tasks), self.num_tasks) - 1

    def transform_gradients(self, step: Step, gradients: list) -> list:
        gradients = list(gradients)
        n = self._constraints(step)
        if n <= 0:
            step.log("projected", ops.zeros((), "float32"))
            return gradients
        variables = step.variables
        ops_module = backend.ops()

        def project():
            memory_x = ops.convert_to_tensor(self.buffer.x)
            memory_y = ops.convert_to_tensor(self.buffer.y)
            memory_task = ops.convert_to_tensor(self.buffer.task)
            references = []
            for k in range(n):
                rows = slice(k * self.per_task, (k + 1) * self.per_task)

                def memory_loss(rows=rows):
                    loss = step.loss(memory_x[rows], memory_y[rows], memory_task[rows])
                    return step.trainer.optimizer.scale_loss(loss), {}

                references.append(ops_module.value_and_grad(memory_loss, variables)[2])
            own = gradients
            if step.replicas > 1:  # TensorFlow's strategies only
                import tensorflow as tf

                context = tf.distribute.get_replica_context()
                own = context.all_reduce(tf.distribute.ReduceOp.SUM, own)
                references = [context.all_reduce(tf.distribute.ReduceOp.SUM, r)
                              for r in references]
            active = ops.cast(ops.arange(n) < ops.convert_to_tensor(self.current_task),
                              "float32")
            g = _flat(own)
            memory = ops.stack([_flat(r) for r in references]) * active[:, None]  # [n, D]
            dots = ops.matmul(memory, g)  # g · g_k
            conflict = ops.any(ops.logical_and(dots < 0, active > 0))
            products = ops.matmul(memory, ops.transpose(memory))
            products = 0.5 * (products + ops.transpose(products))
            v = solve_gem_dual(products + EPSILON * ops.eye(n), dots,
                               ops.full((n,), self.margin) * active)
            v = ops.where(conflict, v * active, ops.zeros_like(v))
            projected = g + ops.matmul(v, memory)
            out = _unflat(projected, own)
            if step.replicas > 1:  # a share again: apply_gradients sums the replicas'
                out = [t / float(step.replicas) for t in out]
            return out, ops.cast(conflict, "float32")

        if backend.is_tensorflow() and step.replicas == 1:
            # TensorFlow skips the memory's passes until a task has ended (JAX would trace both
            # branches, and a branch may not hold a strategy's all-reduce).
            import tensorflow as tf

            has_data = ops.convert_to_tensor(self.buffer.filled) > 0
            out, flag = tf.cond(has_data, project, lambda: (gradients, tf.constant(0.0)))
        else:
            out, flag = project()
        step.log("projected", flag)
        return list(out)

    def describe(self) -> dict:
        return {"memory": self.memory, "memory_per_task": self.per_task,
                "gem_margin": self.margin}


def solve_gem_dual(products: Any, dots: Any, lower: Any, sweeps: int | None = None) -> Any:
    """The minimiser of ½ vᵀ P v + qᵀ v subject to v ≥ `lower`, in `keras.ops` (GEM's dual).

    P must be symmetric positive definite (GEM adds εI to G Gᵀ). Up to `ENUMERATED` unknowns
    (and without `sweeps`) every active set S is tried at once: v − lower solves the system of
    the free unknowns S with the others at 0, and the set whose solution satisfies the KKT
    conditions (v ≥ lower; the gradient P v + q ≥ 0 where v is at its bound) is the answer,
    exact up to float32 rounding. With more unknowns, or `sweeps` given, projected Gauss-Seidel
    (Hildreth's method) runs that many sweeps (default `SWEEPS`) from v = lower.

    Args:
        products: P, `[n, n]`.
        dots: q, `[n]`.
        lower: the lower bounds, `[n]`.
        sweeps: run projected Gauss-Seidel for this many sweeps instead of the enumeration.

    Returns:
        v, `[n]` (float32).

    Example:
    ```python
    v = solve_gem_dual(ops.eye(2), ops.array([-1.0, 2.0]), ops.zeros(2))    # [1, 0]
    ```
    """
    p = ops.cast(ops.convert_to_tensor(products), "float32")
    q = ops.cast(ops.convert_to_tensor(dots), "float32")
    low = ops.cast(ops.convert_to_tensor(lower), "float32")
    n = int(p.shape[0])
    # One scale for P and q (the solution does not change): float32 stays in range.
    scale = ops.maximum(ops.max(ops.abs(ops.diagonal(p))), 1e-30)
    p, q = p / scale, q / scale
    c = ops.matmul(p, low) + q  # the linear term for u = v − lower ≥ 0
    if sweeps is None and n <= ENUMERATED:
        return low + _enumerate_active_sets(p, c, n)
    return low + _gauss_seidel(p, c, n, SWEEPS if sweeps is None else int(sweeps))


def _enumerate_active_sets(p, c, n: int):
    """min ½ uᵀPu + cᵀu, u ≥ 0, by trying every set of free unknowns."""
    free = ops.convert_to_tensor(
        np.array(list(itertools.product((0.0, 1.0), repeat=n)), np.float32))  # [2^n, n]
    fixed = 1.0 - free
    systems = free[:, :, None] * p[None] * free[:, None, :] + fixed[:, :, None] * ops.eye(n)
    u = ops.solve(systems, (-free * c[None])[:, :, None])[:, :, 0]  # 0 where not free
    gradient = ops.matmul(u, p) + c[None]  # P u + c (P symmetric)
    # KKT: u ≥ 0 where free (the gradient is 0 there by construction), gradient ≥ 0 elsewhere.
    violation = ops.max(ops.maximum(-u * free, 0.0) + ops.maximum(-gradient * fixed, 0.0),
                        axis=1)
    best = ops.argmin(violation)
    return ops.maximum(ops.take(u, best, axis=0), 0.0)


def _gauss_seidel(p, c, n: int, sweeps: int):
    """min ½ uᵀPu + cᵀu, u ≥ 0, by projected Gauss-Seidel from u = 0."""
    diagonal = ops.diagonal(p)
    unit = ops.eye(n)

    def sweep(_, u):
        for i in range(n):
            residual = ops.sum(p[i] * u) + c[i]
            moved = ops.maximum(u[i] - residual / diagonal[i], 0.0)
            u = u + unit[i] * (moved - u[i])
        return u

    return ops.fori_loop(0, sweeps, sweep, ops.zeros((n,), "float32"))


def _flat(tensors: list):
    """The tensors flattened and concatenated into one vector."""
    return ops.concatenate([ops.reshape(ops.cast(t, "float32"), (-1,)) for t in tensors])


def _unflat(vector, like: list) -> list:
    """`vector` cut back into tensors shaped (and typed) like `like`."""
    out, start = [], 0
    for t in like:
        size = int(np.prod(t.shape))
        out.append(ops.cast(ops.reshape(vector[start:start + size], t.shape), t.dtype))
        start += size
    return out
