"""Task streams (sequential_learning.data.benchmarks): split, permuted, rotated, Iris features,
function approximation, the three scenarios, named benchmarks and their errors. No training."""

from __future__ import annotations

import numpy as np
import pytest

from sequential_learning.data import benchmarks, datasets
from sequential_learning.data.benchmarks import (
    BENCHMARKS,
    FUNCTIONS,
    IRIS_FEATURE_PAIRS,
    DataError,
    check_benchmark_options,
    default_angles,
    function_approximation,
    iris_features,
    make_benchmark,
    permuted,
    rotate_images,
    rotated,
    split,
)

pytestmark = pytest.mark.all_backends


def _toy(classes=6, per_class=10, features=5, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(classes), per_class)
    x = rng.random((len(y), features)).astype(np.float32)
    return x, y


def _images(n=12, side=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, side, side, 1)).astype(np.float32), np.arange(n) % 3


# -- split -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("scenario", ["task", "domain", "class"])
def test_split_labels_and_heads_follow_the_scenario(scenario):
    x, y = _toy()
    stream = split(x, y, classes_per_task=2, scenario=scenario, validation=(x, y))
    assert len(stream) == 3 and stream.shared_head == (scenario != "task")
    assert stream.head_sizes == ([6] * 3 if scenario == "class" else [2] * 3)
    for t, task in enumerate(stream):
        assert task.classes == [2 * t, 2 * t + 1]
        expected = {2 * t, 2 * t + 1} if scenario == "class" else {0, 1}
        assert set(task.y_train) == expected and set(task.y_val) == expected
        # Every sample of the task's classes, and only those.
        np.testing.assert_array_equal(task.x_train, x[np.isin(y, task.classes)])


def test_split_class_order_explicit_random_and_seeded():
    x, y = _toy()
    order = [5, 0, 3, 1, 4, 2]
    stream = split(x, y, 2, "class", (x, y), class_order=order)
    assert [t.classes for t in stream] == [[5, 0], [3, 1], [4, 2]]
    # Class-incremental labels are positions in the class order: task 1 holds labels 0 and 1.
    assert set(stream[0].y_train) == {0, 1} and set(stream[2].y_train) == {4, 5}
    assert stream.details["class_order"] == order
    a = split(x, y, 2, "task", (x, y), class_order="random", seed=3)
    b = split(x, y, 2, "task", (x, y), class_order="random", seed=3)
    c = split(x, y, 2, "task", (x, y), class_order="random", seed=4)
    assert [t.classes for t in a] == [t.classes for t in b]
    assert sorted(sum((t.classes for t in a), [])) == list(range(6))
    assert [t.classes for t in a] != [t.classes for t in c]


def test_split_without_validation_makes_a_seeded_stratified_one():
    x, y = _toy(per_class=20)
    stream = split(x, y, 3, "task", seed=1)
    assert all(len(t.x_val) == 12 and len(t.x_train) == 48 for t in stream)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"classes_per_task": 4}, "classes_per_task: 4 does not divide the 6 classes"),
        ({"scenario": "online"}, "scenario: unknown 'online'; expected one of task, domain, class"),
        ({"class_order": [0, 1, 2]}, "class_order: [0, 1, 2] must be a permutation"),
        ({"class_order": "shuffled"}, "class_order: 'shuffled' is not allowed"),
    ],
)
def test_split_rejects_bad_options_naming_them(kwargs, message):
    x, y = _toy()
    with pytest.raises(ValueError) as info:
        split(x, y, validation=(x, y), **{"classes_per_task": 2, **kwargs})
    assert message in str(info.value)


def test_split_rejects_mismatched_lengths():
    x, y = _toy()
    with pytest.raises(DataError, match="x has 60 samples but y has 59 labels"):
        split(x, y[:-1], 2, validation=(x, y))
    with pytest.raises(DataError, match="validation x has 60 samples but validation y has 10"):
        split(x, y, 2, validation=(x, y[:10]))


