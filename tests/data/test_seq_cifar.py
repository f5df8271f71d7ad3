"""Seq-CIFAR-10 / Seq-CIFAR-100 as Mammoth runs them (issue 19, part 3), on every backend.

CIFAR is not on this machine: the tests write tiny CIFAR-format binary files (a few images per
class) and check the loaders' parsing against NumPy, the crop-and-flip augmentation (offsets
within the padding, flips, seeded, off at evaluation), Mammoth's ResNet-18 (parameter count),
the per-method defaults, the whole protocol through `seql run` (BatchNorm statistics trained,
the augmentation's seed saved and a resumed run giving the same accuracy matrix) and bad input
(one line, exit 2).
"""

from __future__ import annotations

import json
import shutil

import keras
import numpy as np
import pytest
import yaml

from run_folders import rollback
from sequential_learning import config as config_module
from sequential_learning.augmentation import RandomCropFlip, Standardize, input_preprocessing
from sequential_learning.cli import main
from sequential_learning.config import (
    AUGMENTATIONS,
    RunConfig,
    make_config,
    method_defaults,
    method_defaults_text,
)
from sequential_learning.data.benchmarks import BENCHMARKS, make_benchmark
from sequential_learning.data.datasets import (
    DataError,
    DatasetNotFoundError,
    load_cifar10,
    load_cifar100,
    load_dataset,
)
from sequential_learning.data.formats.cifar import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    CIFAR100_CLASS_NAMES,
    CIFAR100_MEAN,
)
from sequential_learning.data.published import PUBLISHED, published_table
from sequential_learning.models import build_task_models, resnet18_base

pytestmark = pytest.mark.all_backends

RNG = np.random.default_rng(19)


# -- tiny CIFAR files ---------------------------------------------------------------------------
def _records(labels: np.ndarray, images_chw: np.ndarray, coarse: np.ndarray | None = None):
    """CIFAR binary records: [coarse byte,] label byte, then the R, G, B planes."""
    columns = [labels.astype(np.uint8)[:, None]]
    if coarse is not None:
        columns.insert(0, coarse.astype(np.uint8)[:, None])
    columns.append(images_chw.reshape(len(labels), -1).astype(np.uint8))
    return np.concatenate(columns, axis=1).tobytes()


def _images(n: int) -> np.ndarray:
    return RNG.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)


def write_cifar10(folder, per_class_batch: int = 1, per_class_test: int = 2):
    """Five training batches with `per_class_batch` images of each class, and a test batch."""
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(1, 6):
        labels = np.repeat(np.arange(10), per_class_batch)
        (folder / f"data_batch_{k}.bin").write_bytes(_records(labels, _images(len(labels))))
    labels = np.repeat(np.arange(10), per_class_test)
    (folder / "test_batch.bin").write_bytes(_records(labels, _images(len(labels))))
    return folder


