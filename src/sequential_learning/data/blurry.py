"""The order of an online stream: tasks one after another, with boundaries announced, hidden or
blurred, and the evaluation points along it.

An online run (`--online`) streams every training sample once. `StreamPlan` says, for a stream of
tasks with `n_1, ..., n_T` training samples (`N` in all), where each sample comes and where the
stream is evaluated:

* `boundaries="tasks"` and `"none"`: task 1's samples (in a seeded shuffled order), then task
  2's, ... The only difference is whether the methods are told where a task ends (see
  `sequential_learning.online`).
* `boundaries="blurry"`: around each nominal boundary `b_k = n_1 + ... + n_k` a window of `w`
  positions `[b_k − w/2, b_k + w/2)` blends task k into task k+1. The window holds the last
  `w/2` samples of task k and the first `w/2` of task k+1 (each task's own order kept); which
  task each position takes is drawn so that position `j` of the window (0 ≤ j < w) holds task
  k+1's sample with probability exactly `(j + 0.5) / w`, rising linearly from about 0 to about
  1, and the counts stay exact: the window's positions are paired as `(j, w − 1 − j)` for
  `j < w/2`, and one draw `u_j ~ U[0, 1)` per pair puts task k+1's sample at the later position
  `w − 1 − j` when `u_j < (w − j − 0.5) / w`, else at the earlier position `j`. Outside the
  windows the stream is the nominal task. This is a gradual task switch with a linear ramp,
  as the smooth transitions of the task-agnostic streams of Zeno et al. (2018, "Task agnostic
  continual learning using online variational Bayes"), in the task-free setting of Aljundi et
  al. (2019, "Task-free continual learning"). It is not Bang et al.'s (2021, Rainbow Memory)
  "Blurry-M" split, where a fixed share of each task's samples come from other tasks' classes
  throughout the task.

The random draws come from `numpy.random.default_rng(seed)`, in this order: one permutation of
each task's samples (tasks in order), then the `w/2` draws of each boundary (boundaries in
order). `w` must be even and at most the smallest task's size, so the windows never overlap.

The stream is cut into one *segment* per task, each ending where that task's samples have all
been shown: at `b_k` (tasks, none) or at the end of the window after it, `b_k + w/2` (blurry);
the last at `N`. Row k of the accuracy matrix is measured at the end of segment k. Inside a
segment every task is evaluated after every `eval_every_samples` samples of it (counted from the
segment's start, at the end of the batch that reaches the count) and at its end.

Example:
```python
plan = StreamPlan([100, 100, 100], "blurry", blur_window=20, eval_every_samples=30, seed=0)
plan.segments          # [(0, 110), (110, 210), (210, 300)]
plan.task[95:105]      # the tasks of positions 95..104: a blend of 0 and 1
plan.points(0, batch_size=10)   # [30, 60, 90]: samples of segment 1 after which all are evaluated
```
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: How the stream's task boundaries reach the methods (`--boundaries`).
BOUNDARIES = ("tasks", "none", "blurry")
#: An online run's batch size unless one is given (as the online papers: ER, MIR, ER-ACE).
ONLINE_BATCH_SIZE = 10
#: Evaluation points per task an online run has by default.
POINTS_PER_TASK = 10
#: A multiple of every backend's steps per execution (8, or 1 on PyTorch): evaluation points
#: that are a multiple of this many batches fall on the end of a compiled call.
STEPS_PER_CALL = 8


def check_blur_window(window: int, sizes: Sequence[int]) -> int:
    """Checks a blur window against the stream's task sizes.

    Args:
        window: `w`, the positions over which two tasks blend.
        sizes: each task's number of training samples.

    Returns:
        `window` as an int.

    Raises:
        ValueError: (one line) unless `w` is an even integer >= 2 and at most the smallest task.

    Example:
    ```python
    check_blur_window(20, [100, 100])    # 20
    ```
    """
    if isinstance(window, bool) or not isinstance(window, int | np.integer) or window < 2 \
            or window % 2:
        raise ValueError(f"blur_window: {window!r} is not allowed; expected an even integer "
                         ">= 2 (half of the window on each side of a boundary)")
    smallest = int(np.argmin(sizes))
    if window > sizes[smallest]:
        largest = sizes[smallest] - sizes[smallest] % 2
        raise ValueError(f"blur_window: {window} is larger than task {smallest + 1}'s "
                         f"{sizes[smallest]} training samples; the windows of its two "
                         f"boundaries would overlap: use at most {largest}")
    return int(window)


def default_blur_window(sizes: Sequence[int]) -> int:
    """The blur window when none is given: a fifth of the smallest task (even, >= 2).

    About a tenth of each task's nominal span then holds samples of its neighbours.

    Args:
        sizes: each task's number of training samples.

    Returns:
        `2 * (min(sizes) // 10)`, at least 2.

    Example:
    ```python
    default_blur_window([12000] * 5)    # 2400
    ```
    """
    return max(2, 2 * (int(min(sizes)) // 10))


def default_eval_every(sizes: Sequence[int], batch_size: int) -> int:
    """The evaluation interval when none is given: about `POINTS_PER_TASK` points per task.

    A tenth of the mean task size, rounded to a multiple of `STEPS_PER_CALL` batches when that
    is at least one such multiple (so that the points end compiled calls and no step is run
    alone), else to a multiple of the batch size (at least one batch).

    Args:
        sizes: each task's number of training samples.
        batch_size: the training batch size.

    Returns:
        The interval in samples.

    Example:
    ```python
    default_eval_every([12000] * 5, 10)    # 1200 (15 calls of 8 batches of 10)
    ```
    """
    share = float(np.mean(sizes)) / POINTS_PER_TASK
    unit = batch_size * STEPS_PER_CALL if share >= batch_size * STEPS_PER_CALL else batch_size
    return int(max(unit, round(share / unit) * unit))


def aligned_steps(steps_per_execution: int, every: int, batch_size: int) -> int:
    """Steps per compiled call such that every evaluation point ends a call.

    Args:
        steps_per_execution: the steps per call the task would use.
        every: the evaluation interval in samples.
        batch_size: the training batch size.

    Returns:
        `gcd(steps_per_execution, every / batch_size)` when the interval is a whole number of
        batches, else 1.

    Example:
    ```python
    aligned_steps(8, 1200, 10)    # 8
    aligned_steps(8, 30, 10)      # 1
    ```
    """
    if every % batch_size:
        return 1
    return int(np.gcd(int(steps_per_execution), every // batch_size))


def blurry_order(sizes: Sequence[int], window: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The task and the sample of each position of a blurry stream (see the module docstring).

    Args:
        sizes: each task's number of training samples.
        window: `w` (even, at most the smallest task; see `check_blur_window`).
        seed: the seed of the draws.

    Returns:
        `(task, index)`, two int arrays of length `N`: position p shows sample `index[p]` of
        task `task[p]` (both from 0).

    Example:
    ```python
    task, index = blurry_order([4, 4], window=4, seed=0)
    task    # e.g. [0, 0, 1, 0, 1, 0, 1, 1]: positions 2..5 blend the two tasks
    ```
    """
    sizes = [int(n) for n in sizes]
    check_blur_window(window, sizes)
    rng = np.random.default_rng(seed)
    orders = [rng.permutation(n) for n in sizes]
    task = np.repeat(np.arange(len(sizes)), sizes)
    half = window // 2
    pairs = np.arange(half)
    for k, boundary in enumerate(np.cumsum(sizes)[:-1]):
        start = int(boundary) - half
        later = rng.random(half) < (window - pairs - 0.5) / window
        task[start + pairs] = np.where(later, k, k + 1)
        task[start + window - 1 - pairs] = np.where(later, k + 1, k)
    index = np.empty(len(task), np.int64)
    for k, order in enumerate(orders):
        index[task == k] = order
    return task, index