# -- permuted and rotated --------------------------------------------------------------------------
@pytest.mark.parametrize("scenario", ["domain", "task", "class"])
def test_permuted_first_task_is_the_identity_and_the_rest_are_seeded_permutations(scenario):
    x, y = _images()
    stream = permuted(x, y, num_tasks=3, scenario=scenario, validation=(x, y), seed=7)
    np.testing.assert_array_equal(stream[0].x_train, x)
    again = permuted(x, y, num_tasks=3, scenario=scenario, validation=(x, y), seed=7)
    other = permuted(x, y, num_tasks=3, scenario=scenario, validation=(x, y), seed=8)
    for t in (1, 2):
        flat = stream[t].x_train.reshape(len(x), -1)
        # A permutation of each sample's pixels, the same one for every sample and split.
        np.testing.assert_array_equal(np.sort(flat, axis=1), np.sort(x.reshape(len(x), -1), 1))
        np.testing.assert_array_equal(stream[t].x_train, again[t].x_train)
        np.testing.assert_array_equal(stream[t].x_train, stream[t].x_val)
        assert not np.array_equal(stream[t].x_train, other[t].x_train)
    offset = 3 if scenario == "class" else 0
    assert set(stream[2].y_train) == {2 * offset, 2 * offset + 1, 2 * offset + 2}
    assert stream.head_sizes == ([9] * 3 if scenario == "class" else [3] * 3)


def test_rotate_images_matches_rot90_and_keeps_zero_angle():
    x = np.arange(2 * 5 * 5, dtype=np.float32).reshape(2, 5, 5, 1)
    for angle, k in ((90, 1), (180, 2), (270, 3), (-90, 3)):
        np.testing.assert_allclose(rotate_images(x, angle), np.rot90(x, k, axes=(1, 2)), atol=1e-4)
    np.testing.assert_array_equal(rotate_images(x, 0), x)
    grey = np.arange(4 * 6, dtype=np.float32).reshape(1, 4, 6)  # (N, H, W), not square
    np.testing.assert_allclose(rotate_images(grey, 180), grey[:, ::-1, ::-1], atol=1e-4)


def test_rotate_images_interpolates_and_pads_with_zeros():
    x = np.zeros((1, 9, 9, 1), np.float32)
    x[0, 4, 4] = 1.0  # the centre stays put under any rotation
    x[0, 4, 8] = 1.0  # a pixel on the right edge goes up under +90°
    turned = rotate_images(x, 90)
    assert turned[0, 4, 4, 0] == pytest.approx(1.0) and turned[0, 0, 4, 0] == pytest.approx(1.0)
    ones = rotate_images(np.ones((1, 9, 9, 1), np.float32), 45)
    assert ones[0, 4, 4, 0] == pytest.approx(1.0) and ones[0, 0, 0, 0] == 0.0  # corners padded
    assert 0.0 <= ones.min() and ones.max() <= 1.0 + 1e-6



@pytest.mark.parametrize("angle", [36.0, 72.0, 108.0, 144.0, -30.0, 12.5])
def test_rotate_images_agrees_with_scipy_to_a_rounding_step(angle):
    """SciPy's bilinear rotation with zero padding is the same map; we keep ours because SciPy's
    differs in the last float32 bit on about a third of the pixels (see data/rotated.py)."""
    from scipy import ndimage

    x = np.random.default_rng(0).random((4, 12, 10, 2)).astype(np.float32)
    expected = ndimage.rotate(x, angle, axes=(1, 2), reshape=False, order=1,
                              mode="grid-constant", cval=0.0, prefilter=False)
    np.testing.assert_allclose(rotate_images(x, angle), expected, rtol=0, atol=5e-7)

def test_rotated_stream_uses_one_angle_per_task():
    x, y = _images()
    stream = rotated(x, y, validation=(x, y), angles=[0, 90, 180])
    assert len(stream) == 3 and stream.details["angles"] == [0.0, 90.0, 180.0]
    assert stream[1].name == "task 2 (90°)"
    np.testing.assert_array_equal(stream[0].x_train, x)
    np.testing.assert_allclose(stream[1].x_val, np.rot90(x, 1, axes=(1, 2)), atol=1e-4)
    assert default_angles(5) == [0.0, 36.0, 72.0, 108.0, 144.0]
    assert len(rotated(x, y, num_tasks=4, validation=(x, y))) == 4


def test_rotation_of_tabular_data_is_refused():
    x, y = _toy()
    with pytest.raises(ValueError, match="rotation needs images shaped"):
        rotated(x, y, validation=(x, y))
    with pytest.raises(ValueError, match="tabular data cannot be rotated"):
        rotate_images(x, 30)


