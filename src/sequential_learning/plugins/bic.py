"""BiC (Wu et al. 2019, "Large scale incremental learning"): exemplars, weighted distillation and
a bias correction of the newest classes' logits. Class-incremental streams only.

Memory: `memory` exemplars shared equally by the classes seen so far (m = memory // classes
each), chosen by herding on the shared base's normalised features (as iCaRL, the default) or at
random (`bic_exemplars`). Each class's m are split into training exemplars and held-out ones,
v = round(bic_val_fraction · m) (at least 1; the paper's 9:1 split by default): the held-out
exemplars are never trained on, they only fit the bias correction. When new classes arrive every
class keeps its first m − v training and first v held-out exemplars.

Each task (the paper's two stages):

1. Stage 1 trains on the task's data, less v_old held-out samples per new class (v_old: the old
   classes' held-out count, so the correction's set is balanced; in the first task the
   classes' own v), together with the old classes' training exemplars, on

       L = (1 − λ) · CE(seen classes) + λ · KD,   λ = n_old / (n_old + n_new),
       KD = − Σ_old softmax(ô / T) · log_softmax(o / T)   (batch mean, T = 2),

   where ô are the old classes' logits of the previous model, bias correction included (its
   weights copied into a frozen teacher before the task). The step's own loss is the task's CE;
   the plugin adds `distillation_loss` = λ·KD and `classification_offset` = −λ·CE, so the
   total is exactly the paper's (a weight on the whole loss would be invisible to Adam but not
   to SGD).
2. Stage 2, after the last epoch of every task from the second on, before the task's row of the
   accuracy matrix is measured (the hook `before_exp_evaluation`): the network frozen, the two
   parameters of the bias layer, o'_k = α o_k + β for the new classes k (the old classes'
   logits unchanged), minimise the cross-entropy over every class seen so far on the held-out
   exemplars of the old classes and the held-out samples of the new ones (`fit_bias`). The
   problem is convex in (α, β) (logits linear in them, log-sum-exp convex), so we solve it to
   convergence with SciPy's L-BFGS-B from (1, 0) instead of the paper's SGD epochs; α ∈ [0, 100]
   and |β| ≤ 100 keep a separable held-out set (whose loss falls forever) finite.

The correction is folded exactly into the last Dense layer (`fold_bias`): W_k ← α W_k,
b_k ← α b_k + β for the new classes' columns, since α (W_k h + b_k) + β = (α W_k) h +
(α b_k + β). Chosen over a separate bias layer because everything that reads the model (the
compiled evaluation, the next task's teacher, checkpoints, saved models, `seql explain`) then
sees the corrected outputs with no change to the models' graph, no custom layer to register for
saving, and no second compiled evaluation. The one difference from PyCIL's frozen bias layers:
the next tasks train the folded weights, so a gradient step moves a corrected class's logits by
α² (SGD) or α (Adam) times what it would move them through a frozen layer — the same outputs,
a slightly different parametrisation. The last layer must be a Dense layer with a bias and no
activation (the logits); anything else is refused.

Where we differ from PyCIL's BiC: the held-out exemplars stay held out (PyCIL draws a new
validation split from the memory every task, so earlier validation samples may be trained on
later), no data augmentation, and stage 2 is solved exactly rather than by SGD on a quirky
`cross_entropy(softmax(logits))`.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from sequential_learning.plugins.base import Experience, Plugin, Run, Step
from sequential_learning.plugins.herding import (
    ExemplarMemory,
    Key,
    features,
    herding,
    stream_classes,
    stream_scenario,
)
from sequential_learning.plugins.icarl import SoftTargetDistillation
from sequential_learning.plugins.registry import (
    BIC_EXEMPLARS,
    BIC_TEMPERATURE,
    BIC_VAL_FRACTION,
    MEMORY,
)
from sequential_learning.plugins.replay import check_memory_fits
from sequential_learning.saved_state import state_array

#: Bounds of the bias layer's parameters (α, β) in the fit.
BOUNDS = ((0.0, 100.0), (-100.0, 100.0))


class BiC(Plugin):
    """Bias correction: held-out exemplars fit α, β of the newest classes' logits.

    Args:
        memory: exemplars kept, every class together (`memory // classes seen` each).
        bic_val_fraction: the share of each class's exemplars held out of training, in (0, 0.5].
        bic_exemplars: `herding` or `random`: how each class's training exemplars are chosen.
        bic_temperature: T > 0 of the distillation.
        seed: seed of the held-out and random choices (None: the run's seed).

    Example:
    ```python
    manager = SequentialLearningManager(base, tasks, method=BiC(memory=500))
    results = manager.train_all()
    [s.get("bic") for s in results.task_summaries]     # alpha, beta of each task
    ```
    """

    name = "bic"
    family = "replay"
    log_names = ("distillation_loss", "classification_offset")
    task_types = ("classification",)
    needs_boundaries = True
    boundary_use = ("it holds out samples when a task starts and fits its bias correction when "
                    "the task's training ends")

    def __init__(self, memory: int = MEMORY.default,
                 bic_val_fraction: float = BIC_VAL_FRACTION.default,
                 bic_exemplars: str = BIC_EXEMPLARS.default,
                 bic_temperature: float = BIC_TEMPERATURE.default,
                 seed: int | None = None) -> None:
        for option, value in ((MEMORY, memory), (BIC_VAL_FRACTION, bic_val_fraction),
                              (BIC_EXEMPLARS, bic_exemplars),
                              (BIC_TEMPERATURE, bic_temperature)):
            option.validate(value)
        self.memory = int(memory)
        self.val_fraction = float(bic_val_fraction)
        self.selection = bic_exemplars
        self.temperature = float(bic_temperature)
        self.seed = seed

    def check(self, run: Run) -> None:
        super().check(run)
        scenario = stream_scenario(run)
        if scenario != "class":
            raise ValueError("bic: needs a class-incremental stream (--scenario class): it "
                             "corrects one head's bias towards the newest classes; this one is "
                             f"{scenario}-incremental")
        run.require_arrays(self.name, "it keeps exemplars of each class")
        check_memory_fits(self.name, self.memory, run)
        task = run.tasks[0]
        layer = output_dense(task.model)
        if layer is None or not getattr(task, "from_logits", True):
            last = task.model.layers[-1]
            raise ValueError(f"bic: needs a model whose last layer is a Dense layer with a bias "
                             f"and no activation (the logits it corrects); {task.model.name!r} "
                             f"ends in {type(last).__name__} {last.name!r}")
        classes = sum(len(keys) for keys in stream_classes(run.tasks))
        if self.memory // classes < 2:
            raise ValueError(f"memory: {self.memory} leaves {self.memory // classes} exemplar(s) "
                             f"per class for the stream's {classes} classes; bic needs at least "
                             "2 (one held out for the bias correction)")
        if self.selection == "herding" and run.base_model is None:
            raise ValueError("bic_exemplars herding needs the shared base (its features); this "
                             "run has none: use random")

    def build(self, run: Run) -> None:
        self.run = run
        self.classes = stream_classes(run.tasks)
        every = [key for keys in self.classes for key in keys]
        input_shape = np.asarray(run.tasks[0].train_data[0]).shape[1:]
        self.exemplars = ExemplarMemory(self.memory, input_shape, self.name, every)
        self.head = output_dense(run.tasks[0].model)
        self.lam = keras.Variable(0.0, trainable=False, dtype="float32", name="bic_lambda")
        self.distillation = SoftTargetDistillation(1.0, self.temperature, name=self.name)
        self.distillation.build(run)
        self.bias = np.tile([1.0, 0.0], (run.num_tasks, 1))  # (α, β) of each task
        self._seed = run.seed if self.seed is None else self.seed
        self._held_new: dict[Key, np.ndarray] = {}

    def variables(self) -> list:
        """The teacher's copies, the distillation's switches and λ."""
        return [*self.distillation.variables(), self.lam]

    def held_count(self, per_class: int) -> int:
        """Held-out exemplars of a class that keeps `per_class`: round(fraction · m), at least
        1 and at most m − 1.

        Args:
            per_class: the class's exemplars, m.

        Returns:
            v.
        """
        held = int(np.floor(self.val_fraction * per_class + 0.5))
        return max(1, min(held, per_class - 1))

    def _old_and_new(self, index: int) -> tuple[list[Key], list[Key]]:
        return [k for keys in self.classes[:index] for k in keys], list(self.classes[index])

    def routed_tasks(self, exp: Experience) -> int:
        return exp.index + 1

    def before_training_exp(self, exp: Experience) -> None:
        """Takes the teacher, sets λ and holds out v_old samples of each new class."""
        self.distillation.before_training_exp(exp)
        old, new = self._old_and_new(exp.index)
        self.lam.assign(len(old) / (len(old) + len(new)))
        held = self.held_count(self.memory // len(old or new))
        y = np.asarray(exp.task.train_data[1]).reshape(-1)
        rng = np.random.default_rng([self._seed, exp.index, 1])
        self._held_new = {}
        for key in new:
            rows = np.flatnonzero(y == key[1])
            self._held_new[key] = rng.choice(rows, min(held, len(rows) - 1), replace=False)

    def adapt_dataset(self, dataset: Any, exp: Experience) -> Any:
        """The task's data less its held-out samples, and the old classes' training
        exemplars, shuffled together."""
        from sequential_learning.pipeline import array_dataset

        task = exp.task
        x_own, y_own = (np.asarray(a) for a in task.train_data)
        keep = np.ones(len(x_own), bool)
        for rows in self._held_new.values():
            keep[rows] = False
        x_memory, y_memory, _ = self.exemplars.arrays("train")
        x = np.concatenate([x_own[keep].astype(np.float32), x_memory])
        y = np.concatenate([y_own[keep], y_memory.astype(y_own.dtype)])
        return array_dataset(x, y, task.batch_size, task.shuffle_seed + exp.run.seed * 1000
                             + exp.index)

    def extra_losses(self, step: Step) -> dict[str, Any]:
        lam = ops.convert_to_tensor(self.lam)
        kd = self.distillation.extra_losses(step)["distillation_loss"]
        return {"distillation_loss": lam * kd,
                "classification_offset": -lam * ops.cast(step.task_loss, "float32")}

    def before_exp_evaluation(self, exp: Experience) -> None:
        """Stage 2: fits α, β on the held-out samples and folds them into the last layer."""
        if exp.index == 0:
            return
        old, new = self._old_and_new(exp.index)
        x_old, y_old, _ = self.exemplars.arrays("held", old)
        x_own, y_own = (np.asarray(a) for a in exp.task.train_data)
        rows = np.concatenate([self._held_new[key] for key in new])
        x = np.concatenate([x_old, x_own[rows].astype(np.float32)])
        y = np.concatenate([y_old, y_own[rows].reshape(-1).astype(np.int32)])
        seen = np.asarray(sorted(k[1] for k in old + new))
        new_labels = np.asarray(sorted(k[1] for k in new))
        logits = features(exp.model, x)[:, seen]
        position = {int(c): i for i, c in enumerate(seen)}
        targets = np.asarray([position[int(c)] for c in y])
        alpha, beta = fit_bias(logits, targets, np.isin(seen, new_labels))
        fold_bias(self.head, new_labels, alpha, beta)
        self.bias[exp.index] = (alpha, beta)
        before = _cross_entropy(logits, targets)
        after = _cross_entropy(apply_bias(logits, np.isin(seen, new_labels), alpha, beta),
                               targets)
        exp.summary["bic"] = {"alpha": alpha, "beta": beta, "held_out_samples": int(len(y)),
                              "held_out_loss_before": before, "held_out_loss_after": after}

    def after_training_exp(self, exp: Experience) -> None:
        """Cuts every class to the new share and keeps the new classes' exemplars."""
        old, new = self._old_and_new(exp.index)
        per_class = self.memory // len(old + new)
        held = self.held_count(per_class)
        train = per_class - held
        self.exemplars.cut(train, held)
        x, y = (np.asarray(a) for a in exp.task.train_data)
        y = y.reshape(-1)
        rng = np.random.default_rng([self._seed, exp.index, 2])
        for key in new:
            held_rows = self._held_new[key]
            pool = np.setdiff1d(np.flatnonzero(y == key[1]), held_rows)
            if self.selection == "herding":
                order = herding(features(self.run.base_model, x[pool]), train)
            else:
                order = rng.choice(len(pool), min(train, len(pool)), replace=False)
            self.exemplars.put(key, x[pool[order]], x[held_rows[:held]])
        summary = exp.summary.setdefault("bic", {})
        summary.update({"lambda": len(old) / (len(old) + len(new)),
                        "exemplars_per_class": per_class, "held_out_per_class": held,
                        "exemplars": self.exemplars.composition()})

    def state(self) -> dict[str, np.ndarray]:
        out = {f"exemplars_{k}": v for k, v in self.exemplars.state().items()}
        out["bias"] = self.bias.copy()
        return out

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restores what `state` returned, after checking every key.

        Raises:
            CheckpointError: a key is missing or has another shape or dtype, or an exemplar
                names a class the stream does not have; nothing is changed then.
        """
        bias = state_array(self.name, state, "bias", self.bias.shape)
        self.exemplars.load_state({k[len("exemplars_"):]: v for k, v in state.items()
                                   if k.startswith("exemplars_")})
        self.bias = np.array(bias, np.float64)

    def describe(self) -> dict:
        return {"memory": self.memory, "bic_val_fraction": self.val_fraction,
                "bic_exemplars": self.selection, "bic_temperature": self.temperature}


def output_dense(model: keras.Model) -> keras.layers.Dense | None:
    """The model's last layer when it is a Dense layer with a bias and no activation, else None.

    Args:
        model: a task model.

    Returns:
        The layer, or None.

    Example:
    ```python
    output_dense(tasks[0].model).name    # 'head'
    ```
    """
    if len(model.outputs) != 1 or not model.layers:
        return None
    layer = model.layers[-1]
    linear = getattr(layer, "activation", None) in (None, keras.activations.linear)
    if isinstance(layer, keras.layers.Dense) and linear and layer.use_bias:
        return layer
    return None


def apply_bias(logits: np.ndarray, new: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """The bias layer: α o + β on the new classes' logits, the others unchanged.

    Args:
        logits: `[n, c]`.
        new: `[c]` booleans, True for the new classes.
        alpha: α.
        beta: β.

    Returns:
        The corrected logits, `[n, c]` (float64).

    Example:
    ```python
    apply_bias(np.array([[1.0, 2.0]]), np.array([False, True]), 0.5, -1.0)   # [[1.0, 0.0]]
    ```
    """
    logits = np.asarray(logits, np.float64)
    return np.where(np.asarray(new, bool)[None, :], alpha * logits + beta, logits)


def _cross_entropy(logits: np.ndarray, targets: np.ndarray) -> float:
    z = logits - logits.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_p[np.arange(len(targets)), targets].mean())


def fit_bias(logits: np.ndarray, targets: np.ndarray, new: np.ndarray) -> tuple[float, float]:
    """BiC's stage 2: the (α, β) minimising the mean cross-entropy of `apply_bias(logits)`.

    Convex in (α, β); solved by SciPy's L-BFGS-B with the analytic gradient from (1, 0), within
    `BOUNDS`.

    Args:
        logits: `[n, c]` logits over the classes seen so far (the network frozen).
        targets: `[n]` the true class of each sample, as a column of `logits`.
        new: `[c]` booleans, True for the newest task's classes.

    Returns:
        `(alpha, beta)` as floats.

    Example:
    ```python
    alpha, beta = fit_bias(logits, targets, np.isin(seen, new_classes))
    ```
    """
    from scipy.optimize import minimize

    z = np.asarray(logits, np.float64)
    targets = np.asarray(targets, np.int64)
    new = np.asarray(new, bool)
    n = len(z)
    onehot = np.zeros_like(z)
    onehot[np.arange(n), targets] = 1.0

    def objective(p):
        corrected = apply_bias(z, new, p[0], p[1])
        shifted = corrected - corrected.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        loss = -np.sum(log_p * onehot) / n
        delta = (np.exp(log_p) - onehot)[:, new] / n
        return loss, np.array([np.sum(delta * z[:, new]), np.sum(delta)])

    found = minimize(objective, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B",
                     bounds=BOUNDS, options={"maxiter": 1000, "gtol": 1e-10, "ftol": 1e-15})
    return float(found.x[0]), float(found.x[1])


def fold_bias(layer: keras.layers.Dense, classes: np.ndarray, alpha: float, beta: float) -> None:
    """Folds the bias layer into a Dense layer's columns of `classes`: W_k ← α W_k,
    b_k ← α b_k + β (its outputs there become α o_k + β; the other columns are unchanged).

    Args:
        layer: the model's last Dense layer (no activation).
        classes: the columns (class indices) to correct.
        alpha: α.
        beta: β.

    Returns:
        None.

    Example:
    ```python
    fold_bias(output_dense(model), np.array([8, 9]), 0.8, -0.3)
    ```
    """
    classes = np.asarray(classes, np.int64)
    kernel = np.array(ops.convert_to_numpy(layer.kernel), np.float64)
    bias = np.array(ops.convert_to_numpy(layer.bias), np.float64)
    kernel[:, classes] *= alpha
    bias[classes] = alpha * bias[classes] + beta
    layer.kernel.assign(kernel.astype(layer.kernel.dtype))
    layer.bias.assign(bias.astype(layer.bias.dtype))
