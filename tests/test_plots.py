"""Figures a person can read: the accuracy matrix's numbers contrast with their cells (WCAG AA), and
the comparison of many methods keeps every name and value apart at a width a report can show."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb
from matplotlib.text import Annotation
from PIL import Image

from sequential_learning import plots
from sequential_learning.results import Results

pytestmark = pytest.mark.all_backends

METHODS = ["none", "fisher", "ewc_online", "si", "mas", "rwalk", "lwf", "der", "derpp", "er",
           "agem", "gem", "icarl", "l2", "packnet", "hat", "ewc_kfac", "scp_with_a_longer_name"]


def _results(matrix: np.ndarray, higher_is_better: bool = True) -> Results:
    t = matrix.shape[0]
    return Results(config={"benchmark": "made-up", "method": "fisher"},
                   task_names=[f"task {j}" for j in range(t)], accuracy_matrix=matrix,
                   baseline=np.full(t, 0.1), history={"accuracy": matrix},
                   higher_is_better=higher_is_better)


def _made_up(methods: list[str], seed: int = 0) -> dict[str, dict[str, float]]:
    rng = np.random.default_rng(seed)
    return {m: {"acc": float(rng.uniform(0.3, 0.95)), "bwt": float(rng.uniform(-0.5, 0)),
                "fwt": float(rng.uniform(-0.05, 0.05)), "forgetting": float(rng.uniform(0, 0.5))}
            for m in methods}


def _wcag_contrast(first, second) -> float:
    """WCAG 2 contrast ratio, written out here as the test's own oracle."""
    def luminance(colour):
        c = np.asarray(to_rgb(colour))
        c = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
        return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]

    high, low = sorted((luminance(first), luminance(second)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def _render(figure):
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return canvas.get_renderer()


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_contrast_helpers():
    assert plots.contrast_ratio("#000", "#fff") == pytest.approx(21.0)
    assert plots.contrast_ratio("red", "red") == pytest.approx(1.0)
    for a, b in [("#777", "#fff"), ("tab:blue", "yellow"), ("#440154", "#fde725")]:
        assert plots.contrast_ratio(a, b) == pytest.approx(_wcag_contrast(a, b))
    assert plots.text_colour("yellow") == "#000"
    assert plots.text_colour("#440154") == "#fff"  # viridis' darkest
    # Black or white: the better one always reaches WCAG AA (4.5) on any colour.
    for grey in np.linspace(0, 1, 101):
        background = (grey, grey, grey)
        assert plots.contrast_ratio(plots.text_colour(background), background) >= 4.5


@pytest.mark.parametrize("higher_is_better", [True, False])
def test_accuracy_matrix_numbers_contrast_with_their_cells(higher_is_better, tmp_path):
    t = 6
    matrix = np.linspace(0.0, 1.0, t * t).reshape(t, t)  # every colour of the map
    matrix[0, 5] = np.nan
    figure = plots.accuracy_matrix(_results(matrix, higher_is_better), tmp_path / "m.png")
    ax = figure.axes[0]
    image = ax.images[0]
    texts = ax.texts
    assert len(texts) == t * t - 1  # no number on the missing cell
    inks = set()
    for text in texts:
        x, y = text.get_position()
        value = matrix[int(round(y)), int(round(x))]
        assert text.get_text() == f"{value:.2f}"
        cell = image.cmap(image.norm(value))
        ratio = _wcag_contrast(text.get_color(), cell)
        assert ratio >= 4.5, (text.get_text(), text.get_color(), cell, ratio)
        inks.add(text.get_color())
    assert inks == {"#000", "#fff"}  # dark text on the light cells, light on the dark ones
    assert (tmp_path / "m.png").stat().st_size > 0


@pytest.mark.parametrize("count", [3, 18])
def test_comparison_names_and_values_do_not_overlap(count):
    methods = METHODS[:count]
    figure = plots.comparison(_made_up(methods))
    renderer = _render(figure)
    axes = figure.axes
    assert [ax.get_title() for ax in axes] == ["ACC", "BWT", "FWT", "forgetting"]
    # The method names, once, on the left, in the order given (the first on top).
    labels = [label for label in axes[0].get_yticklabels() if label.get_text()]
    assert [label.get_text() for label in labels] == methods
    boxes = [label.get_window_extent(renderer) for label in labels]
    assert boxes[0].y0 > boxes[-1].y0
    for a, b in itertools.combinations(boxes, 2):
        assert not _overlap(a, b)
    figure_box = figure.bbox
    for box in boxes:
        assert box.x0 >= figure_box.x0 and box.x1 <= figure_box.x1
        assert box.height >= 8  # 9 pt at 72 dpi: readable, not shrunk
    # Each bar's value beside it, inside its own panel, apart from the others.
    for ax in axes:
        notes = [a for a in ax.texts if isinstance(a, Annotation)]
        assert len(notes) == count
        note_boxes = [n.get_window_extent(renderer) for n in notes]
        panel = ax.get_window_extent(renderer)
        for box in note_boxes:
            assert panel.x0 <= box.x0 and box.x1 <= panel.x1, (ax.get_title(), box, panel)
        for a, b in itertools.combinations(note_boxes, 2):
            assert not _overlap(a, b)
    # Panels and names do not collide either.
    name_edge = max(box.x1 for box in boxes)
    assert name_edge <= axes[0].get_window_extent(renderer).x0
    for left, right in itertools.pairwise(axes):
        assert left.get_window_extent(renderer).x1 < right.get_window_extent(renderer).x0


def test_comparison_grows_in_height_not_width(tmp_path):
    sizes = {}
    for count in (3, 18):
        path = tmp_path / f"{count}.png"
        figure = plots.comparison(_made_up(METHODS[:count]), path)
        sizes[count] = figure.get_size_inches()
        with Image.open(path) as image:
            width, height = image.size
        # Fits a report's column (about 1100 px) with little scaling, whatever the count.
        assert width <= 1300, (count, image.size)
        assert height >= 280
    assert sizes[18][1] > sizes[3][1] * 2
    assert sizes[18][0] <= 13 and sizes[18][0] - sizes[3][0] <= 1.5  # only longer names widen it


def test_comparison_missing_values_and_task_il_panel():
    metrics = _made_up(["none", "fisher"])
    metrics["none"]["fwt"] = None
    del metrics["fisher"]["bwt"]
    metrics["fisher"]["task_il_acc"] = 0.9
    figure = plots.comparison(metrics)
    _render(figure)
    titles = [ax.get_title() for ax in figure.axes]
    assert titles == ["ACC", "BWT", "FWT", "forgetting", "ACC (task-IL)"]
    texts = {ax.get_title(): [t.get_text() for t in ax.texts] for ax in figure.axes}
    assert texts["FWT"][0] == "—" and texts["BWT"][1] == "—"
    assert texts["ACC (task-IL)"] == ["—", "0.900"]
    with pytest.raises(ValueError, match="at least one method"):
        plots.comparison({})


def test_plots_module_re_exports_the_report_figures():
    """`sequential_learning.plots` is a re-export of `sequential_learning.report.plots`: every
    public function of the figures is the same object under both names, and `sl.plots` works."""
    import inspect

    import sequential_learning as sl
    from sequential_learning.report import plots as figures

    defined = {name for name, value in vars(figures).items() if not name.startswith("_")
               and (inspect.isfunction(value) and value.__module__ == figures.__name__
                    or name.isupper())}
    assert defined == set(figures.__all__) == set(plots.__all__)
    for name in figures.__all__:
        assert getattr(plots, name) is getattr(figures, name), name
    assert sl.plots.task_curves is figures.task_curves