# -- Iris features and function approximation ------------------------------------------------------
@pytest.mark.parametrize("scenario", ["domain", "task", "class"])
def test_iris_features_gives_each_task_another_feature_pair(scenario):
    stream = iris_features(num_tasks=3, scenario=scenario)
    assert stream.input_shape == (2,)
    assert stream.details["feature_pairs"] == [list(p) for p in IRIS_FEATURE_PAIRS[:3]]
    assert stream[1].name == "task 2 (petal length, petal width)"
    data = datasets.load_iris()
    np.testing.assert_array_equal(stream[1].x_train, data.x_train[:, [2, 3]])
    labels = set(stream[2].y_val)
    assert labels == ({6, 7, 8} if scenario == "class" else {0, 1, 2})


def test_iris_features_rejects_more_tasks_than_pairs():
    with pytest.raises(ValueError, match="num_tasks: 7 is not allowed for iris-features"):
        iris_features(num_tasks=7)


def test_function_approximation_stream():
    stream = function_approximation(num_tasks=3, seed=1, train_size=64, validation_size=16)
    assert stream.task_type == "regression" and stream.head_sizes == [1, 1, 1]
    assert stream.details["functions"] == ["sin(πx)", "cos(πx)", "x²"]
    for task, fn in zip(stream, ("sin", "cos", "square")):
        assert task.x_train.shape == (64, 1) and task.y_train.shape == (64, 1)
        assert task.x_train.min() >= -1 and task.x_train.max() <= 1
        np.testing.assert_allclose(task.y_val, FUNCTIONS[fn](task.x_val), rtol=1e-6)
    wide = function_approximation(functions=["linear"], x_lim=(2.0, 3.0), train_size=8)
    assert wide[0].x_train.min() >= 2.0 and len(wide) == 1
    custom = function_approximation(functions=[np.exp], train_size=8, validation_size=4)
    np.testing.assert_allclose(custom[0].y_val, np.exp(custom[0].x_val), rtol=1e-6)
    assert function_approximation(scenario="domain", num_tasks=2).shared_head


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"scenario": "class"}, "scenario: 'class' does not apply to function-approximation"),
        ({"functions": ["sinh"]}, "functions: unknown 'sinh'"),
        ({"x_lim": (1.0, -1.0)}, "x_lim: (1.0, -1.0) is not allowed"),
    ],
)
def test_function_approximation_rejects_bad_options(kwargs, message):
    with pytest.raises(ValueError) as info:
        function_approximation(**kwargs)
    assert message in str(info.value)


# -- named benchmarks ------------------------------------------------------------------------------
def test_the_issue_benchmark_names_are_registered_with_their_scenarios():
    names = {
        "split-digits", "permuted-digits", "rotated-digits", "split-fashion-mnist",
        "permuted-fashion-mnist", "rotated-fashion-mnist", "split-mnist", "permuted-mnist",
        "split-cifar10", "iris-features", "function-approximation",
    }
    assert names <= set(BENCHMARKS)
    assert BENCHMARKS["function-approximation"].scenarios == ("task", "domain")
    assert BENCHMARKS["split-fashion-mnist"].default_scenario == "task"
    assert BENCHMARKS["permuted-mnist"].default_scenario == "domain"


@pytest.mark.parametrize("name", ["split-digits", "permuted-digits", "rotated-digits",
                                  "iris-features", "function-approximation"])
def test_embedded_benchmarks_build(name):
    stream = make_benchmark(name, seed=0, num_tasks=3, limit=200)
    assert len(stream) in (3, 5) and stream.describe()["name"] == name


def test_make_benchmark_passes_options_through():
    stream = make_benchmark("split-digits", "class", classes_per_task=5, class_order="random",
                            seed=2)
    assert len(stream) == 2 and stream.head_sizes == [10, 10]
    assert stream.details["class_order"] != list(range(10))
    assert make_benchmark("rotated-digits", angles=[0, 90], limit=50).details["angles"] == [0, 90]