def write_cifar100(folder, per_class_train: int = 2, per_class_test: int = 1):
    """`train.bin` and `test.bin`: coarse label (fine // 5), fine label, pixels."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, per in (("train.bin", per_class_train), ("test.bin", per_class_test)):
        fine = np.repeat(np.arange(100), per)
        (folder / name).write_bytes(_records(fine, _images(len(fine)), coarse=fine // 5))
    return folder


# -- loaders: parsing against NumPy ---------------------------------------------------------------
def test_cifar100_records_parse_to_fine_labels_and_hwc_pixels(tmp_path):
    fine = np.array([7, 99, 0, 42])
    coarse = np.array([13, 1, 19, 0])  # must be ignored
    planes = _images(4)
    folder = tmp_path / "cifar-100-binary"
    folder.mkdir()
    (folder / "train.bin").write_bytes(_records(fine, planes, coarse))
    (folder / "test.bin").write_bytes(_records(fine[:2], planes[:2], coarse[:2]))
    data = load_cifar100(tmp_path)  # the given folder's cifar-100-binary
    expected = planes.transpose(0, 2, 3, 1).astype(np.float32) / 255.0  # R, G, B planes -> HWC
    assert data.name == "cifar100" and data.num_classes == 100
    assert data.class_names == CIFAR100_CLASS_NAMES and data.class_names[99] == "worm"
    np.testing.assert_array_equal(data.y_train, fine)
    np.testing.assert_array_equal(data.x_train, expected)
    np.testing.assert_array_equal(data.y_test, fine[:2])
    # Red, green and blue planes land in channels 0, 1, 2 (pixel (row 3, column 5)).
    assert data.x_train[1, 3, 5].tolist() == pytest.approx(
        [planes[1, c, 3, 5] / 255.0 for c in range(3)])
    assert load_cifar100(folder, limit=3).x_train.shape == (3, 32, 32, 3)


def test_cifar10_binary_still_parses_like_numpy(tmp_path):
    folder = write_cifar10(tmp_path / "c10")
    data = load_cifar10(folder)
    raw = np.frombuffer((folder / "data_batch_3.bin").read_bytes(), np.uint8).reshape(10, 3073)
    np.testing.assert_array_equal(data.y_train[20:30], raw[:, 0])
    np.testing.assert_array_equal(
        data.x_train[20:30],
        raw[:, 1:].reshape(10, 3, 32, 32).transpose(0, 2, 3, 1).astype(np.float32) / 255.0)


def test_cifar100_places_npz_and_keras_cache(tmp_path, monkeypatch):
    x = RNG.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    y = np.array([3, 1, 4, 1])
    np.savez(tmp_path / "cifar100.npz", x_train=x, y_train=y, x_test=x[:2], y_test=y[:2])
    assert load_cifar100(tmp_path).y_train.tolist() == [3, 1, 4, 1]           # folder's npz
    assert load_cifar100(tmp_path / "cifar100.npz", limit=2).y_train.tolist() == [3, 1]
    assert load_dataset("CIFAR-100", tmp_path).name == "cifar100"
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    write_cifar100(tmp_path / "keras" / "datasets" / "cifar-100-binary", 1, 1)
    assert load_cifar100().x_train.shape == (100, 32, 32, 3)                  # the Keras cache


def test_cifar100_missing_lists_places_and_refuses_the_pickles(tmp_path):
    (tmp_path / "cifar-100-python").mkdir()
    (tmp_path / "cifar-100-python" / "train").write_bytes(b"\x80\x04pickled")
    with pytest.raises(DatasetNotFoundError) as info:
        load_cifar100(tmp_path)
    text = str(info.value)
    assert "CIFAR-100 not found" in text and "cifar-100-binary" in text
    assert "cifar100.npz" in text and "pickles" in text and "not loaded" in text
    (tmp_path / "train.bin").write_bytes(b"")
    with pytest.raises(DatasetNotFoundError, match="incomplete, has only train.bin"):
        load_cifar100(tmp_path)


def test_cifar100_truncated_file_and_bad_labels(tmp_path):
    folder = write_cifar100(tmp_path / "c", 1, 1)
    data = (folder / "train.bin").read_bytes()
    (folder / "train.bin").write_bytes(data[:-10])
    with pytest.raises(DataError, match=r"train.bin is \d+ bytes, not a positive multiple of "
                                        r"the 3074-byte record.*truncated"):
        load_cifar100(folder)
    (folder / "train.bin").write_bytes(_records(np.array([100]), _images(1), np.array([0])))
    with pytest.raises(DataError, match="has label 100; labels are 0..99"):
        load_cifar100(folder)


# -- benchmarks ------------------------------------------------------------------------------------
def test_seq_benchmarks_follow_mammoth(tmp_path):
    stream = make_benchmark("seq-cifar10", data_dir=write_cifar10(tmp_path / "c10", 2))
    assert stream.scenario == "class" and BENCHMARKS["seq-cifar10"].default_scenario == "class"
    assert [t.classes for t in stream.tasks] == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    assert stream.head_sizes == [10] * 5 and stream.input_shape == (32, 32, 3)
    assert len(stream.tasks[0].x_train) == 20 and stream.tasks[0].x_train.max() <= 1.0
    assert stream.details["normalization"] == {"mean": list(CIFAR10_MEAN),
                                               "std": list(CIFAR10_STD)}
    stream = make_benchmark("seq-cifar100", scenario="task",
                            data_dir=write_cifar100(tmp_path / "c100"))
    assert len(stream) == 10 and stream.head_sizes == [10] * 10
    assert stream.tasks[3].classes == list(range(30, 40))
    assert stream.details["normalization"]["mean"] == list(CIFAR100_MEAN)


# -- augmentation ----------------------------------------------------------------------------------
def _distinct_images(n: int, side: int = 6) -> np.ndarray:
    return (np.arange(n * side * side * 3, dtype=np.float32) + 1).reshape(n, side, side, 3)


def _offsets(x: np.ndarray, out: np.ndarray, pad: int) -> list[tuple[int, int, bool]]:
    """Each output's (row offset, column offset, flipped) in the zero-padded input."""
    side = x.shape[1]
    padded = np.pad(x, [(0, 0), (pad, pad), (pad, pad), (0, 0)])
    found = []
    for n in range(len(x)):
        matches = [(dy, dx, flip) for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)
                   for flip in (False, True)
                   if np.array_equal(out[n], (lambda w: w[:, ::-1] if flip else w)(
                       padded[n, dy:dy + side, dx:dx + side]))]
        assert len(matches) == 1, f"image {n}: not a crop of the padded input"
        found.append(matches[0])
    return found


