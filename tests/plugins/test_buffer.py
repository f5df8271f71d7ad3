"""The memory buffer: reservoir sampling against the textbook algorithm, balanced and slot fills,
draws, state; on every backend, eagerly and inside a compiled function."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

from sequential_learning import backend
from sequential_learning.plugins.buffer import MemoryBuffer

pytestmark = pytest.mark.all_backends


def _buffer(capacity=6, seed=0, logits=0):
    buffer = MemoryBuffer(capacity, (2,), (), "int32", logits=logits, seed=seed)
    buffer.build()
    return buffer


def _reference_reservoir(capacity, batches, seed):
    """Vitter's algorithm R one sample at a time, with the buffer's own random draws (one
    `keras.random.uniform` per batch from a seed generator of the buffer's seed, in float32)."""
    draws = keras.random.SeedGenerator(seed)
    slots = [None] * capacity
    seen = 0
    for batch in batches:
        u = ops.convert_to_numpy(keras.random.uniform((len(batch),), seed=draws))
        for item, value in zip(batch, u):
            chosen = int(np.floor(np.float32(value) * np.float32(seen + 1)))
            slot = seen if seen < capacity else min(chosen, seen)
            if slot < capacity:
                slots[slot] = item
            seen += 1
    return slots, seen


BATCHES = [list(range(start, start + size)) for start, size in
           ((0, 4), (4, 5), (9, 7), (16, 7), (23, 3))]


def _offer(add, batch):
    """Item k is x = (k, -k), label k % 3, task k // 8."""
    x = np.array([[k, -k] for k in batch], np.float32)
    add(x, (np.array(batch) % 3).astype(np.int32), batch[0] // 8)


def test_reservoir_equals_one_sample_at_a_time():
    buffer = _buffer(capacity=6, seed=5)
    for batch in BATCHES:
        _offer(buffer.reservoir_add, batch)
    want, seen = _reference_reservoir(6, BATCHES, seed=5)
    got = buffer.arrays()
    assert int(ops.convert_to_numpy(buffer.seen)) == seen == 26
    assert int(ops.convert_to_numpy(buffer.filled)) == 6
    np.testing.assert_array_equal(got["x"][:, 0], want)
    np.testing.assert_array_equal(got["x"][:, 1], [-k for k in want])
    np.testing.assert_array_equal(got["y"], np.array(want) % 3)


def test_reservoir_in_a_compiled_function_equals_the_eager_one():
    """Fixed shapes: the insertion compiles (jax.jit, tf.function) and gives the eager buffer."""
    eager, inside = _buffer(capacity=6, seed=3), _buffer(capacity=6, seed=3)
    add = backend.ops().compiled(
        lambda x, y, task: inside.reservoir_add(x, y, task), inside.variables())
    for batch in BATCHES[:3] + [BATCHES[1]] * 2:  # a repeated batch size reuses the compilation
        _offer(eager.reservoir_add, batch)
        _offer(lambda x, y, t: add(x, y, np.int32(t)), batch)
    for key, value in eager.state().items():
        np.testing.assert_array_equal(inside.state()[key], value, err_msg=key)
    draw = backend.ops().compiled(lambda: inside.sample(7), inside.variables())
    np.testing.assert_array_equal(ops.convert_to_numpy(draw()["x"]),
                                  ops.convert_to_numpy(eager.sample(7)["x"]))


def test_reservoir_keeps_every_sample_with_equal_probability():
    # 120 samples into 12 slots, over 40 seeds: early and late samples each kept 10% of the time.
    kept = np.zeros(120)
    for seed in range(40):
        buffer = _buffer(capacity=12, seed=seed)
        for start in range(0, 120, 10):
            items = np.arange(start, start + 10)
            buffer.reservoir_add(np.stack([items, items], 1).astype(np.float32),
                                 items.astype(np.int32), 0)
        kept[buffer.arrays()["x"][:, 0].astype(int)] += 1
    assert kept.sum() == 40 * 12
    first, last = kept[:60].mean() / 40, kept[60:].mean() / 40
    assert abs(first - 0.1) < 0.025 and abs(last - 0.1) < 0.025, (first, last)


def test_sample_draws_from_filled_slots_and_says_whether_there_is_data():
    buffer = _buffer(capacity=8)
    empty = buffer.sample(5)
    assert float(ops.convert_to_numpy(empty["has_data"])) == 0.0
    buffer.reservoir_add(np.array([[1, 1], [2, 2], [3, 3]], np.float32),
                         np.array([1, 2, 0], np.int32), 4)
    batch = {k: ops.convert_to_numpy(v) for k, v in buffer.sample(50).items()}
    assert float(batch["has_data"]) == 1.0
    assert set(batch["x"][:, 0].astype(int)) == {1, 2, 3}  # never an empty slot
    assert set(batch["task"]) == {4}
    again = buffer.sample(50)  # the seed generator moves: a new draw
    assert not np.array_equal(batch["x"], ops.convert_to_numpy(again["x"]))


def test_same_seed_same_draws_and_state_round_trip():
    def run(seed):
        buffer = _buffer(capacity=4, seed=seed, logits=3)
        for k in range(5):
            x = np.full((3, 2), k, np.float32)
            buffer.reservoir_add(x, np.array([k % 2] * 3, np.int32), k,
                                 np.full((3, 3), float(k), np.float32))
        return buffer

    a, b = run(1), run(1)
    for key, value in a.state().items():
        np.testing.assert_array_equal(value, b.state()[key])
    restored = _buffer(capacity=4, seed=1, logits=3)
    restored.load_state(a.state())
    np.testing.assert_array_equal(ops.convert_to_numpy(restored.sample(20)["logits"]),
                                  ops.convert_to_numpy(a.sample(20)["logits"]))
    with pytest.raises(ValueError, match="shape"):
        _buffer(capacity=5, logits=3).load_state(a.state())


def test_balanced_fill_gives_each_task_and_class_an_equal_share():
    buffer = _buffer(capacity=10)
    x0 = np.arange(40, dtype=np.float32).reshape(20, 2)
    y0 = np.repeat([0, 1], 10)
    buffer.fill_balanced(x0, y0, task=0, seed=0)
    first = buffer.arrays()
    assert sorted(np.bincount(first["y"])) == [5, 5]
    x1 = x0 + 100
    buffer.fill_balanced(x1, y0, task=1, seed=1)
    second = buffer.arrays()
    pairs = list(zip(second["task"].tolist(), second["y"].tolist()))
    assert sorted(pairs.count(k) for k in {(0, 0), (0, 1), (1, 0), (1, 1)}) == [2, 2, 3, 3]
    # Task 0 keeps samples it had; task 1's are its own.
    old = {tuple(r) for r in first["x"]}
    assert all(tuple(r) in old for r, t in zip(second["x"], second["task"]) if t == 0)
    assert all(r[0] >= 100 for r, t in zip(second["x"], second["task"]) if t == 1)


def test_slot_fill_and_bad_capacity():
    buffer = _buffer(capacity=6)
    buffer.fill_slots(0, np.ones((3, 2), np.float32), [1, 1, 1], task=0)
    buffer.fill_slots(3, np.zeros((3, 2), np.float32), [2, 2, 2], task=1)
    assert buffer.arrays()["task"].tolist() == [0, 0, 0, 1, 1, 1]
    with pytest.raises(ValueError, match="exceed"):
        buffer.fill_slots(4, np.zeros((3, 2), np.float32), [0, 0, 0], task=2)
    with pytest.raises(ValueError, match="memory: 0"):
        MemoryBuffer(0, (2,))
