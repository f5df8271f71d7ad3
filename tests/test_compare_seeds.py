"""`seql compare --seeds`: one comparison per seed, and each metric's mean ± std over them."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from sequential_learning.cli import main
from sequential_learning.errors import SeqlError
from sequential_learning.report import build_report_html
from sequential_learning.seed_summary import check_seeds, means, summarise, summary_table

SMALL = ["--benchmark", "split-digits", "--epochs", "1", "--hidden", "8", "--limit", "300",
         "--fisher-samples", "50"]


def test_summarise_against_numpy():
    rows = {3: {"a": {"acc": 0.5, "fwt": None, "bwt": -0.1}, "b": {"acc": 0.9, "bwt": 0.0,
                                                                     "nme_acc": 0.8}},
            7: {"a": {"acc": 0.7, "fwt": None, "bwt": float("nan")}, "b": {"acc": 0.8, "bwt": 0.1,
                                                                             "nme_acc": 0.6}},
            9: {"a": {"acc": 0.6, "fwt": None, "bwt": -0.3}, "b": {"acc": 0.4, "bwt": 0.2,
                                                                     "nme_acc": 0.7}}}
    summary = summarise(rows)
    assert summary["seeds"] == [3, 7, 9]
    a, b = summary["methods"]["a"], summary["methods"]["b"]
    assert a["acc"]["mean"] == pytest.approx(np.mean([0.5, 0.7, 0.6]))
    assert a["acc"]["std"] == pytest.approx(np.std([0.5, 0.7, 0.6], ddof=1))
    assert b["bwt"]["std"] == pytest.approx(np.std([0.0, 0.1, 0.2], ddof=1))
    assert "fwt" not in a  # n/a at every seed: not summarised
    assert a["bwt"]["mean"] is None and a["bwt"]["std"] is None  # one seed diverged
    assert math.isnan(a["bwt"]["values"][1])
    assert b["nme_acc"]["mean"] == pytest.approx(0.7)  # a method's own metric (iCaRL's)
    assert means(summary)["b"] == {"acc": pytest.approx(0.7), "bwt": pytest.approx(0.1),
                                   "nme_acc": pytest.approx(0.7)}
    one = summarise({0: {"a": {"acc": 0.25}}})["methods"]["a"]["acc"]
    assert one == {"mean": 0.25, "std": 0.0, "values": [0.25]}
    table = summary_table(summary)
    assert "0.600 ± 0.100" in table and "over 3 seeds (3, 7, 9)" in table
    assert "NME ACC" in table.splitlines()[0] and "FWT" not in table.splitlines()[0]
    with pytest.raises(ValueError, match="same methods"):
        summarise({0: {"a": {"acc": 1.0}}, 1: {"b": {"acc": 1.0}}})


def test_check_seeds():
    assert check_seeds(None, seed_given=True) is None
    assert check_seeds([4, 0, 2], seed_given=False) == [4, 0, 2]
    for seeds, given, message in (([1], True, "not both"), ([], False, "at least one"),
                                  ([0, -2], False, "-2"), ([1, 1], False, "twice")):
        with pytest.raises(SeqlError, match=message):
            check_seeds(seeds, given)


def test_compare_over_seeds_end_to_end(tmp_path, capsys):
    out = tmp_path / "seeds"
    assert main(["compare", *SMALL, "--methods", "none,fisher", "--seeds", "2,5",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "± " in printed and "over 2 seeds (2, 5)" in printed
    summary = json.loads((out / "seeds.json").read_text())
    assert summary["seeds"] == [2, 5] and list(summary["methods"]) == ["none", "fisher"]
    per_seed = {s: json.loads((out / f"seed-{s}" / "comparison.json").read_text())
                for s in (2, 5)}
    for method in ("none", "fisher"):
        for key in ("acc", "bwt", "forgetting"):
            values = [per_seed[s][method][key] for s in (2, 5)]
            cell = summary["methods"][method][key]
            assert cell["values"] == values
            assert cell["mean"] == pytest.approx(np.mean(values))
            assert cell["std"] == pytest.approx(np.std(values, ddof=1))
        run = json.loads((out / "seed-5" / method / "results.json").read_text())
        assert run["config"]["seed"] == 5 and run["config"]["method"] == method
    assert per_seed[2]["none"]["acc"] != per_seed[5]["none"]["acc"]  # the seeds differ
    means_file = json.loads((out / "comparison.json").read_text())
    assert means_file["fisher"]["acc"] == pytest.approx(summary["methods"]["fisher"]["acc"]["mean"])
    assert (out / "comparison.png").stat().st_size > 1000
    html = (out / "report.html").read_text()
    assert "over 2 seeds" in html and "href='seed-5/report.html'" in html
    assert "href='seed-2/fisher/report.html'" in html
    assert (out / "seed-2" / "report.html").is_file()

    # The same seed alone gives the same numbers (the comparison at a seed is an ordinary one).
    alone = tmp_path / "alone"
    assert main(["compare", *SMALL, "--methods", "none,fisher", "--seed", "5",
                 "--out", str(alone)]) == 0
    again = json.loads((alone / "comparison.json").read_text())
    for method in ("none", "fisher"):
        assert again[method]["acc"] == per_seed[5][method]["acc"]
        assert again[method]["bwt"] == per_seed[5][method]["bwt"]

    # The folder is a run folder: refused without --overwrite, nothing changed.
    before = (out / "seeds.json").read_bytes()
    assert main(["compare", *SMALL, "--methods", "none", "--seeds", "0", "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err and (out / "seeds.json").read_bytes() == before


def test_interrupted_seeds_folder_is_ours_and_a_broken_seeds_file_is_one_line(tmp_path, capsys):
    # What a comparison interrupted in its first seed leaves: the marker and a half run.
    out = tmp_path / "half"
    (out / "seed-0" / "none").mkdir(parents=True)
    (out / "seed-0" / "none" / "history.csv").write_text("epoch\n")
    (out / "seeds.json").write_text(json.dumps({"seeds": [0, 1], "methods": None}))
    assert main(["compare", *SMALL, "--methods", "none", "--seeds", "0", "--out", str(out),
                 "--overwrite"]) == 0
    assert not (out / "seed-1").exists()
    assert json.loads((out / "seeds.json").read_text())["seeds"] == [0]
    capsys.readouterr()

    doc = json.loads((out / "seeds.json").read_text())
    doc["methods"]["none"]["acc"]["values"] = [0.5, 0.6]  # two values for one seed
    (out / "seeds.json").write_text(json.dumps(doc))
    with pytest.raises(SeqlError, match="seeds.json.*1 values"):
        build_report_html(out)
    assert main(["report", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "seeds.json" in err[0]


def test_comparison_plot_draws_the_spread_as_error_bars():
    from matplotlib.collections import LineCollection

    from sequential_learning.plots import comparison

    metrics = {"a": {"acc": 0.6, "bwt": -0.1}, "b": {"acc": 0.7, "bwt": None}}

    def bars(figure):
        return sum(isinstance(c, LineCollection) for c in figure.axes[0].get_children())

    plain = comparison(metrics)
    spread = comparison(metrics, spread={"a": {"acc": 0.05}, "b": {"acc": 0.02}})
    assert bars(plain) == 0 and bars(spread) == 1
    segments = [c for c in spread.axes[0].get_children() if isinstance(c, LineCollection)][0]
    widths = sorted(abs(s[1][0] - s[0][0]) for s in segments.get_segments())
    assert widths == pytest.approx([0.04, 0.1])  # ± one std around each mean
    assert "over seeds" in spread._suptitle.get_text()