def test_random_crop_flip_crops_within_the_padding_and_flips():
    x = _distinct_images(64)
    layer = RandomCropFlip(padding=4, seed=3)
    out = keras.ops.convert_to_numpy(layer(x, training=True))
    found = _offsets(x, out, 4)
    assert all(0 <= dy <= 8 and 0 <= dx <= 8 for dy, dx, _ in found)
    assert {flip for *_, flip in found} == {False, True}
    assert len({(dy, dx) for dy, dx, _ in found}) >= 20  # offsets drawn per image
    assert {dy for dy, _, _ in found} >= {0, 8} or len({dy for dy, _, _ in found}) >= 7


def test_random_crop_flip_is_seeded_and_off_at_evaluation():
    x = _distinct_images(16)
    first, again, other = (RandomCropFlip(4, seed=s) for s in (5, 5, 6))
    a = keras.ops.convert_to_numpy(first(x, training=True))
    np.testing.assert_array_equal(a, keras.ops.convert_to_numpy(again(x, training=True)))
    assert not np.array_equal(a, keras.ops.convert_to_numpy(other(x, training=True)))
    # The draws advance with each call; the state is a weight (saved with the model).
    assert not np.array_equal(a, keras.ops.convert_to_numpy(first(x, training=True)))
    assert [w.name for w in first.weights] == ["seed_state"]
    assert keras.ops.convert_to_numpy(first.seed_state).tolist() == [5, 4]
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(first(x)), x)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(first(x, training=False)), x)
    # In a model: only training calls augment.
    inputs = keras.Input((6, 6, 3))
    model = keras.Model(inputs, RandomCropFlip(4, seed=1)(inputs))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model(x, training=False)), x)
    assert not np.array_equal(keras.ops.convert_to_numpy(model(x, training=True)), x)


def test_standardize_and_input_preprocessing():
    x = RNG.random((3, 4, 4, 3)).astype(np.float32)
    out = keras.ops.convert_to_numpy(Standardize(CIFAR10_MEAN, CIFAR10_STD)(x))
    np.testing.assert_allclose(out, (x - np.array(CIFAR10_MEAN)) / np.array(CIFAR10_STD),
                               rtol=1e-6)
    assert input_preprocessing("none") == []
    kinds = [type(layer) for layer in input_preprocessing("crop-flip", (CIFAR10_MEAN,
                                                                        CIFAR10_STD))]
    assert kinds == [RandomCropFlip, Standardize]
    for name in AUGMENTATIONS:  # every value the option allows is one the builder knows
        input_preprocessing(name)
    with pytest.raises(ValueError, match="augmentation: 'cutout' is not allowed"):
        input_preprocessing("cutout")
    with pytest.raises(ValueError, match="one mean and one std per channel"):
        Standardize([0.5], [0.2, 0.3])


# -- the ResNet-18 ---------------------------------------------------------------------------------
def _resnet18_parameters(nf: int, classes: int) -> tuple[int, int]:
    """Trainable and BatchNorm-statistics counts of Mammoth's ResNet-18, by hand."""
    trainable, stats = 3 * 3 * 3 * nf + 2 * nf, 2 * nf
    c_in = nf
    for factor, stride in ((1, 1), (2, 2), (4, 2), (8, 2)):
        c = nf * factor
        for block in range(2):
            s, cin = (stride, c_in) if block == 0 else (1, c)
            trainable += 9 * cin * c + 2 * c + 9 * c * c + 2 * c
            stats += 4 * c
            if s != 1 or cin != c:
                trainable += cin * c + 2 * c
                stats += 2 * c
        c_in = c
    return trainable + 8 * nf * classes + classes, stats


