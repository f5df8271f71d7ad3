"""Exemplars of each class: herding, class means and nearest-mean-of-exemplars (iCaRL, BiC).

iCaRL (Rebuffi et al. 2017, "iCaRL: Incremental classifier and representation learning") keeps
a few exemplars of every class seen, chosen by *herding* (its Algorithm 4): the features of a
class's samples are L2-normalised, μ is their mean, and exemplar k is the sample, not yet chosen,
whose addition brings the mean of the chosen ones closest to μ,

    p_k = argmin_x ‖ μ − (φ(x) + Σ_{j<k} φ(p_j)) / k ‖,

so the first m of a class's exemplars are its best m (a class is cut to its first m when new
classes take memory). A class's mean is the mean of its exemplars' normalised features,
normalised again; the nearest-mean-of-exemplars classifier (NME) gives a sample the class whose
mean is nearest to its normalised features. We follow PyCIL's `icarl.py` (a chosen sample is not
chosen again; the mean is recomputed from the exemplars with the current network after every
task; ε = 1e-8 in the features' normalisation).

Everything here runs on the Python side, in NumPy (float64), after a task: the hooks of the
plugins call it from `after_training_exp`, never inside the compiled step. `ExemplarMemory`
keeps the exemplars in class order and checkpoints them as fixed-shape arrays.

Example:
```python
feats = features(run.base_model, x_class)       # [n, d], the base's outputs
order = herding(feats, 20)                       # the 20 exemplars, best first
mean = class_mean(features(run.base_model, x_class[order]))
labels = nme_predict(features(run.base_model, x_val), np.stack(means))
```
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from sequential_learning import backend
from sequential_learning.saved_state import state_array

#: Added to a feature vector's norm before dividing by it (PyCIL's EPSILON).
EPSILON = 1e-8


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Each row divided by its L2 norm (plus `EPSILON`), in float64.

    Args:
        vectors: `[n, d]` feature vectors.

    Returns:
        `[n, d]` rows of norm 1 (0 rows stay 0).

    Example:
    ```python
    normalise(np.array([[3.0, 4.0]]))    # [[0.6, 0.8]]
    ```
    """
    vectors = np.asarray(vectors, np.float64)
    return vectors / (np.linalg.norm(vectors, axis=1, keepdims=True) + EPSILON)


