"""report.html: a run's and a comparison's sections, escaping, `seql report`, and a real headless
browser (Chromium) loading the file with every image decoded and no console message."""

from __future__ import annotations

import base64
import hashlib
import html
import importlib
import json
import re
import shutil
import subprocess
import urllib.parse
from fnmatch import fnmatch
from pathlib import Path

import keras
import numpy as np
import pytest

from sequential_learning.cli import main
from sequential_learning.errors import SeqlError
from sequential_learning.plots import contrast_ratio
from sequential_learning.report import build_report_html, write_report
from sequential_learning.results import Results

pytestmark = pytest.mark.all_backends

#: The running backend and its framework's version (never TensorFlow's under JAX or PyTorch).
BACKEND = keras.backend.backend()
FRAMEWORK_VERSION = importlib.import_module(BACKEND).__version__

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
        assert environment["backend"] == BACKEND
        assert environment[BACKEND] == FRAMEWORK_VERSION
        # Only the running framework's version: under JAX, TensorFlow is not even imported.
        assert not ({"tensorflow", "jax", "torch"} - {BACKEND}) & set(environment)


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
    assert f"<td class='v'>{FRAMEWORK_VERSION}</td>" in text
    assert f"<td class='k'>backend</td><td class='v'>{BACKEND}</td>" in text
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
    assert "&lt;script&gt;alert(&#39;b&#39;)&lt;/script&gt;" in text  # markupsafe's escape
    assert "&lt;img src=x onerror=alert(1)&gt;" in text and "&lt;b&gt;v&lt;/b&gt;" in text


TEMPLATES = Path(build_report_html.__code__.co_filename).parent / "templates"


def test_templates_are_autoescaped_and_trust_only_our_own_markup():
    """Markup lives in the templates, rendered with autoescape; `|safe` only on the policy and
    the script, which the package builds itself (never on a value read from the folder)."""
    env = build_report_html.__globals__["_templates"]()
    assert env.autoescape is True
    safe = set()
    for path in TEMPLATES.glob("*.j2"):
        text = re.sub(r"\{#.*?#\}", "", path.read_text(), flags=re.S)  # without comments
        safe |= set(re.findall(r"\{\{\s*(\w+)\s*\|\s*safe\s*\}\}", text))
        rest = re.sub(r"\{\{\s*(csp|script)\s*\|\s*safe\s*\}\}", "", text)
        assert not re.search(r"\|\s*safe\b", rest), path.name
    assert safe == {"csp", "script"}
    assert "Markup" not in Path(build_report_html.__code__.co_filename).read_text()


