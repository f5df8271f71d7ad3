"""What each `seql` command does once its arguments are parsed (`cli.py` parses them).

One function per command, `cmd_<command>(args) -> exit status`; each loads the Keras backend only
after its settings are checked (`_load_backend`: TensorFlow's start-up log silenced unless
`--verbose`; JAX and PyTorch load with Keras, and TensorFlow is then never imported).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from sequential_learning.rundir import RunDir


def config_from(args: argparse.Namespace, method: str | None = None, seed: int | None = None):
    """The validated `RunConfig` of the settled options of `run`, `compare` or `sweep`.

    Args:
        args: the namespace of `cli.parse([...])` (its `settings`).
        method: the method to run instead of the one given (`compare` runs several).
        seed: the seed to run at instead of the one given (`compare --seeds`).

    Returns:
        The validated `config.RunConfig`.

    Example:
    ```python
    config_from(parse(["compare", "--epochs", "1"]), "fisher").method    # 'fisher'
    ```
    """
    from sequential_learning.config import make_config

    settings = {**args.settings, **({"method": method} if method else {})}
    if seed is not None:
        settings["seed"] = seed
    return make_config(settings).validate()


def _load_backend(verbose: bool) -> str:
    """Prepares the Keras backend chosen by `seql` (`backend.select`) before Keras is imported.

    On TensorFlow, imports it with its start-up log and Python log silenced unless `verbose`;
    on JAX and PyTorch nothing is imported here (Keras loads them), and TensorFlow never is.
    Each command that trains or loads models calls this after its arguments are checked.

    Returns:
        The backend's name.
    """
    from sequential_learning.backend import select

    name = select(None)  # what `seql` chose; also checks it when a command is called directly
    if name != "tensorflow":
        return name
    if verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")
        return name
    from sequential_learning._tf import quiet_tensorflow

    quiet_tensorflow()
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    tf.autograph.set_verbosity(0)
    return name


def recorded_backend(run_dir: Path) -> str | None:
    """The Keras backend an earlier run in `run_dir` was made with.

    Read from `results.json` (its `backend`), else the checkpoint's copy of it, else
    `environment.json`; a run whose readable files record none was made before backends could
    be chosen, on TensorFlow.

    Args:
        run_dir: a run folder.

    Returns:
        `tensorflow`, `jax` or `torch` (whatever the file says), or None when none of those
        files can be read (resuming then says what is wrong with the folder).

    Example:
    ```python
    recorded_backend(Path("runs/x"))    # 'jax'
    ```
    """
    run = RunDir(run_dir)
    readable = False
    for path in (run.results, *run.checkpoint_results_files(), run.environment_json):
        try:
            value = json.loads(path.read_bytes().decode("utf-8")).get("backend")
        except (OSError, ValueError, AttributeError, RecursionError):
            continue
        readable = True
        if isinstance(value, str) and value:
            return value
    return "tensorflow" if readable else None


def check_resume_backend(run_dir: Path, running: str) -> None:
    """Refuses to resume a run made with another Keras backend than the one running.

    Weights would load on any backend, but random streams, kernels and rounding differ between
    backends: a run resumed elsewhere would equal no uninterrupted run, and its `results.json`
    could name only one backend. So a run is resumed on the backend it was started with.

    Args:
        run_dir: the folder of `--resume`.
        running: the backend of this process.

    Raises:
        SeqlError: the run records another backend (the message names the one to use).

    Example:
    ```python
    check_resume_backend(Path("runs/x"), "torch")
    # SeqlError: --resume runs/x: the run was made with the jax backend; resume it with --backend jax
    ```
    """
    from sequential_learning.errors import SeqlError

    run = RunDir(run_dir)
    if not (run.results.is_file() or run.checkpoint_state.is_file()):
        return  # not a run: resume_config says what is wrong with it
    made = recorded_backend(run_dir)
    if made is not None and made != running:
        raise SeqlError(f"--resume {run_dir}: the run was made with the {made} backend and this "
                        f"is {running}; resume it with --backend {made} (a run keeps one backend: "
                        "its numbers would match no uninterrupted run)")


def _table(rows: list[dict]) -> str:
    til = any("task_il_acc" in r["metrics"] for r in rows)
    header = f"{'method':<18} {'ACC':>7} {'BWT':>7} {'FWT':>7} {'forget':>7}"
    header += f" {'TIL ACC':>8}" if til else ""
    header += f" {'seconds':>8}"
    lines = [header, "-" * len(header)]
    for r in rows:
        m = r["metrics"]

        def f(v, width=7):
            return " " * (width - 3) + "n/a" if v is None or v != v else f"{v:{width}.3f}"

        line = f"{r['method']:<18} {f(m['acc'])} {f(m['bwt'])} {f(m['fwt'])} {f(m['forgetting'])}"
        line += f" {f(m.get('task_il_acc'), 8)}" if til else ""
        lines.append(f"{line} {r['seconds']:8.1f}")
    if til:
        lines.append("TIL ACC: the same run's accuracy with the task known (class-incremental "
                     "streams); FWT is n/a where unseen classes are masked")
    return "\n".join(lines)


def cmd_run(args: argparse.Namespace) -> int:
    """`seql run`: trains one method on a task stream and prints its metrics.

    Makes the run folder (`--out`, or `runs/<time>-<benchmark>-<method>`; refused if it holds a
    run, unless `--overwrite`), or with `--resume RUN_DIR` continues an interrupted run there;
    a folder this command made is removed again if the run fails before any task finished.

    Args:
        args: the namespace of `parse(["run", ...])`.

    Returns:
        The exit status, 0.

    Example:
    ```python
    cmd_run(parse(["run", "--benchmark", "permuted-digits", "--method", "fisher"]))
    # seql run --benchmark permuted-digits --method fisher
    ```
    """
    from sequential_learning.experiment import (
        claim_out_dir,
        default_run_dir,
        removed_if_unfinished,
        resume_config,
        run_experiment,
    )

    if args.resume:  # settings given must repeat the saved ones, but how it runs may change
        check_resume_backend(Path(args.resume), _load_backend(args.verbose))
        given = {k: getattr(args, k) for k in args.explicit if k not in ("resume", "verbose")}
        config, out = resume_config(Path(args.resume), given, args.flags), Path(args.resume)
    else:
        config = config_from(args)
        out = Path(args.out) if args.out else default_run_dir(config)
        args.created_out = claim_out_dir(out, bool(args.overwrite), config.strategy)
    _load_backend(args.verbose)
    start = time.perf_counter()
    with removed_if_unfinished(out, getattr(args, "created_out", False)):
        results = run_experiment(config, out, progress=True, resume=bool(args.resume),
                                 overwrite=bool(args.overwrite))
    row = {"method": config.method, "metrics": results.metrics, "seconds": time.perf_counter() - start}
    print(_table([row]))
    run = RunDir(out)
    print(f"results: {run.results}\nplots:   {run.task_curves_png}, "
          f"{run.accuracy_matrix_png}\nreport:  {run.report_html}")
    return 0




def cmd_compare(args: argparse.Namespace) -> int:
    """`seql compare`: runs several methods on the same stream, seed and initialisation.

    Every method's config is validated before any training; each method's run goes to
    `OUT/<method>/`, and `comparison.json`, `comparison.png` and `report.html` to `OUT`. With
    `--seeds S1,S2,...` the comparison is made once per seed in `OUT/seed-<S>/` (each such a
    folder), and `OUT` gets the mean ± sample standard deviation of each method's metrics
    (`seeds.json`; the means as `comparison.json`, `comparison.png` and `report.html`).

    Args:
        args: the namespace of `parse(["compare", ...])`; `args.methods` is comma-separated.

    Returns:
        The exit status, 0.

    Raises:
        ValueError: no method given, or one given twice; `SeqlError` (a ValueError) for bad
            `--seeds`.

    Example:
    ```python
    cmd_compare(parse(["compare", "--methods", "none,fisher,replay"]))
    # seql compare --methods none,fisher,replay
    cmd_compare(parse(["compare", "--methods", "replay,icarl", "--seeds", "0,1,2"]))
    ```
    """
    from sequential_learning.config import RunConfig
    from sequential_learning.experiment import claim_out_dir, default_run_dir, removed_if_unfinished
    from sequential_learning.seed_summary import check_seeds

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods:
        raise ValueError("--methods: give at least one method, e.g. none,fisher")
    seeds = check_seeds(getattr(args, "seeds", None), "seed" in args.settings)
    # Every method's config (at every seed) is validated before any training.
    configs = {seed: [config_from(args, m, seed) for m in methods] for seed in seeds or [None]}
    first = next(iter(configs.values()))
    twice = sorted({c.method for c in first if [d.method for d in first].count(c.method) > 1})
    if twice:
        raise ValueError(f"--methods: {', '.join(twice)} given twice; each method once")
    out = Path(args.out) if args.out else default_run_dir(
        RunConfig(benchmark=first[0].benchmark, method="compare"))
    args.created_out = claim_out_dir(out, bool(args.overwrite), first[0].strategy)
    _load_backend(args.verbose)
    run = RunDir(out)
    with removed_if_unfinished(out, args.created_out):
        if seeds is None:
            rows = _compare(first, out, "")
        else:
            from sequential_learning.results import atomic_write_text

            # The marker of a folder seql is writing: an interrupted one can be --overwrite'n.
            atomic_write_text(run.seeds_json, json.dumps({"seeds": seeds, "methods": None}))
            rows = {seed: _compare(configs[seed], run.seed_comparison(seed).root, f"seed {seed} ")
                    for seed in seeds}
    if seeds is None:
        print(_table(rows))
        print(f"comparison: {run.comparison_json}\nplot:       {run.comparison_png}\n"
              f"report:     {run.report_html}\n"
              f"runs:       {', '.join(str(run.method_run(r['method']).root) for r in rows)}")
        return 0
    summary = _summarise_seeds(out, rows, first)
    from sequential_learning.seed_summary import summary_table

    print(summary_table(summary))
    print(f"seeds:      {run.seeds_json}\ncomparison: {run.comparison_json} (the means)\n"
          f"report:     {run.report_html}\n"
          f"each seed:  {', '.join(str(run.seed_comparison(s).root) for s in seeds)}")
    return 0


def _compare(configs: list, out: Path, label: str) -> list[dict]:
    """Runs each config into `out/<method>/`; writes `comparison.json`, `.png` and the report."""
    from sequential_learning import plots
    from sequential_learning.experiment import run_experiment
    from sequential_learning.report import write_report
    from sequential_learning.results import atomic_write_text, to_jsonable

    rows = []
    for config in configs:
        start = time.perf_counter()
        results = run_experiment(config, RunDir(out).method_run(config.method).root,
                                 progress=f"[{label}{config.method}]")
        rows.append({"method": config.method, "ewc_lambda": config.ewc_lambda,
                     "metrics": results.metrics, "seconds": time.perf_counter() - start})
    comparison = {r["method"]: {**r["metrics"], "ewc_lambda": r["ewc_lambda"], "seconds": r["seconds"]}
                  for r in rows}
    run = RunDir(out)
    atomic_write_text(run.comparison_json, json.dumps(to_jsonable(comparison), indent=2))
    plots.comparison({r["method"]: r["metrics"] for r in rows}, run.comparison_png)
    write_report(out)
    return rows


def _summarise_seeds(out: Path, rows: dict[int, list[dict]], configs: list) -> dict:
    """Writes `seeds.json`, the means as `comparison.json` and `comparison.png`, and the report
    of a comparison made at several seeds; returns the summary."""
    from sequential_learning import plots
    from sequential_learning.report import write_report
    from sequential_learning.results import atomic_write_text, to_jsonable
    from sequential_learning.seed_summary import means, summarise

    summary = summarise({seed: {r["method"]: {**r["metrics"], "seconds": r["seconds"]}
                                for r in seed_rows} for seed, seed_rows in rows.items()})
    mean = means(summary)
    comparison = {c.method: {**mean[c.method], "ewc_lambda": c.ewc_lambda} for c in configs}
    run = RunDir(out)
    atomic_write_text(run.seeds_json, json.dumps(to_jsonable(summary), indent=2))
    atomic_write_text(run.comparison_json, json.dumps(to_jsonable(comparison), indent=2))
    spread = {method: {k: cell["std"] for k, cell in metrics.items()}
              for method, metrics in summary["methods"].items()}
    plots.comparison(mean, run.comparison_png, spread=spread)
    write_report(out)
    return summary


def cmd_sweep(args: argparse.Namespace) -> int:
    """`seql sweep`: runs one method for several lambda values and picks the best by ACC.

    The lambdas come from `--lambdas L1,L2,...` or `--lambda-range LOW HIGH --points N` (log
    spaced); `sweep.json` and `sweep.png` go to the output folder.

    Args:
        args: the namespace of `parse(["sweep", ...])`.

    Returns:
        The exit status, 0 (also when every lambda diverged: that is printed).

    Raises:
        ValueError: neither of `--lambdas` and `--lambda-range` given; `SeqlError` (a
            ValueError) for both.

    Example:
    ```python
    cmd_sweep(parse(["sweep", "--method", "fisher", "--lambda-range", "1", "1000"]))
    # seql sweep --method fisher --lambda-range 1 1000
    ```
    """
    from sequential_learning.config import RunConfig
    from sequential_learning.errors import SeqlError
    from sequential_learning.experiment import claim_out_dir, default_run_dir, removed_if_unfinished
    from sequential_learning.sweep import check_lambdas, lambda_sweep, log_spaced, sweep_table

    if args.lambdas is not None and args.lambda_range is not None:
        raise SeqlError("sweep: give --lambdas or --lambda-range, not both")
    if args.lambdas is not None:
        lambdas = check_lambdas(args.lambdas)
    elif args.lambda_range is not None:
        lambdas = log_spaced(args.lambda_range[0], args.lambda_range[1], args.points)
    else:
        raise ValueError("sweep: give --lambdas L1,L2,... or --lambda-range LOW HIGH [--points N]")
    args.settings.pop("ewc_lambda", None)
    config = config_from(args)
    out = Path(args.out) if args.out else default_run_dir(
        RunConfig(benchmark=config.benchmark, method=f"{config.method}-sweep"))
    args.created_out = claim_out_dir(out, bool(args.overwrite), config.strategy)
    _load_backend(args.verbose)
    with removed_if_unfinished(out, args.created_out):
        sweep = lambda_sweep(config, lambdas, out, progress=True)
    print(sweep_table(sweep))
    best = sweep["best"]
    if best is None:
        print("no lambda gave a finite ACC (every run diverged)")
    else:
        print(f"best lambda: {best['ewc_lambda']:g} (ACC {best['acc']:.3f})")
    print(f"sweep: {RunDir(out).sweep_json}\nplot:  {RunDir(out).sweep_png}")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    """`seql explain`: explains a run's task models; prints the paths of the PNGs written.

    Args:
        args: the namespace of `parse(["explain", RUN_DIR, ...])` (`method`, `task`, `images`,
            `layer`, `seed`, `verbose`).

    Returns:
        The exit status, 0.

    Example:
    ```python
    cmd_explain(parse(["explain", "runs/x", "--method", "occlusion", "--task", "2"]))
    # seql explain runs/x --method occlusion --task 2
    ```
    """
    _load_backend(args.verbose)
    from sequential_learning.interpret.run import explain_run

    paths = explain_run(args.run_dir, args.method, task=args.task, images=args.images,
                        layer=args.layer, seed=args.seed)
    for path in paths:
        print(path)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """`seql report`: rebuilds `RUN_DIR/report.html` of a run or comparison folder, prints its path.

    Args:
        args: the namespace of `parse(["report", RUN_DIR])`.

    Returns:
        The exit status, 0.

    Example:
    ```python
    cmd_report(parse(["report", "runs/x"]))    # seql report runs/x
    ```
    """
    _load_backend(args.verbose)  # the report records the backend's version and devices
    from sequential_learning.report import write_report

    print(write_report(args.run_dir))
    return 0


def cmd_augment(args: argparse.Namespace) -> int:
    """`seql augment`: ablation curves of a run's weights ranked by importance; prints the table.

    Args:
        args: the namespace of `parse(["augment", RUN_DIR, ...])` (`fractions`, `level`, `action`,
            `scope`, `orders`, `how`, `importance_task`, `after_task`, `data`, `no_maps`, `seed`).

    Returns:
        The exit status, 0.

    Example:
    ```python
    cmd_augment(parse(["augment", "runs/x", "--fractions", "0.1,0.5", "--level", "unit"]))
    # seql augment runs/x --fractions 0.1,0.5 --level unit
    ```
    """
    _load_backend(args.verbose)
    from sequential_learning.augment import augment_run

    done = augment_run(args.run_dir, args.fractions, level=args.level, action=args.action,
                       scope=args.scope, orders=args.orders, how=args.how,
                       importance_task=args.importance_task, after_task=args.after_task,
                       data=args.data, seed=args.seed, maps=not args.no_maps)
    from sequential_learning.augment import ablation_text

    table = done["table"]
    print(f"accuracy with weights replaced ({args.action}, level {args.level}, scope "
          f"{args.scope}; importance {table['importance']}; models {table['models']}; "
          f"evaluated on {done['evaluated_on']}; heads untouched)")
    print(ablation_text(table))
    for path in done["paths"]:
        print(path)
    return 0


def cmd_drift(args: argparse.Namespace) -> int:
    """`seql drift`: explanation drift across tasks for one or more runs; prints the table.

    Args:
        args: the namespace of `parse(["drift", RUN_DIR, ...])` (`run_dirs`, `methods`, `images`,
            `layer`, `out`).

    Returns:
        The exit status, 0.

    Example:
    ```python
    cmd_drift(parse(["drift", "runs/a", "runs/b", "--images", "8"]))
    # seql drift runs/a runs/b --images 8
    ```
    """
    _load_backend(args.verbose)
    from sequential_learning.augment import drift_runs, drift_text

    done = drift_runs(args.run_dirs, args.methods, images=args.images, layer=args.layer,
                      out=args.out)
    print("Spearman similarity of each task's explanations to those right after the task, by "
          "tasks learned since (mean over tasks and images)")
    print(drift_text(done["table"]))
    for note in done["table"]["notes"]:
        print(f"note: {note}")
    for path in done["paths"]:
        print(path)
    return 0


def _default_text(key: str, value) -> str:
    if key == "method_defaults":  # per method (and buffer size): config.method_defaults
        from sequential_learning.config import method_defaults_text

        return f"{key}: {method_defaults_text(value)}"
    if isinstance(value, dict):  # ewc_lambda per method
        return ", ".join(f"{key}[{m}]={v:g}" for m, v in value.items())
    from sequential_learning.options import value_text

    return f"{key}={value_text(value)}"



def cmd_list(args: argparse.Namespace) -> int:
    """`seql list`: prints the registered methods or the benchmarks, with their defaults.

    Args:
        args: the namespace of `parse(["list", WHAT])`; `args.what` is `"methods"`,
            `"benchmarks"` or `"backends"`.

    Returns:
        The exit status, 0.

    Example:
    ```python
    cmd_list(parse(["list", "benchmarks"]))    # seql list benchmarks
    ```
    """
    if args.what == "backends":
        print("\n".join(describe_backends()))
        return 0
    from sequential_learning.config import benchmark_defaults

    if args.what == "methods":
        from sequential_learning.plugins import describe_methods

        lambdas = benchmark_defaults(None)["ewc_lambda"]
        print("\n".join(describe_methods({m: v for m, v in lambdas.items() if m != "none"})))
    else:
        from sequential_learning.data.benchmarks import BENCHMARKS

        for name, spec in BENCHMARKS.items():
            print(f"{name:<24} {spec.description}; scenarios {'|'.join(spec.scenarios)} "
                  f"(default {spec.default_scenario})")
            own = benchmark_defaults(name)
            if own:
                print(" " * 25 + "defaults: " + ", ".join(_default_text(k, v) for k, v in own.items()))
    return 0


def describe_backends() -> list[str]:
    """One line per Keras backend: its version if installed (else the extra to install), and
    which one `seql` runs (`--backend`, else `KERAS_BACKEND`, else TensorFlow).

    Nothing is imported: versions come from the installed packages' metadata.

    Returns:
        The lines, e.g. `jax         0.10.2   (running)`.

    Example:
    ```python
    print("\\n".join(describe_backends()))
    ```
    """
    import importlib.metadata
    import importlib.util
    import sys

    from sequential_learning.backend import BACKENDS

    running = (sys.modules["keras"].backend.backend() if "keras" in sys.modules
               else os.environ.get("KERAS_BACKEND") or "tensorflow")
    lines = []
    for name, module in BACKENDS.items():
        if importlib.util.find_spec(module) is None:
            state = f"not installed: pip install 'sequential-learning[{name}]'"
        else:
            try:
                state = importlib.metadata.version(module)
            except importlib.metadata.PackageNotFoundError:
                state = "installed"
        lines.append(f"{name:<11} {state}{'   (running)' if name == running else ''}")
    return lines