@pytest.mark.parametrize(
    "name, kwargs, message",
    [
        ("imagenet", {}, "benchmark: unknown 'imagenet'; known benchmarks: split-digits"),
        ("split-digits", {"scenario": "sideways"}, "scenario: unknown 'sideways'"),
        ("function-approximation", {"scenario": "class"}, "does not apply to function-approx"),
        ("split", {}, "data: the split benchmark needs your arrays: --data FILE.npz"),
        ("split-digits", {"data": "x.npz"}, "data: split-digits has its own data"),
        ("permuted-digits", {"data_dir": "/tmp"}, "data_dir: permuted-digits reads no directory"),
    ],
)
def test_named_benchmark_option_errors(name, kwargs, message):
    with pytest.raises(ValueError) as info:
        check_benchmark_options(name, **kwargs)
    assert message in str(info.value)
    with pytest.raises(ValueError):
        make_benchmark(name, **kwargs)


def test_split_digits_with_classes_per_task_that_does_not_divide():
    # 1 is not offered: a one-class task is trivially 100% accurate in the task scenario.
    with pytest.raises(DataError, match="classes_per_task: 3 does not divide the 10 classes of "
                                        "split-digits; use one of 2, 5, 10$"):
        make_benchmark("split-digits", classes_per_task=3)