def test_templates_ship_as_package_data():
    """Every template matches a package-data pattern of pyproject.toml (so it is in the wheel)."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    root = Path(__file__).resolve().parents[1]
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["sequential_learning"]
    package = root / "src" / "sequential_learning"
    files = [p.relative_to(package).as_posix() for p in TEMPLATES.iterdir() if p.is_file()]
    assert {"report/templates/page.html.j2", "report/templates/report.js"} <= set(files)
    for name in files:
        assert any(fnmatch(name, pattern) for pattern in patterns), name


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


# -- a tampered or malformed folder ----------------------------------------------------------------
def _csp(text: str) -> dict[str, list[str]]:
    meta = re.search(r"<meta http-equiv='Content-Security-Policy' content=\"([^\"]*)\">", text)
    assert meta, "no Content-Security-Policy"
    directives = (d.split() for d in meta.group(1).split(";") if d.strip())
    return {d[0]: d[1:] for d in directives}


@pytest.fixture
def compare_copy(comparison_dir, tmp_path):
    """A copy of the comparison folder (without models) that a test may tamper with."""
    out = tmp_path / "cmp"
    shutil.copytree(comparison_dir, out,
                    ignore=shutil.ignore_patterns("models", "samples", "checkpoint"))
    return out


def test_tampered_comparison_links_only_inside_the_folder(compare_copy):
    comparison = json.loads((compare_copy / "comparison.json").read_text())
    row = comparison["fisher"]
    hostile = ["javascript:alert(document.domain)//x", "javascript:alert(1)", "../fisher",
               "/etc", "https://example.com/x", "fisher/../none", "data:text/html,<b>x</b>",
               "./none", ""]
    for key in hostile:
        comparison[key] = row
    (compare_copy / "comparison.json").write_text(json.dumps(comparison))
    # A folder may even be named like a URL: it is linked, percent-encoded, never as a scheme.
    shutil.copytree(compare_copy / "none", compare_copy / "javascript:alert(1)")
    text = write_report(compare_copy).read_text()
    links = re.findall(r"<a href='([^']*)'", text)
    assert len(links) == len(re.findall(r"<a\b", text))
    targets = [h for h in links if not h.startswith("#")]
    assert "none/report.html" in targets and "fisher/" in targets
    assert "javascript%3Aalert%281%29/report.html" in targets
    for href in targets:
        assert ":" not in href and not href.startswith("/") and "\\" not in href, href
        parts = href.rstrip("/").split("/")
        assert ".." not in parts and "." not in parts and "" not in parts, href
        target = (compare_copy / urllib.parse.unquote(href)).resolve()
        assert target.is_relative_to(compare_copy.resolve()) and target.exists(), href
    for h in links:
        if h.startswith("#"):
            assert re.fullmatch(r"#[\w-]+", h), h
    # Every hostile name is still shown, as text.
    assert "javascript:alert(document.domain)//x" in html.unescape(text)
    assert "(the name is not a sub-folder)" in text


def test_csp_lets_only_the_report_script_run(run_dir, compare_copy):
    for folder in (run_dir, compare_copy):
        text = build_report_html(folder)
        csp = _csp(text)
        assert csp["default-src"] == ["'none'"]
        assert "'unsafe-inline'" not in csp["script-src"]
        assert "'unsafe-eval'" not in csp["script-src"]
        scripts = re.findall(r"<script>(.*?)</script>", text, flags=re.S)
        assert len(scripts) == 1 and "<script src" not in text
        digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
        assert csp["script-src"] == [f"'sha256-{digest}'"]


def _valid_results(run_dir) -> dict:
    return json.loads((run_dir / "results.json").read_text())


MALFORMED_RESULTS = {
    "empty list": b"[]",
    "empty object": b"{}",
    "null": b"null",
    "a number": b"42",
    "not JSON": b"{\"config\": ",
    "not UTF-8": b"{\"config\": \"\xff\xfe\"}",
    "deep": b"[" * 100_000 + b"]" * 100_000,
    "no task_names": lambda d: d.pop("task_names"),
    "no accuracy_matrix": lambda d: d.pop("accuracy_matrix"),
    "task_names a string": lambda d: d.update(task_names="ab"),
    "config a list": lambda d: d.update(config=[1, 2]),
    "matrix short": lambda d: d.update(accuracy_matrix=[[0.5]]),
    "matrix of strings": lambda d: d.update(
        accuracy_matrix=[["x"] * len(d["task_names"])] * len(d["task_names"])),
    "baseline null": lambda d: d.update(baseline=None),
    "no history of the metric": lambda d: d.update(metric="mse"),
    "history a list": lambda d: d.update(history=[]),
    "timing a string": lambda d: d.update(timing="fast"),
    "importance summary of numbers": lambda d: d.update(importance_summary=[1, 2]),
    "completed_tasks too many": lambda d: d.update(completed_tasks=99),
    "evaluated_epochs too few": lambda d: d.update(evaluated_epochs=[1]),
}


@pytest.mark.parametrize("case", list(MALFORMED_RESULTS))
def test_malformed_results_json_is_one_line(case, run_dir, capsys):
    content = MALFORMED_RESULTS[case]
    if callable(content):
        doc = _valid_results(run_dir)
        content(doc)
        content = json.dumps(doc).encode()
    (run_dir / "results.json").write_bytes(content)
    (run_dir / "report.html").unlink(missing_ok=True)
    (run_dir / "environment.json").unlink()
    with pytest.raises(SeqlError) as raised:
        write_report(run_dir)
    message = str(raised.value)
    assert "\n" not in message and str(run_dir / "results.json") in message
    assert "expected" in message
    assert main(["report", str(run_dir)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("seql: error: ") and "results.json" in err[0]
    assert not (run_dir / "report.html").exists() and not (run_dir / "environment.json").exists()


def test_any_wrong_type_in_results_json_is_a_seql_error(run_dir):
    """Every key of a real results.json, set to values of every JSON type: a report or a
    SeqlError, never another exception."""
    valid = _valid_results(run_dir)
    for key in valid:
        for value in (None, "x", 1.5, True, [], [1], [[None]], {}, {"a": [1]}):
            doc = {**valid, key: value}
            (run_dir / "results.json").write_text(json.dumps(doc))
            try:
                build_report_html(run_dir)
            except SeqlError as error:
                assert "\n" not in str(error)


MALFORMED_COMPARISON = {
    "empty list": b"[]",
    "empty object": b"{}",
    "a string": b"\"none\"",
    "not JSON": b"{",
    "not UTF-8": b"{\"none\": \xff}",
    "row a list": b"{\"none\": [1, 2]}",
    "metric a string": b"{\"none\": {\"acc\": \"high\"}}",
    "seconds an object": b"{\"none\": {\"acc\": 0.5, \"seconds\": {}}}",
}


@pytest.mark.parametrize("case", list(MALFORMED_COMPARISON))
def test_malformed_comparison_json_is_one_line(case, compare_copy, capsys):
    (compare_copy / "comparison.json").write_bytes(MALFORMED_COMPARISON[case])
    with pytest.raises(SeqlError) as raised:
        build_report_html(compare_copy)
    message = str(raised.value)
    assert "\n" not in message and str(compare_copy / "comparison.json") in message
    assert "expected" in message
    assert main(["report", str(compare_copy)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_comparison_with_a_malformed_method_run_names_its_file(compare_copy):
    (compare_copy / "fisher" / "results.json").write_text("{}")
    (compare_copy / "report.html").unlink()
    (compare_copy / "environment.json").unlink(missing_ok=True)
    with pytest.raises(SeqlError, match=re.escape(str(compare_copy / "fisher" / "results.json"))):
        write_report(compare_copy)
    assert not (compare_copy / "report.html").exists()
    assert not (compare_copy / "environment.json").exists()


def test_matrix_cells_contrast_with_their_text(run_dir):
    """Every number of the HTML accuracy matrix has a WCAG AA contrast (4.5) with its cell."""
    doc = _valid_results(run_dir)
    t = len(doc["task_names"])
    # The two ends of the colour map, and the rest in the mid-greens where neither black nor
    # white text is far from the limit.
    values = [0.0, 1.0, *(float(v) for v in np.linspace(0.45, 0.55, t * t + t - 2))]
    doc["baseline"] = values[:t]
    doc["accuracy_matrix"] = [values[t * (i + 1): t * (i + 2)] for i in range(t)]
    (run_dir / "results.json").write_text(json.dumps(doc))
    text = build_report_html(run_dir)
    matrix = text.split("<table class='matrix'>", 1)[1].split("</table>", 1)[0]
    cells = re.findall(r"<td style='background:(#[0-9a-f]{6});color:(#[0-9a-f]{3,6})'>", matrix)
    assert len(cells) == t * (t + 1)
    for background, ink in cells:
        assert contrast_ratio(background, ink) >= 4.5, (background, ink)


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
def test_browser_runs_only_the_report_script(run_dir, tmp_path):
    """Were any text ever to slip through unescaped, the policy still stops it: an injected
    inline script and an event handler do not run; the report's own script (by hash) does."""
    text = build_report_html(run_dir)
    injected = ("<script>document.body.dataset.injected = 'script'</script>"
                "<div onclick=\"\" id='x'></div><svg onload=\"document.body.dataset.injected = "
                "'handler'\"></svg>")
    page = tmp_path / "report.html"
    page.write_text(text.replace("</main>", injected + "</main>"))
    dom, console = _load_in_chromium(page, tmp_path / "profile")
    body = _body(dom)
    assert "injected" not in body
    assert body["images-ok"] == "true"
    assert any("Content Security Policy" in line for line in console)