@pytest.mark.parametrize("nf, classes", [(64, 10), (20, 100)])
def test_resnet18_has_mammoths_parameters(nf, classes):
    base = resnet18_base((32, 32, 3), nf)
    model = build_task_models(base, [classes], shared_head=True)[0]
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    stats = sum(int(np.prod(v.shape)) for v in model.non_trainable_weights)
    assert (trainable, stats) == _resnet18_parameters(nf, classes)
    if nf == 64:
        assert trainable == 11_173_962  # Mammoth's resnet18(10): sum of p.numel()
    assert base.output_shape == (None, 8 * nf)
    shapes = {layer.name: layer.output.shape for layer in base.layers}
    assert shapes["base_stem_relu"][1:] == (32, 32, nf)           # no max-pool after the stem
    assert shapes["base_layer4_block2_relu2"][1:] == (4, 4, 8 * nf)


def test_resnet18_rejects_what_it_cannot_build():
    with pytest.raises(ValueError, match="needs images shaped"):
        resnet18_base((64,))
    with pytest.raises(ValueError, match="nf 0 is not allowed"):
        resnet18_base((32, 32, 3), 0)


# -- per-method defaults ---------------------------------------------------------------------------
def test_method_defaults_per_method_and_buffer_size():
    config = make_config({"benchmark": "seq-cifar10", "method": "derpp", "memory": 200}).validate()
    assert (config.learning_rate, config.derpp_alpha, config.derpp_beta, config.memory_batch) == (
        0.03, 0.1, 0.5, 32)
    assert (config.model, config.optimizer, config.augmentation) == ("resnet18", "sgd",
                                                                     "crop-flip")
    assert (config.epochs, config.batch_size, config.resnet_width) == (50, 32, 64)
    assert config.defaults_used["derpp_alpha"] == "benchmark seq-cifar10, method derpp, memory 200"
    assert config.defaults_used["learning_rate"] == "benchmark seq-cifar10, method derpp"
    config = make_config({"benchmark": "seq-cifar10", "method": "derpp"}).validate()  # 500
    assert (config.derpp_alpha, config.derpp_beta) == (0.2, 0.5)
    # ER: Mammoth's lr 0.1 on the mean over batch + buffer batch is lr 0.05 on our sum of means.
    assert make_config({"benchmark": "seq-cifar10", "method": "replay",
                        "memory": 500}).validate().learning_rate == 0.05
    assert make_config({"benchmark": "seq-cifar10", "method": "none"}).validate() \
        .learning_rate == 0.1
    assert make_config({"benchmark": "seq-cifar10", "method": "lwf"}).validate().lwf_alpha == 3.0
    # A combination: each method's entry in the run's order, the first setting a key wins.
    both = make_config({"benchmark": "seq-cifar10", "method": "a-gem+replay"}).validate()
    assert both.learning_rate == 0.03 and both.defaults_used["learning_rate"].endswith("a-gem")
    # Other benchmarks are untouched.
    plain = make_config({"benchmark": "split-digits", "method": "derpp"}).validate()
    assert (plain.optimizer, plain.augmentation, plain.learning_rate) == ("adam", "none", 0.001)
    assert method_defaults("split-digits", ["derpp"], 200) == {}
    assert "derpp@200: derpp_alpha=0.1, derpp_beta=0.5" in method_defaults_text(
        config_module.benchmark_defaults("seq-cifar10")["method_defaults"])