class StreamPlan:
    """Where an online stream's samples come from, its segments and its evaluation points.

    Args:
        sizes: each task's number of training samples.
        boundaries: `tasks`, `none` or `blurry` (see the module docstring).
        eval_every_samples: evaluate every task after every this many samples of each segment.
        blur_window: `w` of a blurry stream (None: `default_blur_window`); ignored otherwise.
        seed: the seed of a blurry stream's draws.

    Attributes:
        sizes: the tasks' sizes.
        total: `N`, the stream's length.
        segments: `(start, stop)` of each segment, in stream positions.
        first_seen: the position of each task's first sample.
        task, index: per position, its task and sample (blurry streams; None otherwise: the
            tasks' own shuffled batches are streamed).
        blur_window: `w` (blurry streams; else None).

    Example:
    ```python
    plan = StreamPlan([12000] * 5, "none", eval_every_samples=1200)
    plan.points(0, batch_size=10)[:3]    # [1200, 2400, 3600]
    ```
    """

    def __init__(self, sizes: Sequence[int], boundaries: str, eval_every_samples: int,
                 blur_window: int | None = None, seed: int = 0) -> None:
        if boundaries not in BOUNDARIES:
            raise ValueError(f"boundaries: {boundaries!r} is not allowed; expected one of "
                             f"{', '.join(BOUNDARIES)}")
        if isinstance(eval_every_samples, bool) or not isinstance(
                eval_every_samples, int | np.integer) or eval_every_samples < 1:
            raise ValueError(f"eval_every_samples: {eval_every_samples!r} is not allowed; "
                             "expected an integer >= 1")
        self.sizes = [int(n) for n in sizes]
        if not self.sizes or min(self.sizes) < 1:
            raise ValueError(f"an online stream needs tasks with training samples, got sizes "
                             f"{self.sizes}")
        self.boundaries = boundaries
        self.every = int(eval_every_samples)
        self.total = int(sum(self.sizes))
        ends = np.cumsum(self.sizes)
        starts = ends - np.asarray(self.sizes)
        self.task = self.index = None
        self.blur_window = None
        if boundaries == "blurry":
            window = default_blur_window(self.sizes) if blur_window is None else blur_window
            self.blur_window = check_blur_window(window, self.sizes)
            self.task, self.index = blurry_order(self.sizes, self.blur_window, seed)
            stops = [int(e) + self.blur_window // 2 for e in ends[:-1]] + [self.total]
            self.first_seen = [int(np.argmax(self.task == k)) for k in range(len(self.sizes))]
        else:
            stops = [int(e) for e in ends]
            self.first_seen = [int(s) for s in starts]
        self.segments = list(zip([0, *stops[:-1]], stops))

    @property
    def windows(self) -> list[tuple[int, int]]:
        """`(start, stop)` of each blur window (none unless blurry)."""
        if self.blur_window is None:
            return []
        half = self.blur_window // 2
        return [(int(b) - half, int(b) + half) for b in np.cumsum(self.sizes)[:-1]]

    def segment_size(self, k: int) -> int:
        """The samples of segment `k`."""
        start, stop = self.segments[k]
        return stop - start

    def points(self, k: int, batch_size: int) -> list[int]:
        """The samples of segment `k` (counted from its start) after which every task is
        evaluated inside it: the end of the batch reaching each multiple of
        `eval_every_samples` (the segment's end is evaluated anyway, and is not listed).

        Args:
            k: the segment (from 0).
            batch_size: the segment's batch size.

        Returns:
            Increasing sample counts, each below the segment's size.
        """
        size = self.segment_size(k)
        ends = sorted({min(-(-m // batch_size) * batch_size, size)
                       for m in range(self.every, size, self.every)})
        return [e for e in ends if e < size]

    def tasks_seen(self, position: int) -> int:
        """How many tasks have shown at least one sample before stream position `position`."""
        return int(sum(1 for p in self.first_seen if p < position))

    def segment_positions(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """`(task, index)` of the positions of segment `k` (blurry streams)."""
        if self.task is None:
            raise ValueError("segment_positions: only a blurry stream has a plan per position")
        start, stop = self.segments[k]
        return self.task[start:stop], self.index[start:stop]

    def describe(self) -> dict:
        """What the plan is, for results: boundaries, sizes, segments, windows."""
        return {"boundaries": self.boundaries, "train_sizes": self.sizes,
                "eval_every_samples": self.every, "blur_window": self.blur_window,
                "segments": [list(s) for s in self.segments],
                "windows": [list(w) for w in self.windows]}
