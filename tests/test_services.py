"""The manager's services: the evaluation schedule, the clock, the progress line (non-terminal),
the divergence message and the interruption message."""

from __future__ import annotations

import io
import sys
from types import SimpleNamespace

import pytest

from sequential_learning.clock import Clock
from sequential_learning.divergence import interruption_message
from sequential_learning.evaluation import EvaluationSchedule
from sequential_learning.progress import ProgressLine
from sequential_learning.services import Service, call_hook

pytestmark = pytest.mark.all_backends


@pytest.mark.parametrize(("every", "epochs", "due"), [
    (1, 3, [0, 1, 2]), (2, 5, [1, 3, 4]), (3, 7, [2, 5, 6]), (10, 4, [3]),
])
def test_schedule_evaluates_every_kth_epoch_and_the_last(every, epochs, due):
    schedule = EvaluationSchedule(every)
    assert [e for e in range(epochs) if schedule.due(e, epochs)] == due


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_schedule_rejects_bad_eval_every(bad):
    with pytest.raises(ValueError, match="eval_every must be an integer >= 1"):
        EvaluationSchedule(bad)
    with pytest.raises(ValueError, match="eval_subset must be an integer >= 1 or None"):
        EvaluationSchedule(1, bad if bad != "2" else 0)


def test_clock_counts_epochs_over_tasks():
    clock = Clock([2, 3], num_tasks=2)
    assert clock.total_epochs == 5
    clock.start(first_task=1)  # resumed after task 1
    clock.begin_task(1)
    clock.end_epoch(0)
    assert (clock.global_epoch, clock.task_epochs, clock.epoch) == (3, 3, 0)
    with pytest.raises(ValueError, match="epochs has 1 entries but there are 2 tasks"):
        Clock([2], num_tasks=2)
    with pytest.raises(ValueError, match="every task needs at least one epoch"):
        Clock(0, num_tasks=2)


def _manager_at(task: int, epoch: int, value: float | None):
    clock = Clock(2, num_tasks=3)
    clock.start(0)
    clock.begin_task(task)
    for _ in range(2 * task + epoch + 1):
        clock.epochs_done += 1
    clock.epoch = epoch
    evaluations = None if value is None else [{"accuracy": value}] * 3
    recorder = SimpleNamespace(metric="accuracy", last_value=lambda index: 0.5)
    return SimpleNamespace(clock=clock, tasks=[0, 1, 2], evaluations=evaluations,
                           recorder=recorder)


def test_progress_writes_one_line_per_epoch_when_not_a_terminal(monkeypatch):
    err = io.StringIO()  # not a terminal
    monkeypatch.setattr(sys, "stderr", err)
    line = ProgressLine("fisher")
    line.after_training_epoch(_manager_at(0, 0, 0.75))
    line.after_training_epoch(_manager_at(1, 1, None))  # not evaluated: the last value
    line.after_training(None)  # nothing more on a non-terminal
    lines = err.getvalue().splitlines()
    assert len(lines) == 2 and err.getvalue().endswith("\n")
    assert lines[0].startswith("fisher  task 1/3  epoch 1/2  accuracy 0.750  elapsed ")
    assert lines[1].startswith("fisher  task 2/3  epoch 2/2  accuracy 0.500  elapsed ")
    assert "left ~" in lines[1]


def test_progress_updates_one_line_on_a_terminal(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    err = Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    line = ProgressLine(True)
    line.after_training_epoch(_manager_at(0, 0, 0.75))
    line.on_failure(None)
    assert err.getvalue().startswith("\rtask 1/3  epoch 1/2  accuracy 0.750")
    assert err.getvalue().endswith(" \n")


def test_interruption_message():
    assert interruption_message(2, 2, "runs/x") == (
        "interrupted during task 3; the 2 finished task(s) are saved in runs/x; resume with: "
        "seql run --resume runs/x")
    assert interruption_message(0, 0, None) == "interrupted during task 1; no task had finished"


def test_hooks_run_in_order_and_only_where_defined():
    calls = []

    class A(Service):
        def after_training_epoch(self, manager):
            calls.append(("a", manager))

    class B:
        def after_training_epoch(self, manager):
            calls.append(("b", manager))

    call_hook([A(), object(), B()], "after_training_epoch", "m")
    assert calls == [("a", "m"), ("b", "m")]
    assert call_hook([A()], "task_callbacks", "m") == [[]]