def test_the_runs_own_values_win_over_method_defaults(tmp_path):
    given = make_config({"benchmark": "seq-cifar10", "method": "derpp", "memory": 200,
                         "derpp_alpha": 0.3, "learning_rate": 0.5, "optimizer": "adam"}).validate()
    assert (given.derpp_alpha, given.learning_rate, given.derpp_beta, given.optimizer) == (
        0.3, 0.5, 0.5, "adam")
    assert "derpp_alpha" not in given.defaults_used
    # Given on the command line, even at the option's own default value.
    from sequential_learning.cli import parse
    from sequential_learning.commands import config_from

    cli = config_from(parse(["run", "--benchmark", "seq-cifar10", "--method", "derpp",
                             "--memory", "200", "--derpp-alpha", "0.3"]))
    assert cli.derpp_alpha == 0.3 and cli.derpp_beta == 0.5
    # In Python, values other than the options' defaults are the run's own.
    python = RunConfig(benchmark="seq-cifar10", method="derpp", memory=200, derpp_beta=0.9,
                       learning_rate=0.2).validate()
    assert (python.derpp_alpha, python.derpp_beta, python.learning_rate) == (0.1, 0.9, 0.2)
    # Changed after a first validate: kept by the next one (run_experiment validates again).
    python.derpp_alpha = 0.7
    assert python.validate().derpp_alpha == 0.7
    # The resolved config, saved and read back, is the same run.
    saved = tmp_path / "config.yaml"
    saved.write_text(yaml.safe_dump(given.to_dict()))
    again = make_config(config_module.load_config_file(saved)).validate()
    assert again.to_dict() == given.to_dict()


def test_bad_method_defaults_name_the_file_and_key(tmp_path, monkeypatch):
    monkeypatch.setattr(config_module, "_DEFAULTS", tmp_path)
    config_module._defaults_file.cache_clear()
    try:
        for table, fragment in [
            ({"derpp": {"memory": 5}}, "'memory' is not a per-method setting"),
            ({"derpp": {"colour": 5}}, "'colour' is not a per-method setting"),
            ({"derpp": {200: {"derpp_alpha": -1}}}, "derpp: derpp_alpha: -1 is not allowed"),
            ({"derpp": 3}, "derpp: 3 is not a mapping"),
        ]:
            (tmp_path / "seq-cifar10.yaml").write_text(yaml.safe_dump(
                {"method_defaults": table}))
            config_module._defaults_file.cache_clear()
            with pytest.raises(ValueError, match=fragment) as info:
                method_defaults("seq-cifar10", ["derpp"], 200)
            assert "defaults/seq-cifar10.yaml: method_defaults" in str(info.value)
    finally:
        config_module._defaults_file.cache_clear()


def test_published_table_lists_the_der_paper():
    rows = {(r["method"], r["memory"]): r for r in PUBLISHED["seq-cifar10"]["rows"]}
    assert (rows["DER++", 500]["class_il"], rows["DER++", 500]["task_il"]) == (72.70, 93.88)
    assert rows["ER", 200]["class_il"] == 44.79 and rows["JOINT", None]["class_il"] == 92.20
    table = published_table("seq-cifar10")
    assert "| DER++ | 200 | 64.88 | 91.92 |" in table
    assert "--benchmark seq-cifar10 --method derpp --memory 500" in table


# -- the protocol end to end -----------------------------------------------------------------------
TINY = ["--epochs", "1", "--resnet-width", "2", "--batch-size", "8", "--deterministic"]


def _matrix(run) -> np.ndarray:
    return np.array(json.loads((run / "results.json").read_text())["accuracy_matrix"])


@pytest.mark.slow
@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="the five-task ResNet stream costs minutes on JAX and torch; "
                           "test_seq_cifar100_end_to_end runs the protocol on every backend")
