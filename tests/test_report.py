"""report.html: a run's and a comparison's sections, escaping, `seql report`, and a real headless
browser (Chromium) loading the file with every image decoded and no console message."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import keras
import pytest
import tensorflow as tf

from sequential_learning.cli import main
from sequential_learning.report import build_report_html, write_report
from sequential_learning.results import Results

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)


@pytest.fixture(scope="module")
def comparison_dir(tmp_path_factory):
    """`seql compare` of none and fisher on two split-digits tasks (one epoch, a tiny MLP)."""
    out = tmp_path_factory.mktemp("report") / "cmp"
    code = main(["compare", "--benchmark", "split-digits", "--classes-per-task", "5",
                 "--methods", "none,fisher", "--epochs", "1", "--hidden", "8",
                 "--fisher-samples", "30", "--out", str(out)])
    assert code == 0
    return out


@pytest.fixture
def run_dir(comparison_dir, tmp_path):
    """A copy of the fisher run, plus the figures `explain` and `augment` would leave."""
    run = tmp_path / "run"
    shutil.copytree(comparison_dir / "fisher", run,
                    ignore=shutil.ignore_patterns("models", "samples", "checkpoint"))
    png = (run / "task_curves.png").read_bytes()
    for name in ("explain/task_1/grad-cam.png", "augment/mask.png", "ablation.png", "drift.png"):
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_bytes(png)
    return run


def _sources(text: str) -> tuple[list[str], list[str]]:
    return (re.findall(r"\bsrc='([^']*)'", text), re.findall(r"\bhref='([^']*)'", text))


def test_run_and_compare_write_reports(comparison_dir):
    for folder in (comparison_dir, comparison_dir / "none", comparison_dir / "fisher"):
        assert (folder / "report.html").stat().st_size > 10_000
        environment = json.loads((folder / "environment.json").read_text())
        assert environment["tensorflow"] == tf.__version__


def test_run_report_has_every_section(run_dir):
    text = write_report(run_dir).read_text()
    results = Results.load(run_dir)
    for section in ("metrics", "matrix", "curves", "timing", "importance", "config",
                    "environment", "explanations--explain", "importance-masking--augment",
                    "ablation--augment", "weight-drift"):
        assert f"<h2 id='{section}'>" in text, section
    acc = f"{results.metrics['acc']:.3f}"
    assert f"<div class='n'>{acc}</div>" in text
    # The coloured matrix: the untrained row and one row per task, a colour per cell.
    t = results.num_tasks
    matrix = text.split("<table class='matrix'>", 1)[1].split("</table>", 1)[0]
    assert len(re.findall(r"<td style='background:#[0-9a-f]{6};color:#(?:000|fff)'>", matrix)) \
        == (t + 1) * t
    # Ω summaries: every covered variable, mean / max / zeros for each task.
    for name in results.importance_summary[0]:
        assert f"<code>{name}</code>" in text
    assert text.count("<th>zeros</th>") == t
    for key in ("fisher_mode", "fisher_samples", "ewc_lambda", "benchmark_info"):
        assert f"<td class='k'>{key}</td>" in text
    assert f"<td class='v'>{keras.__version__}</td>" in text
    assert f"<td class='v'>{tf.__version__}</td>" in text
    assert "explain/task_1/grad-cam.png</figcaption>" in text
    # Self-contained: every image inline, no remote or external resource, one inline script.
    sources, links = _sources(text)
    assert len(sources) == 6  # curves, importance, explain, augment, ablation, drift
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert all("://" not in h for h in links)
    assert "<link rel='stylesheet'" not in text and "<script src" not in text
    assert "default-src 'none'" in text


def test_text_is_escaped(run_dir):
    doc = json.loads((run_dir / "results.json").read_text())
    doc["task_names"][0] = "<img src=x onerror=alert(1)>"
    doc["config"]["benchmark"] = "<script>alert('b')</script>"
    doc["importance_summary"][0]["<b>v</b>"] = {"mean": 1.0, "max": 2.0, "zero_fraction": 0.5}
    (run_dir / "results.json").write_text(json.dumps(doc))
    text = build_report_html(run_dir)
    assert "<img src=x" not in text and "<script>alert" not in text and "<b>v</b>" not in text
    assert "&lt;script&gt;alert(&#x27;b&#x27;)&lt;/script&gt;" in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in text and "&lt;b&gt;v&lt;/b&gt;" in text


def test_seql_report_rebuilds(run_dir, capsys):
    (run_dir / "report.html").unlink()
    assert main(["report", str(run_dir)]) == 0
    assert capsys.readouterr().out.strip() == str(run_dir / "report.html")
    assert (run_dir / "report.html").read_text().startswith("<!DOCTYPE html>")


@pytest.mark.parametrize("make", [lambda p: p, lambda p: p / "missing"])
def test_not_a_run_directory_exits_2_with_one_line(tmp_path, capsys, make):
    folder = make(tmp_path)
    with pytest.raises(ValueError, match="not a run directory"):
        build_report_html(folder)
    assert main(["report", str(folder)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("seql: error: ") and "results.json" in err[0]
    assert not (folder / "report.html").exists()


def test_comparison_report(comparison_dir):
    text = build_report_html(comparison_dir)
    comparison = json.loads((comparison_dir / "comparison.json").read_text())
    assert "<h2 id='table'>Metrics</h2>" in text
    for method in ("none", "fisher"):
        assert f"<a href='{method}/report.html'>{method}</a>" in text
        assert f"<h2 id='method-{method}'>" in text
        assert f"{comparison[method]['acc']:.3f}" in text
    assert text.count("<b class='best'>") == 4  # one best value per metric column
    assert "Settings shared by every method" in text and "Settings per method" in text
    sources, _ = _sources(text)
    assert len(sources) == 3  # the comparison plot and each method's task curves
    assert all(s.startswith("data:image/png;base64,") for s in sources)


# -- a real browser --------------------------------------------------------------------------------
def _load_in_chromium(path, profile):
    """Opens `path` in headless Chromium; returns (the DOM after load, console log lines)."""
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
        "--virtual-time-budget=10000", "--dump-dom", path.resolve().as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return done.stdout, console


def _body(dom: str) -> dict[str, str]:
    tag = re.search(r"<body([^>]*)>", dom)
    assert tag, dom[:500]
    return dict(re.findall(r'data-([a-z-]+)="([^"]*)"', tag.group(1)))


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
def test_browser_sees_a_broken_page(tmp_path):
    """The browser check itself: a missing image and a console message are both caught."""
    page = tmp_path / "bad.html"
    script = build_report_html.__globals__["_SCRIPT"]
    page.write_text(f"<!DOCTYPE html><html><head><script>{script}</script></head><body>"
                    "<img src='missing.png'><script>console.error('boom')</script></body></html>")
    dom, console = _load_in_chromium(page, tmp_path / "profile")
    assert _body(dom)["images-ok"] == "false"
    assert any("boom" in line for line in console)


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
@pytest.mark.parametrize("which", ["run", "comparison"])
def test_report_loads_in_a_browser(which, run_dir, comparison_dir, tmp_path):
    folder = run_dir if which == "run" else comparison_dir
    path = write_report(folder)
    images = len(_sources(path.read_text())[0])
    dom, console = _load_in_chromium(path, tmp_path / "profile")
    body = _body(dom)
    assert body == {"images-ok": "true", "image-count": str(images)}
    assert console == []
