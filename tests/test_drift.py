"""Tests of explanation drift (interpret/drift.py): Spearman similarity and `seql drift`.

The run directory is made by hand (a tiny CNN base, three task heads, checkpoints written with
the manager's own `save_checkpoint`): the base is unchanged by task 2 and scrambled by task 3, so
task 1's explanations must stay identical after task 2 and change after task 3.
"""

from __future__ import annotations

import json
import math
import shutil

import keras
import numpy as np
import pytest

from sequential_learning.checkpoint import save_checkpoint
from sequential_learning.cli import main
from sequential_learning.interpret.drift import explanation_drift, rankdata, spearman
from sequential_learning.models import build_task_models, cnn_base

pytestmark = pytest.mark.all_backends


def test_rankdata_gives_ties_their_average_rank():
    np.testing.assert_array_equal(rankdata([10, 20, 20, 5]), [2.0, 3.5, 3.5, 1.0])
    np.testing.assert_array_equal(rankdata([[3, 1], [2, 1]]), [4.0, 1.5, 3.0, 1.5])


def test_spearman_by_hand():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 400]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # Ties: ranks (1, 2.5, 2.5, 4) against (1, 2, 3, 4): Pearson of the ranks.
    expected = np.corrcoef([1, 2.5, 2.5, 4], [1, 2, 3, 4])[0, 1]
    assert spearman([0, 5, 5, 9], [1, 2, 3, 4]) == pytest.approx(expected)
    assert math.isnan(spearman(np.zeros(4), [1, 2, 3, 4]))  # a constant map has no ranking
    with pytest.raises(ValueError, match="same size"):
        spearman([1, 2], [1, 2, 3])


@pytest.fixture(scope="module")
def hand_run(tmp_path_factory):
    """models/, samples/ and checkpoint/ of a 3-task run; task 3 scrambles the conv kernels."""
    run = tmp_path_factory.mktemp("drift") / "run"
    keras.utils.set_random_seed(0)
    base = cnn_base((8, 8, 1), filters=(4,), dense=8)
    models = build_task_models(base, [2, 2, 2])
    rng = np.random.default_rng(0)
    # Weights drawn with NumPy (Glorot-uniform kernels, zero biases): the same run on every
    # backend, whose own initialisers draw different numbers from one seed.
    for variable in {id(v): v for m in models for v in m.weights}.values():
        shape = tuple(variable.shape)
        if len(shape) < 2:
            variable.assign(np.zeros(shape, np.float32))
            continue
        receptive = int(np.prod(shape[:-2]))
        limit = np.sqrt(6.0 / (receptive * (shape[-2] + shape[-1])))
        variable.assign(rng.uniform(-limit, limit, shape).astype(np.float32))
    conv = base.get_layer("base_conv_1")
    conv.bias.assign(np.full(4, 0.1, np.float32))  # positive: the Grad-CAM maps are not all zero
    for k in (1, 2):
        save_checkpoint(run, models, k, [], {})
    conv.kernel.assign(rng.normal(0, 1, conv.kernel.shape).astype(np.float32))
    save_checkpoint(run, models, 3, [], {})
    (run / "models").mkdir()
    (run / "samples").mkdir()
    for k, model in enumerate(models, start=1):
        model.save(run / "models" / f"task_{k}.keras")
        x = rng.random((6, 8, 8, 1)).astype(np.float32)
        np.savez(run / "samples" / f"task_{k}.npz", x=x, y=rng.integers(0, 2, 6))
    return run


def test_unchanged_weights_give_identical_explanations_and_scrambled_ones_do_not(hand_run, tmp_path):
    table = explanation_drift(hand_run, images=4, path=tmp_path / "drift.png",
                              json_path=tmp_path / "drift.json")
    rows = {(r["method"], r["task"], r["after_task"]): r for r in table["rows"]}
    assert len(rows) == 2 * (3 + 2 + 1)  # every task after itself and every later task
    for method in ("grad-cam", "occlusion"):
        assert rows[method, 1, 1]["similarity"] == pytest.approx(1.0)
        assert rows[method, 1, 2]["similarity"] == pytest.approx(1.0)  # task 2 left the base as is
        assert rows[method, 1, 2]["valid_images"] >= 1
        assert rows[method, 1, 3]["similarity"] < 0.95                  # task 3 scrambled it
        assert table["by_distance"]["run"][method][0] == pytest.approx(1.0)
    assert (tmp_path / "drift.png").stat().st_size > 0
    assert json.loads((tmp_path / "drift.json").read_text())["settings"]["images"] == 4


def test_cli_drift_compares_runs_and_rejects_bad_input(hand_run, tmp_path, capsys):
    out = tmp_path / "out"
    other = tmp_path / "other"
    shutil.copytree(hand_run, other)
    argv = ["drift", str(hand_run), str(other), "--methods", "occlusion", "--images", "2",
            "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    table = json.loads((out / "drift.json").read_text())
    assert sorted(table["by_distance"]) == ["other", "run"]  # no results.json: the folder names
    assert "occlusion" in printed and (out / "drift.png").is_file()
    assert main(["drift", str(hand_run), "--methods", "saliency"]) == 2
    assert "Unknown explanation method 'saliency'" in capsys.readouterr().err
    assert main(["drift", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