def features(model: keras.Model, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """The model's outputs on `x` in inference mode (`training=False`), flattened to `[n, d]`.

    Args:
        model: the shared base (its outputs are the features).
        x: the inputs.
        batch_size: inputs per forward pass.

    Returns:
        A float64 array `[n, d]` (not normalised).

    Example:
    ```python
    feats = features(run.base_model, x_train[y_train == 3])
    ```
    """
    x = np.asarray(x, np.float32)
    out = []
    with backend.ops().no_grad():
        for start in range(0, len(x), batch_size):
            values = model(x[start:start + batch_size], training=False)
            out.append(np.array(keras.ops.convert_to_numpy(values), np.float64))
    if not out:
        width = int(np.prod(model.output_shape[1:]))
        return np.zeros((0, width))
    return np.concatenate(out).reshape(len(x), -1)


def herding(vectors: np.ndarray, count: int) -> np.ndarray:
    """iCaRL's herding: the indices of `count` exemplars of one class, best first.

    The vectors are L2-normalised first; μ is their mean. Step k (from 1) picks the row i, not
    picked before, that minimises ‖μ − (S + φ_i) / k‖ where S is the sum of the rows picked so
    far (computed as argmin ‖φ_i‖² − 2 φ_i · (kμ − S), the same minimiser). Ties go to the
    lowest index.

    Args:
        vectors: `[n, d]` features of the class's samples (not necessarily normalised).
        count: how many to pick (at most n are).

    Returns:
        An int64 array of `min(count, n)` distinct row indices, in the order picked.

    Example:
    ```python
    herding(np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]]), 2)    # array([2, 0])
    ```
    """
    phi = normalise(vectors)
    n = len(phi)
    count = min(int(count), n)
    mean = phi.mean(axis=0) if n else np.zeros(phi.shape[1:])
    squares = np.sum(phi * phi, axis=1)
    picked = np.zeros(n, bool)
    total = np.zeros_like(mean)
    order = []
    for k in range(1, count + 1):
        score = squares - 2.0 * phi @ (k * mean - total)
        score[picked] = np.inf
        i = int(np.argmin(score))
        order.append(i)
        picked[i] = True
        total += phi[i]
    return np.asarray(order, np.int64)


def class_mean(vectors: np.ndarray) -> np.ndarray:
    """A class's mean for NME: the mean of its exemplars' normalised features, normalised.

    Args:
        vectors: `[n, d]` features of the class's exemplars (n >= 1).

    Returns:
        A unit vector `[d]`.

    Example:
    ```python
    class_mean(np.array([[2.0, 0.0], [0.0, 5.0]]))    # [0.7071, 0.7071]
    ```
    """
    mean = normalise(vectors).mean(axis=0)
    return mean / np.linalg.norm(mean)


def nme_predict(vectors: np.ndarray, means: np.ndarray) -> np.ndarray:
    """Nearest mean of exemplars: for each sample, the row of `means` nearest to its
    normalised features (squared Euclidean distance; ties to the lowest row).

    Args:
        vectors: `[n, d]` features of the samples.
        means: `[c, d]` class means (`class_mean`), one row per candidate class.

    Returns:
        An int64 array `[n]` of rows of `means`.

    Example:
    ```python
    nme_predict(np.array([[1.0, 0.1]]), np.array([[0.0, 1.0], [1.0, 0.0]]))    # array([1])
    ```
    """
    phi = normalise(vectors)
    means = np.asarray(means, np.float64)
    distances = (np.sum(phi ** 2, axis=1)[:, None] - 2.0 * phi @ means.T
                 + np.sum(means ** 2, axis=1)[None, :])
    return np.argmin(distances, axis=1).astype(np.int64)


Key = tuple[int, int]


class ExemplarMemory:
    """A fixed budget of exemplars kept per class, in the order they were chosen.

    A class is keyed `(task, label)`: a label alone names a class in a class-incremental stream,
    but in a task-incremental one every task has its own label 0. Each class holds a `train`
    group (replayed in training) and, for BiC, a `held` group (kept apart from training: the
    bias correction's validation samples). NumPy on the Python side; `state()` writes
    `capacity` rows whatever is filled, so checkpoints have fixed shapes.

    Args:
        capacity: the most exemplars held, every class and group together.
        input_shape: the shape of one input.
        name: the owner's name, for checkpoint messages.
        classes: every class key of the stream, in order (a checkpointed key must be one of them).

    Example:
    ```python
    memory = ExemplarMemory(500, (784,), "icarl", classes=[(0, 0), (0, 1), (1, 2), (1, 3)])
    memory.put((0, 0), x_chosen)
    memory.cut(train=125)                 # every class keeps its first 125
    x, y, task = memory.arrays()
    ```
    """

    def __init__(self, capacity: int, input_shape: Sequence[int], name: str,
                 classes: Sequence[Key]) -> None:
        self.capacity = int(capacity)
        self.input_shape = tuple(int(d) for d in input_shape)
        self.name = name
        self.known = [(int(t), int(c)) for t, c in classes]
        self.groups: dict[Key, dict[str, np.ndarray]] = {}

    @property
    def classes(self) -> list[Key]:
        """The classes held, in the order they came."""
        return list(self.groups)

    def size(self) -> int:
        """Exemplars held, every group together."""
        return sum(len(g[k]) for g in self.groups.values() for k in g)

    def put(self, key: Key, train: np.ndarray, held: np.ndarray | None = None) -> None:
        """Sets a class's exemplars (best first).

        Args:
            key: `(task, label)`.
            train: its exemplars for training, `[n, *input_shape]`.
            held: its held-out exemplars (None: none).

        Returns:
            None.
        """
        empty = np.zeros((0, *self.input_shape), np.float32)
        self.groups[(int(key[0]), int(key[1]))] = {
            "train": np.asarray(train, np.float32).reshape((-1, *self.input_shape)),
            "held": empty if held is None else
            np.asarray(held, np.float32).reshape((-1, *self.input_shape)),
        }
        if self.size() > self.capacity:
            raise ValueError(f"{self.name}: {self.size()} exemplars exceed the memory of "
                             f"{self.capacity}")

    def cut(self, train: int, held: int = 0) -> None:
        """Keeps every class's first `train` training and first `held` held-out exemplars.

        Args:
            train: training exemplars kept per class.
            held: held-out exemplars kept per class.

        Returns:
            None.
        """
        for group in self.groups.values():
            group["train"] = group["train"][:train]
            group["held"] = group["held"][:held]

    def arrays(self, group: str = "train", classes: Sequence[Key] | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The exemplars of one group as `(x, label, task)` arrays, class after class.

        Args:
            group: `train` or `held`.
            classes: the classes to take (None: every class held).

        Returns:
            `x [n, *input_shape]` float32, `label [n]` int32, `task [n]` int32.
        """
        keys = self.classes if classes is None else [k for k in classes if k in self.groups]
        xs = [self.groups[k][group] for k in keys]
        labels = [np.full(len(x), k[1], np.int32) for k, x in zip(keys, xs)]
        tasks = [np.full(len(x), k[0], np.int32) for k, x in zip(keys, xs)]
        if not xs:
            return (np.zeros((0, *self.input_shape), np.float32), np.zeros(0, np.int32),
                    np.zeros(0, np.int32))
        return np.concatenate(xs), np.concatenate(labels), np.concatenate(tasks)

    def composition(self) -> dict[str, Any]:
        """How many exemplars each class holds, `{"task_T/class_C": n}` (plus `held` ones)."""
        out: dict[str, Any] = {}
        for (t, c), group in self.groups.items():
            out[f"task_{t + 1}/class_{c}"] = int(len(group["train"]))
            if len(group["held"]):
                out[f"task_{t + 1}/class_{c}/held"] = int(len(group["held"]))
        return out

    def state(self) -> dict[str, np.ndarray]:
        """`capacity` rows of `x`, `label`, `task` and `held` (0/1), and `count` filled."""
        rows = {"x": [], "label": [], "task": [], "held": []}
        for key, group in self.groups.items():
            for flag, name in ((0, "train"), (1, "held")):
                x = group[name]
                rows["x"].append(x)
                rows["label"].append(np.full(len(x), key[1], np.int32))
                rows["task"].append(np.full(len(x), key[0], np.int32))
                rows["held"].append(np.full(len(x), flag, np.int32))
        count = self.size()
        out = {"x": np.zeros((self.capacity, *self.input_shape), np.float32),
               "label": np.zeros(self.capacity, np.int32),
               "task": np.zeros(self.capacity, np.int32),
               "held": np.zeros(self.capacity, np.int32)}
        for name, parts in rows.items():
            if parts:
                out[name][:count] = np.concatenate(parts)
        out["count"] = np.asarray(count, np.int32)
        return out

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restores what `state` gave, after checking every key.

        Raises:
            CheckpointError: a key is missing or has another shape or dtype, `count` exceeds
                the capacity, or a row names a class the stream does not have; nothing is
                changed then.
        """
        from sequential_learning.checkpoint import CheckpointError

        owner = f"{self.name} exemplars"
        m = self.capacity
        count = int(state_array(owner, state, "count", (), "int", low=0, high=m,
                                what="the memory's capacity"))
        x = state_array(owner, state, "x", (m, *self.input_shape))
        label = state_array(owner, state, "label", (m,), "int", low=0)
        task = state_array(owner, state, "task", (m,), "int", low=0)
        held = state_array(owner, state, "held", (m,), "int", low=0, high=1, what="0 or 1")
        known = set(self.known)
        groups: dict[Key, dict[str, list]] = {}
        for i in range(count):
            key = (int(task[i]), int(label[i]))
            if key not in known:
                raise CheckpointError(f"{owner}: checkpointed row {i} holds label {key[1]} of "
                                      f"task {key[0] + 1}, which the stream does not have")
            groups.setdefault(key, {"train": [], "held": []})[
                "held" if held[i] else "train"].append(x[i])
        self.groups = {}
        for key, parts in groups.items():
            self.put(key, np.asarray(parts["train"]), np.asarray(parts["held"]))


def stream_classes(tasks: Sequence) -> list[list[Key]]:
    """Each task's classes as `(task, label)` keys, from its training labels.

    Args:
        tasks: the run's `SequentialTask`s (array training data).

    Returns:
        One list of keys per task, labels ascending.

    Example:
    ```python
    stream_classes(run.tasks)    # [[(0, 0), (0, 1)], [(1, 2), (1, 3)], ...] (class-IL)
    ```
    """
    return [[(k, int(c)) for c in np.unique(np.asarray(task.train_data[1]))]
            for k, task in enumerate(tasks)]


def stream_scenario(run: Any) -> str:
    """The scenario of a run's stream: `task`, `class` or `domain`.

    A head per task is task-incremental; one head with its unseen classes masked
    (`task.active_classes`) is class-incremental; one head without masks is taken as
    domain-incremental (every task has the same labels).

    Args:
        run: the `Run`.

    Returns:
        `"task"`, `"class"` or `"domain"`.

    Example:
    ```python
    if stream_scenario(run) != "class":
        raise ValueError("bic: needs a class-incremental stream (--scenario class)")
    ```
    """
    if not run.shared_head:
        return "task"
    if getattr(run.tasks[0], "active_classes", None) is not None:
        return "class"
    return "domain"
