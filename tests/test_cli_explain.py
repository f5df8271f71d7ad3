"""`seql explain` on a real (tiny) CNN run written by the manager, and its bad input."""

from __future__ import annotations

import keras
import pytest

from sequential_learning.cli import main
from sequential_learning.data.benchmarks import make_benchmark
from sequential_learning.manager import SequentialLearningManager
from sequential_learning.models import cnn_base
from sequential_learning.tasks import tasks_from_benchmark

pytestmark = pytest.mark.all_backends


def test_explain_a_cnn_run(tmp_path, capsys):
    keras.utils.set_random_seed(0)
    stream = make_benchmark("split-digits")
    stream.tasks = stream.tasks[:2]
    stream.head_sizes = stream.head_sizes[:2]
    base = cnn_base(stream.input_shape, filters=(4,), dense=8)
    tasks = tasks_from_benchmark(stream, base, batch_size=64)
    SequentialLearningManager(base, tasks, method="fisher", ewc_lambda=1.0, epochs=1,
                              fisher_samples=50, out_dir=tmp_path).train_all()
    assert main(["explain", str(tmp_path), "--method", "grad-cam", "--images", "2"]) == 0
    printed = capsys.readouterr().out.split()
    assert len(printed) >= 2 and all(p.endswith(".png") for p in printed)
    assert all((tmp_path / "explain").joinpath(p.split("/")[-1]).exists() for p in printed)


def test_explain_a_folder_without_models(tmp_path, capsys):
    assert main(["explain", str(tmp_path), "--method", "grad-cam"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("seql: error:") and "models" in err[-1]