def test_own_arrays_from_npz(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "mine.npz"
    np.savez(path, x_train=rng.integers(0, 255, (40, 6, 6), dtype=np.uint8),
             y_train=np.arange(40) % 4, x_test=rng.integers(0, 255, (8, 6, 6), dtype=np.uint8),
             y_test=np.arange(8) % 4)
    stream = make_benchmark("split", data=path)
    assert len(stream) == 2 and stream.input_shape == (6, 6, 1)
    assert len(make_benchmark("rotated", data=path, num_tasks=2)) == 2
    np.savez(path, x_train=rng.random((40, 3)), y_train=np.arange(40) % 4,
             x_test=rng.random((8, 3)), y_test=np.arange(8) % 4)
    assert make_benchmark("permuted", data=path, num_tasks=2).input_shape == (3,)
    with pytest.raises(ValueError, match="rotation needs images"):
        make_benchmark("rotated", data=path)
    np.savez(path, x_train=rng.random((40, 3)), y_train=np.arange(40) % 4)
    with pytest.raises(DataError, match="is missing the key.*x_test"):
        make_benchmark("split", data=path)


def test_missing_data_sets_name_where_they_were_looked_for(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST_DIR", tmp_path / "debian")
    for name, what in (("split-mnist", "MNIST not found"), ("split-cifar10", "CIFAR-10 not found"),
                       ("permuted-fashion-mnist", "Fashion-MNIST not found")):
        with pytest.raises(datasets.DatasetNotFoundError, match=what):
            make_benchmark(name)
    with pytest.raises(datasets.DatasetNotFoundError, match=str(tmp_path / "nowhere")):
        make_benchmark("permuted-mnist", data_dir=tmp_path / "nowhere")


def test_truncated_idx_file_names_the_file(tmp_path):
    from sequential_learning.data.formats.idx import write_idx

    rng = np.random.default_rng(0)
    names = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
             "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}
    write_idx(tmp_path / names["x_train"], rng.integers(0, 255, (20, 4, 4), dtype=np.uint8))
    write_idx(tmp_path / names["y_train"], (np.arange(20) % 10).astype(np.uint8))
    write_idx(tmp_path / names["x_test"], rng.integers(0, 255, (10, 4, 4), dtype=np.uint8))
    write_idx(tmp_path / names["y_test"], (np.arange(10) % 10).astype(np.uint8))
    assert len(make_benchmark("split-fashion-mnist", data_dir=tmp_path)) == 5
    path = tmp_path / names["x_train"]
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(DataError, match=str(path)):
        make_benchmark("split-fashion-mnist", data_dir=tmp_path)


# -- custom data that cannot make a meaningful split stream -------------------------------------
def _write_npz(path, y_train=None, y_test=None, features=3, seed=0):
    rng = np.random.default_rng(seed)
    y_train = np.arange(40) % 4 if y_train is None else np.asarray(y_train)
    y_test = np.arange(12) % 4 if y_test is None else np.asarray(y_test)
    np.savez(path, x_train=rng.random((len(y_train), features)), y_train=y_train,
             x_test=rng.random((len(y_test), features)), y_test=y_test)
    return path


def test_test_label_never_seen_in_training_is_an_error_not_dropped(tmp_path):
    path = _write_npz(tmp_path / "mine.npz", y_test=[0, 1, 2, 3, 5, 5])
    with pytest.raises(DataError) as info:
        make_benchmark("split", data=path)
    message = str(info.value)
    assert message.startswith(f"{path}: y_test has label(s) 5 that y_train never has")
    assert "y_train holds classes 0, 1, 2, 3" in message
    x, y = _toy()
    with pytest.raises(DataError, match="validation y has label[(]s[)] 6, 7 that y never has"):
        split(x, y, 2, validation=(x[:4], np.array([0, 6, 7, 1])))


def test_task_without_validation_samples_is_an_error(tmp_path):
    path = _write_npz(tmp_path / "mine.npz", y_test=[0, 1, 0, 1])
    with pytest.raises(DataError) as info:
        make_benchmark("split", data=path)
    assert str(info.value) == (
        f"{path}: y_test has no samples of task 2's classes 2, 3; every task needs validation "
        "samples"
    )


@pytest.mark.parametrize("scenario", ["task", "domain"])
def test_one_class_per_task_is_an_error_where_it_is_trivial(tmp_path, scenario):
    path = _write_npz(tmp_path / "mine.npz")
    with pytest.raises(DataError) as info:
        make_benchmark("split", scenario, classes_per_task=1, data=path, class_order=[3, 1, 0, 2])
    message = str(info.value)
    assert "classes_per_task: 1 makes task 1 hold only class 3" in message
    assert f"{scenario}-incremental" in message and "trivially 100%" in message
    assert "use --classes-per-task 2 or more" in message and "2, 4" in message


def test_one_class_per_task_only_warns_in_the_class_scenario():
    x, y = _toy()
    with pytest.warns(UserWarning, match="task 1 hold only class 0.*class-incremental"):
        stream = split(x, y, 1, "class", validation=(x, y))
    assert [t.classes for t in stream] == [[c] for c in range(6)]
    assert stream.head_sizes == [6] * 6


@pytest.mark.parametrize("name", ["split", "permuted"])
def test_data_of_a_single_class_is_an_error(tmp_path, name):
    path = _write_npz(tmp_path / "mine.npz", y_train=np.zeros(10, int), y_test=[0, 0])
    with pytest.raises(DataError) as info:
        make_benchmark(name, "class", classes_per_task=1, data=path)
    assert str(info.value).startswith(f"{path}: y_train holds only class 0; a ")
    assert "needs at least 2 classes" in str(info.value)


@pytest.mark.parametrize(
    "limit, expected",
    [
        (1, "limit: 1 leaves 1 training sample(s) and 1 class(es) of the 4 (0) in {path}; "
            "classes_per_task 2 needs a multiple of 2 classes, at least 2: raise --limit"),
        (3, "limit: 3 leaves 3 training sample(s) and 3 class(es) of the 4 (0, 1, 2) in {path}; "
            "classes_per_task 2 needs a multiple of 2 classes, at least 2: raise --limit"),
    ],
)
def test_a_limit_that_leaves_too_few_classes_says_so(tmp_path, limit, expected):
    path = _write_npz(tmp_path / "mine.npz")
    with pytest.raises(DataError) as info:
        make_benchmark("split", data=path, limit=limit)
    assert str(info.value) == expected.format(path=path)
    with pytest.raises(DataError, match="limit: 1 leaves 1 training sample"):
        make_benchmark("permuted", data=path, limit=1)


def test_a_limit_that_leaves_a_test_label_unseen_says_so(tmp_path):
    path = _write_npz(tmp_path / "mine.npz", y_train=[0, 1, 0, 1, 2, 3], y_test=[0, 2, 1, 3])
    with pytest.raises(DataError, match=r"y_test has label\(s\) 2, 3 that y_train never has .*"
                                        r"\(with limit 4\)"):
        make_benchmark("split", data=path, limit=4, classes_per_task=2)


def test_split_with_large_class_ids_needs_no_table_of_every_id():
    x, y = _toy(classes=4)
    y = np.array([0, 7, 10**12, 10**15])[y]
    stream = split(x, y, 2, "class", validation=(x, y))
    assert [t.classes for t in stream] == [[0, 7], [10**12, 10**15]]
    assert set(stream[1].y_train) == {2, 3}


def test_module_exports():
    assert set(benchmarks.__all__) <= set(dir(benchmarks))
