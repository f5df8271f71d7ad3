"""The documentation: its examples run, the site builds strict, public APIs have Args sections.

`OWNED_MODULES` lists the modules whose public functions and classes are held to Keras's
docstring style (an `Args:` section wherever they take arguments); extend it as other modules'
docstrings are brought up to that standard.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))

OWNED_MODULES = [
    "metrics", "models", "augmentation", "class_incremental", "sweep", "distribute",
    "optimizers", "_tf",
    "native", "native.fused_optimizers", "graph", "seeds", "continual_model", "signature", "backend",
    "backend.tensorflow", "backend.jax", "backend.torch",
    "importance.base", "importance.fisher", "importance.mas", "importance.modes",
    "importance.penalty", "importance.per_sample", "importance.simple",
    "importance.synaptic_intelligence", "importance.trackers", "importance.rwalk",
    "plugins.agem", "plugins.base", "plugins.buffer", "plugins.consolidation", "plugins.derpp",
    "plugins.lwf", "plugins.reference", "plugins.rehearsal", "plugins.replay", "plugins.routing",
    "plugins.icarl", "plugins.bic", "plugins.herding",
    "plugins.er_ace", "plugins.mir", "plugins.xder",
    "plugins.gem", "plugins.gdumb",
    "data.benchmarks", "data.dataset", "data.datasets", "data.errors",
    "data.function_approximation", "data.idx", "data.iris_features", "data.permuted",
    "data.rotated", "data.split", "data.stream", "data.formats", "data.formats.cifar",
    "data.formats.idx", "data.formats.npz", "data.published",
    "ablation", "ablation.aggregation", "ablation.curves", "ablation.maps", "ablation.options",
    "ablation.plots", "ablation.run", "ablation.settings", "ablation.thresholding",
    "interpret", "interpret.activations", "interpret.base", "interpret.checkpoints",
    "interpret.drift", "interpret.gradcam", "interpret.inputs", "interpret.kernels",
    "interpret.layers", "interpret.occlusion", "interpret.plots", "interpret.probe",
    "interpret.run",
    "report", "report.environment", "report.inputs", "report.plots", "report.report",
    "cli", "commands", "config", "experiment", "options", "services", "tasks", "evaluation", "rundir",
    "checkpoint", "results", "tensorboard", "saved_state", "plugins", "plugins.registry",
    "importance", "manager", "training", "clock", "divergence", "progress", "recorder", "writer",
    "trainers", "method", "pipeline", "yaml_io", "errors", "online", "data.blurry",
    "config_fields", "config_online", "config_defaults", "data.cifar", "data.loading",
]


def _takes_arguments(obj) -> bool:
    try:
        parameters = inspect.signature(obj).parameters  # a class: its constructor's
    except (TypeError, ValueError):
        return False
    return any(name not in ("self", "cls") for name in parameters)


def _documents_arguments(obj) -> bool:
    """An `Args:` section; a dataclass's fields are its arguments, so `Attributes:` also does."""
    doc = _docstring(obj)
    return "Args:" in doc or (dataclasses.is_dataclass(obj) and "Attributes:" in doc)


def _docstring(obj) -> str:
    doc = inspect.getdoc(obj) or ""
    if inspect.isclass(obj) and "__init__" in vars(obj):
        doc += "\n" + (inspect.getdoc(obj.__init__) or "")
    return doc


def public_api(module_name: str):
    """The public functions and classes defined in `sequential_learning.<module_name>`."""
    module = importlib.import_module(f"sequential_learning.{module_name}")
    for name, obj in sorted(vars(module).items()):
        if name.startswith("_") or not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue
        if getattr(obj, "__module__", None) == module.__name__:
            yield name, obj


@pytest.mark.parametrize("module_name", OWNED_MODULES)
def test_public_functions_and_classes_have_args_sections(module_name):
    missing = [name for name, obj in public_api(module_name)
               if _takes_arguments(obj) and not _documents_arguments(obj)]
    assert not missing, f"sequential_learning.{module_name}: no 'Args:' section in {missing}"


@pytest.mark.slow
@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(example, tmp_path):
    # Every example takes --epochs; one epoch per task keeps each to seconds on split digits.
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, str(example), "--epochs", "1"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ACC" in done.stdout or "acc" in done.stdout


def _mkdocs() -> str | None:
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("mkdocstrings") is None:
        return None
    return shutil.which("mkdocs", path=str(Path(sys.executable).parent)) or shutil.which("mkdocs")


@pytest.mark.slow
@pytest.mark.skipif(_mkdocs() is None,
                    reason="mkdocs and mkdocstrings are not installed (pip install -e '.[docs]')")
def test_mkdocs_build_strict(tmp_path):
    done = subprocess.run([_mkdocs(), "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (tmp_path / "site" / "index.html").is_file()
    methods = (tmp_path / "site" / "methods" / "index.html").read_text(encoding="utf-8")
    assert "weight-decay" in methods and "seql:methods" not in methods


def test_docs_pages_use_the_generated_tables():
    assert "<!-- seql:methods -->" in (ROOT / "docs" / "methods.md").read_text(encoding="utf-8")
    assert "<!-- seql:benchmarks -->" in (ROOT / "docs" / "benchmarks.md").read_text(
        encoding="utf-8")