def test_seq_cifar10_end_to_end_and_resume(tmp_path, capsys):
    data = write_cifar10(tmp_path / "cifar-10-batches-bin")
    run = tmp_path / "run"
    argv = ["run", "--benchmark", "seq-cifar10", "--data-dir", str(data), "--method", "derpp",
            "--memory", "20", *TINY]
    assert main([*argv, "--out", str(run)]) == 0, capsys.readouterr().err
    results = json.loads((run / "results.json").read_text())
    config = results["config"]
    assert (config["model"], config["optimizer"], config["augmentation"]) == (
        "resnet18", "sgd", "crop-flip")
    assert (config["learning_rate"], config["memory_batch"], config["scenario"]) == (
        0.03, 32, None)
    assert config["defaults_used"]["learning_rate"] == "benchmark seq-cifar10, method derpp"
    assert config["benchmark_info"]["scenario"] == "class"
    assert config["benchmark_info"]["normalization"]["std"] == list(CIFAR10_STD)
    assert _matrix(run).shape == (5, 5)
    # The saved model: Mammoth's front (crop-flip, standardise), BatchNorm trained, loadable.
    from sequential_learning.checkpoint import load_model

    model = load_model(run / "models" / "task_5.keras")
    base = model.get_layer("base")
    crop = base.get_layer("augment_crop_flip")
    assert isinstance(crop, RandomCropFlip) and isinstance(base.get_layer("standardize"),
                                                           Standardize)
    assert keras.ops.convert_to_numpy(crop.seed_state)[1] > 0   # drawn from, in the step
    bn = base.get_layer("base_stem_bn")
    assert np.abs(keras.ops.convert_to_numpy(bn.moving_mean)).max() > 0
    assert np.abs(keras.ops.convert_to_numpy(bn.moving_variance) - 1).max() > 0
    # Interrupted after task 4 and resumed: the same accuracy matrix (the BatchNorm statistics
    # and the augmentation's seed come back with the weights).
    copy = tmp_path / "resumed"
    shutil.copytree(run, copy)
    rollback(copy, 4)
    assert main(["run", "--resume", str(copy)]) == 0, capsys.readouterr().err
    np.testing.assert_array_equal(_matrix(copy), _matrix(run))


def test_seq_cifar100_end_to_end(tmp_path, capsys):
    # Through `seql run` with two tasks of 50 classes (--classes-per-task 50): the benchmark's
    # own ten tasks of ten are checked by test_seq_benchmarks_follow_mammoth and the config
    # tests; ten tasks of training and evaluating the ResNet would be most of this file's time.
    write_cifar100(tmp_path / "cifar-100-binary", per_class_train=1, per_class_test=1)
    run = tmp_path / "run"
    assert main(["run", "--benchmark", "seq-cifar100", "--data-dir", str(tmp_path),
                 "--method", "replay", "--memory", "20", "--classes-per-task", "50", *TINY,
                 "--out", str(run)]) == 0, capsys.readouterr().err
    results = json.loads((run / "results.json").read_text())
    assert _matrix(run).shape == (2, 2)
    config = results["config"]
    assert config["benchmark_info"]["head_sizes"] == [100, 100]
    assert config["benchmark_info"]["classes"][1] == list(range(50, 100))
    assert config["benchmark_info"]["normalization"]["mean"] == list(CIFAR100_MEAN)
    assert (config["learning_rate"], config["optimizer"], config["model"]) == (0.05, "sgd",
                                                                               "resnet18")


@pytest.mark.parametrize("case, argv, fragment", [
    ("missing", ["--benchmark", "seq-cifar100", "--data-dir", "{tmp}/nowhere"],
     "CIFAR-100 not found. Looked in:"),
    ("truncated", ["--benchmark", "seq-cifar100", "--data-dir", "{tmp}/short"],
     "train.bin is 3064 bytes, not a positive multiple of the 3074-byte record"),
    ("cifar10-missing", ["--benchmark", "seq-cifar10", "--data-dir", "{tmp}/nowhere"],
     "CIFAR-10 not found"),
    ("not-images", ["--benchmark", "iris-features", "--model", "resnet18"],
     "model: resnet18 needs images shaped (H, W, C)"),
    ("augment-not-images", ["--benchmark", "iris-features", "--augmentation", "crop-flip"],
     "augmentation: crop-flip needs images shaped (H, W, C)"),
    ("width", ["--benchmark", "seq-cifar10", "--resnet-width", "0"],
     "resnet_width: 0 is not allowed; expected an integer >= 1"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, case, argv, fragment):
    short = tmp_path / "short"
    write_cifar100(short, 1, 1)
    (short / "train.bin").write_bytes((short / "train.bin").read_bytes()[:3064])
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(["run", *argv, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("seql: error: ") and fragment in err[0], err
    assert not (tmp_path / "run").exists()


def test_bad_choices_exit_2(capsys):
    for flag, value in (("--optimizer", "rmsprop"), ("--augmentation", "cutout"),
                        ("--model", "resnet50")):
        with pytest.raises(SystemExit) as info:
            main(["run", "--benchmark", "seq-cifar10", flag, value])
        assert info.value.code == 2
        assert "invalid choice" in capsys.readouterr().err
