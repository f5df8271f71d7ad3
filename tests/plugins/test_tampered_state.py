"""A changed checkpoint's plugin state is a CheckpointError naming the key, at load time.

Before, a buffer's `filled` above its capacity, a missing key or an array of another shape or
dtype was assigned as it was (or failed as a KeyError / TypeError), and the run then failed inside
the compiled step with TensorFlow's InvalidArgumentError (or trained on garbage). Every plugin's
state round-trips as NumPy arrays on every backend.
"""

from __future__ import annotations

import numpy as np
import pytest

from sequential_learning.checkpoint import CheckpointError
from sequential_learning.importance import create_estimator
from sequential_learning.plugins.agem import AGEM
from sequential_learning.plugins.consolidation import Consolidation
from sequential_learning.plugins.derpp import DERPlusPlus
from sequential_learning.plugins.lwf import LearningWithoutForgetting
from sequential_learning.plugins.replay import ExperienceReplay

pytestmark = pytest.mark.all_backends

PLUGINS = {
    "replay": lambda: ExperienceReplay(memory=20),
    "derpp": lambda: DERPlusPlus(memory=20),
    "a-gem": lambda: AGEM(memory=20),
    "lwf": lambda: LearningWithoutForgetting(),
    "fisher": lambda: Consolidation(create_estimator("fisher"), ewc_lambda=10.0),
    "si": lambda: Consolidation(create_estimator("si"), ewc_lambda=1.0),
    "sign-flipping": lambda: Consolidation(create_estimator("sign-flipping"), ewc_lambda=1.0),
    "weight-change": lambda: Consolidation(create_estimator("weight-change"), ewc_lambda=1.0),
}


def _set(key, value):
    def change(state):
        state[key] = value(state[key]) if callable(value) else value
    return change


def _drop(key):
    def change(state):
        del state[key]
    return change


def _one_filled_label(label):
    def change(state):
        state["filled"], state["seen"] = np.int64(1), np.int64(1)
        state["y"] = state["y"].copy()
        state["y"][0] = label
    return change


def _reshape(value):
    return np.zeros((*value.shape[:-1], value.shape[-1] + 1), value.dtype)


def _with_nan(value):
    value = value.astype(np.float32).copy()
    value.flat[0] = np.nan
    return value


# (plugin, how the saved state is changed, what the message must say)
CASES = [
    ("replay", _set("filled", np.int64(10**9)), r"'filled' is 1000000000; expected values 0\.\.20"),
    ("replay", _set("filled", np.float64(1e9)), r"'filled' has dtype float64; expected an integer"),
    ("replay", _set("seen", np.int64(-1)), r"'seen' is -1"),
    ("replay", _set("draws", np.zeros(3, np.int64)), r"'draws' has shape \(3,\)"),
    ("replay", _set("draws", lambda v: v.astype(np.float32)), r"'draws' has dtype float32"),
    ("replay", _drop("x"), r"has no 'x'.*expected a float array of shape \(20, 6\)"),
    ("replay", _set("x", _reshape), r"'x' has shape \(20, 7\); expected .*\(20, 6\)"),
    ("replay", _set("x", _with_nan), r"'x' has non-finite values"),
    ("replay", _set("x", lambda v: v.astype(str)), r"'x' has dtype <U"),
    ("replay", _set("task", lambda v: np.full_like(v, 7)), r"'task' is in 7\.\.7; expected values 0\.\.1"),
    ("replay", _set("y", lambda v: np.full_like(v, -3)), r"'y' is in -3\.\.-3; expected values >= 0"),
    ("replay", _one_filled_label(9), r"'y' holds label 9 in slot 0 .*below 2"),
    ("replay", _set("filled", np.zeros(2, np.int64)), r"'filled' has shape \(2,\); expected .*\(\)"),
    ("derpp", _drop("logits"), r"has no 'logits'"),
    ("derpp", _set("logits", _reshape), r"'logits' has shape \(20, 3\)"),
    ("a-gem", _set("filled", np.int64(21)), r"'filled' is 21; expected values 0\.\.20"),
    ("lwf", _drop("teacher_0"), r"lwf: .*has no 'teacher_0'"),
    ("lwf", _set("teacher_0", _reshape), r"'teacher_0' has shape"),
    ("lwf", _set("on", np.float32(5.0)), r"'on' is 5; expected values 0\.\.1"),
    ("lwf", _set("old_classes", np.ones(7, np.float32)), r"'old_classes' has shape \(7,\)"),
    ("fisher", _drop("penalty.importance_0"), r"fisher penalty: .*has no 'importance_0'"),
    ("fisher", _set("penalty.importance_1", lambda v: v - 1.0),
     r"'importance_1' is in -1\.\.-1; expected values >= 0"),
    ("fisher", _set("penalty.anchor_0", _reshape), r"'anchor_0' has shape \(6, 6\)"),
    ("fisher", _set("penalty.constant", np.float32(np.inf)), r"'constant' has non-finite"),
    ("fisher", _set("penalty.num_terms", np.float64(1.5)), r"'num_terms' has dtype float64"),
    ("fisher", _set("penalty.num_terms", np.int64(-2)), r"'num_terms' is -2"),
    ("si", _drop("estimator.start_1"), r"si: .*has no 'start_1'"),
    ("si", _set("estimator.omega_0", _reshape), r"'omega_0' has shape \(6, 6\); expected .*\(6, 5\)"),
    ("sign-flipping", _set("estimator.count_0", lambda v: v - 2.0), r"'count_0' is in -2\.\.-2"),
    ("weight-change", _set("estimator.path_1", _with_nan), r"'path_1' has non-finite"),
]


def _built(setup_factory, name):
    setup = setup_factory(hidden=(5,))
    plugin = setup.build(PLUGINS[name]())
    return setup, plugin


@pytest.mark.parametrize("name", sorted(PLUGINS))
def test_a_saved_state_loads_back(setup_factory, name):
    _, plugin = _built(setup_factory, name)
    state = plugin.state()
    plugin.load_state(state)
    for key, value in plugin.state().items():
        np.testing.assert_array_equal(value, state[key])


@pytest.mark.parametrize("name, change, message", CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_tampered_state_is_a_checkpoint_error_naming_the_key(setup_factory, name, change,
                                                             message):
    _, plugin = _built(setup_factory, name)
    before = {k: np.array(v, copy=True) for k, v in plugin.state().items()}
    state = {k: np.array(v, copy=True) for k, v in before.items()}
    change(state)
    with pytest.raises(CheckpointError, match=message) as info:
        plugin.load_state(state)
    assert "\n" not in str(info.value)
    for key, value in plugin.state().items():  # nothing was assigned
        np.testing.assert_array_equal(value, before[key])

