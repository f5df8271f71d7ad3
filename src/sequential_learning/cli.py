"""The `seql` command: run, compare and list.

`main` parses and checks the arguments without importing TensorFlow, so help, `list` and bad
input answer at once; the commands that need TensorFlow load it (`_load_tensorflow`) only after
their settings are checked, with its start-up log silenced (`--verbose` shows it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import time
import warnings
from pathlib import Path

EXIT_USAGE = 2


def _int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _float_list(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _class_order(text: str) -> list[int] | str:
    if text.strip() in ("sorted", "random"):
        return text.strip()
    return _int_list(text)


def _add_run_options(
    parser: argparse.ArgumentParser, method: bool = True, ewc_lambda: bool = True
) -> None:
    from sequential_learning.config import GLOBAL_DEFAULTS as g
    from sequential_learning.config import RunConfig
    from sequential_learning.data.benchmarks import BENCHMARKS, SCENARIOS
    from sequential_learning.importance import FISHER_MODES, PENALTY_MODES
    from sequential_learning.plugins import available_methods
    from sequential_learning.plugins.registry import REPLAY_POLICIES

    d = RunConfig()
    parser.add_argument("--benchmark", default=d.benchmark, choices=list(BENCHMARKS),
                        metavar="NAME", help=f"task stream: {', '.join(BENCHMARKS)} (default: %(default)s)")
    parser.add_argument("--scenario", default=None, choices=SCENARIOS,
                        help="task | domain | class (default: the benchmark's own)")
    if method:
        parser.add_argument("--method", default=d.method, metavar="METHOD",
                            help="the method: "
                            + ", ".join(s.name for s in available_methods())
                            + "; combine with +, e.g. fisher+replay (default: %(default)s; "
                            "`seql list methods` shows each with its options)")
    if ewc_lambda:
        parser.add_argument("--lambda", dest="ewc_lambda", type=float, default=None,
                        help="penalty strength lambda (default: the method's own, see `seql list methods`)")
    own = "or the benchmark's own, see `seql list benchmarks`"
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"epochs per task (default: {g['epochs']}, {own})")
    parser.add_argument("--batch-size", type=int, default=None,
                        help=f"default: {g['batch_size']}, {own}")
    parser.add_argument("--learning-rate", type=float, default=None,
                        help=f"Adam's (default: {g['learning_rate']}, {own})")
    parser.add_argument("--fisher-mode", default=d.fisher_mode, choices=FISHER_MODES,
                        help="Fisher information: exact, sampled, empirical, batch (default: %(default)s)")
    parser.add_argument("--fisher-samples", type=int, default=d.fisher_samples,
                        help="inputs used to estimate importance (default: %(default)s)")
    parser.add_argument("--penalty-mode", default=None, choices=PENALTY_MODES,
                        help="separate terms per task, or online (default: the method's own: "
                        "online for mas and si, as their papers define them; separate otherwise)")
    parser.add_argument("--gamma", type=float, default=d.gamma, help="online decay (default: %(default)s)")
    parser.add_argument("--normalize-importance", action="store_true",
                        help="divide each task's importance by its maximum (off by default)")
    parser.add_argument("--xi", dest="si_xi", type=float, default=d.si_xi,
                        help="synaptic intelligence's damping xi > 0 (default: %(default)s)")
    parser.add_argument("--net-change", dest="weight_change_net", action="store_true",
                        help="weight-change: |theta_end - theta_start| instead of the path length")
    parser.add_argument("--epsilon", dest="inverse_magnitude_epsilon", type=float,
                        default=d.inverse_magnitude_epsilon,
                        help="inverse-magnitude: epsilon > 0 in 1/(|theta| + epsilon) (default: %(default)s)")
    parser.add_argument("--memory", type=int, default=None,
                        help=f"replay, derpp, a-gem: samples in the buffer, all tasks together "
                        f"(default: {d.memory})")
    parser.add_argument("--memory-batch", type=int, default=None,
                        help="replay, derpp, a-gem: buffer samples per step (default: the "
                        "batch size)")
    parser.add_argument("--replay-policy", default=None, choices=REPLAY_POLICIES,
                        help="replay: reservoir (every sample seen) or balanced (equal per "
                        f"class, after each task) (default: {d.replay_policy})")
    parser.add_argument("--lwf-alpha", type=float, default=None,
                        help=f"lwf: distillation weight (default: {d.lwf_alpha:g})")
    parser.add_argument("--lwf-temperature", type=float, default=None,
                        help=f"lwf: softmax temperature (default: {d.lwf_temperature:g})")
    parser.add_argument("--derpp-alpha", type=float, default=None,
                        help=f"derpp: weight of matching stored logits (default: "
                        f"{d.derpp_alpha:g})")
    parser.add_argument("--derpp-beta", type=float, default=None,
                        help=f"derpp: weight of replayed labels (default: {d.derpp_beta:g})")
    parser.add_argument("--no-class-masking", dest="class_masking", action="store_false",
                        default=None,
                        help="class scenario: train and evaluate over every class of the "
                        "stream instead of masking the classes of later tasks")
    parser.add_argument("--hidden", type=_int_list, default=None,
                        help="MLP hidden sizes, comma-separated (default: "
                        f"{','.join(map(str, g['hidden']))}, {own})")
    parser.add_argument("--num-tasks", type=int, default=None,
                        help=f"tasks of permuted, rotated, iris and function streams (default: "
                        f"{g['num_tasks']}, {own})")
    parser.add_argument("--classes-per-task", type=int, default=None,
                        help=f"classes per task of split streams (default: {d.classes_per_task})")
    parser.add_argument("--class-order", type=_class_order, default=None,
                        help="split streams: sorted (default), random (seeded) or ids, e.g. 3,1,...")
    parser.add_argument("--angles", type=_float_list, default=None,
                        help="rotated streams: degrees per task (default: 0, 180/T, 2*180/T, ...)")
    parser.add_argument("--model", default=None, choices=["mlp", "cnn"],
                        help=f"shared base (default: {g['model']}, {own})")
    parser.add_argument("--filters", type=_int_list, default=None,
                        help=f"CNN conv-block filters (default: {','.join(map(str, d.filters))})")
    parser.add_argument("--eval-every", type=int, default=None,
                        help="evaluate all tasks every K epochs; the last epoch of each task "
                        "always (default: 1)")
    parser.add_argument("--eval-subset", type=int, default=None,
                        help="per-epoch curves on N validation samples per task (default: all)")
    parser.add_argument("--data", default=None, metavar="FILE.npz",
                        help="your arrays (x_train, y_train, x_test, y_test) for the benchmarks "
                        "split, permuted, rotated")
    parser.add_argument("--data-dir", default=None, metavar="DIR",
                        help="folder of Fashion-MNIST, MNIST or CIFAR-10 (default: the usual places)")
    parser.add_argument("--limit", type=int, default=None,
                        help="keep the first N samples of each split of the data set")
    parser.add_argument("--strategy", default=None, choices=["default", "mirrored", "multi-worker"],
                        help="tf.distribute strategy: default (one device), mirrored (local GPUs), "
                        "multi-worker (hosts in TF_CONFIG) (default: default)")
    parser.add_argument("--deterministic", action="store_true", default=None,
                        help="turn on TensorFlow op determinism (repeatable to the bit, slower)")
    parser.add_argument("--config", default=None, metavar="FILE.yaml",
                        help="settings from a YAML file; options given here override it")
    parser.add_argument("--seed", type=int, default=d.seed, help="default: %(default)s")
    parser.add_argument("--out", default=None, help="output folder (default: runs/<timestamp>-<name>)")
    parser.add_argument("--overwrite", action="store_true", default=None,
                        help="replace the run already in --out (its files are deleted first); "
                        "without it such a folder is refused")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's log and warnings")


class _Parser(argparse.ArgumentParser):
    """argparse's parser whose errors are one line (no usage block), pointing to --help."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The `seql` argument parser."""
    parser = _Parser(
        prog="seql",
        description="Sequential (continual) learning with Keras: train task streams with "
        "elastic weight consolidation and its family, compare methods, report metrics.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="train one method on a task stream",
                         description="Train one method on a task stream and write its results.")
    _add_run_options(run)
    run.add_argument("--resume", default=None, metavar="RUN_DIR",
                     help="continue an interrupted run from its last finished task")
    run.add_argument("--tensorboard", action="store_true", default=None,
                     help="write TensorBoard logs to RUN_DIR/tensorboard")
    compare = sub.add_parser("compare", help="compare methods on the same stream, seed and initialisation",
                             description="Run several methods on the same task stream, seed and "
                             "model initialisation; print and plot their metrics.")
    _add_run_options(compare, method=False)
    compare.add_argument("--methods", default="none,weight-decay,fisher",
                         help="comma-separated methods (default: %(default)s)")
    compare.add_argument("--tensorboard", action="store_true", default=None,
                         help="write TensorBoard logs to each method's RUN_DIR/tensorboard")
    sweep = sub.add_parser("sweep", help="search lambda for one method",
                           description="Run one method on the same stream for several lambda "
                           "values; pick the best by ACC on validation data; write sweep.json "
                           "and sweep.png.")
    _add_run_options(sweep, ewc_lambda=False)
    grid = sweep.add_mutually_exclusive_group()
    grid.add_argument("--lambdas", type=_float_list, default=None, metavar="L1,L2,...",
                      help="comma-separated lambda values, e.g. 1,10,100,1000")
    grid.add_argument("--lambda-range", type=float, nargs=2, default=None,
                      metavar=("LOW", "HIGH"), help="log-spaced lambdas from LOW to HIGH")
    sweep.add_argument("--points", type=int, default=5,
                       help="values in --lambda-range (default: %(default)s)")
    explain = sub.add_parser("explain", help="explain a run's task models (Grad-CAM, occlusion, ...)",
                             description="Explain validation images of a run's saved task models; "
                             "PNGs go to RUN_DIR/explain/.")
    explain.add_argument("run_dir", metavar="RUN_DIR")
    explain.add_argument("--method", default="grad-cam",
                         choices=["grad-cam", "grad-cam++", "occlusion", "kernels", "filters", "classes"],
                         help="default: %(default)s")
    explain.add_argument("--task", type=int, default=None, help="only task K (counted from 1)")
    explain.add_argument("--images", type=int, default=8, help="images per task (default: %(default)s)")
    explain.add_argument("--layer", default=None, help="layer name (default: the last conv layer)")
    explain.add_argument("--seed", type=int, default=0, help="default: %(default)s")
    explain.add_argument("--verbose", action="store_true", help="show TensorFlow's log and warnings")
    report = sub.add_parser("report", help="rebuild report.html of a run or comparison folder",
                            description="Write RUN_DIR/report.html: one self-contained HTML file "
                            "with the config, metrics, plots and figures of a run or comparison.")
    report.add_argument("run_dir", metavar="RUN_DIR")
    report.add_argument("--verbose", action="store_true", help="show TensorFlow's log and warnings")
    augment = sub.add_parser("augment", help="mask weights by importance: ablation curves",
                             description="Replace a fraction of a run's weights (or units, or "
                             "filters) chosen by their importance, and measure every task's "
                             "accuracy; tables and PNGs go to RUN_DIR/augment/.")
    augment.add_argument("run_dir", metavar="RUN_DIR")
    augment.add_argument("--fractions", default="0.1,0.2,0.5",
                         help="comma-separated fractions in [0, 1] (default: %(default)s)")
    augment.add_argument("--level", default="weight", help="weight, unit or filter (default: %(default)s)")
    augment.add_argument("--action", default="zero", help="zero, noise or anchor (default: %(default)s)")
    augment.add_argument("--scope", default="model", help="model or layer (default: %(default)s)")
    augment.add_argument("--orders", default="low,high,random,magnitude",
                         help="comma-separated orders (default: %(default)s)")
    augment.add_argument("--how", default="mean",
                         help="Omega per unit/filter: mean, min or max (default: %(default)s)")
    augment.add_argument("--importance-task", type=int, default=None, metavar="K",
                         help="task K's importance (default: summed over tasks)")
    augment.add_argument("--after-task", type=int, default=None, metavar="K",
                         help="the models as they were right after task K (default: final)")
    augment.add_argument("--data", default="auto",
                         help="auto, benchmark (rebuild the validation sets) or samples "
                         "(samples/, 64 images per task) (default: %(default)s)")
    augment.add_argument("--no-maps", action="store_true",
                         help="skip the per-filter importance maps")
    augment.add_argument("--seed", type=int, default=0, help="default: %(default)s")
    augment.add_argument("--verbose", action="store_true", help="show TensorFlow's log and warnings")
    drift = sub.add_parser("drift", help="explanation drift across tasks, for one or more runs",
                           description="Grad-CAM and occlusion maps of each task's images right "
                           "after the task and after every later task; Spearman similarity to "
                           "the first; drift.png and drift.json.")
    drift.add_argument("run_dirs", metavar="RUN_DIR", nargs="+")
    drift.add_argument("--methods", default="grad-cam,occlusion", help="default: %(default)s")
    drift.add_argument("--images", type=int, default=16, help="images per task (default: %(default)s)")
    drift.add_argument("--layer", default=None, help="Grad-CAM layer (default: the last conv layer)")
    drift.add_argument("--out", default=None,
                       help="output folder (default: the first RUN_DIR's augment/)")
    drift.add_argument("--verbose", action="store_true", help="show TensorFlow's log and warnings")
    lister = sub.add_parser("list", help="list methods or benchmarks")
    lister.add_argument("what", choices=["methods", "benchmarks"])
    return parser


def _config_from(args: argparse.Namespace, method: str):
    """The validated `RunConfig` of the parsed options (after `_apply_config_file`).

    Every option whose destination is a `RunConfig` field and whose value is not None is taken;
    keys of the config file with no option of their own come from `args.config_values`.
    """
    import dataclasses

    from sequential_learning.config import RunConfig

    names = {f.name for f in dataclasses.fields(RunConfig)}
    values = {k: v for k, v in vars(args).items() if k in names and v is not None}
    values.update(getattr(args, "config_values", {}))
    values["method"] = method
    return RunConfig(**values).validate()


def _explicit_options(parser: argparse.ArgumentParser, argv: list[str]) -> set[str]:
    """The destinations of the options given on the command line (not left at their default)."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    command = sub.choices[argv[0]] if argv and argv[0] in sub.choices else None
    if command is None:
        return set()
    saved = [(action, action.default) for action in command._actions]
    try:
        for action, _ in saved:
            action.default = argparse.SUPPRESS
        return set(vars(command.parse_args(argv[1:])))
    finally:
        for action, default in saved:
            action.default = default


def _apply_config_file(args: argparse.Namespace, parser, argv: list[str]) -> None:
    """Fills the options not given on the command line from `--config FILE.yaml`.

    Options given explicitly win; keys with no option of this command that are `RunConfig`
    fields go to `args.config_values`; keys of other commands (e.g. `methods` for `run`) are
    ignored.
    """
    import dataclasses

    from sequential_learning.config import RunConfig, load_config_file

    values = load_config_file(args.config)
    explicit = _explicit_options(parser, argv)
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    args.config_values = {}
    for key, value in values.items():
        if key in explicit:
            continue
        if key == "methods" and isinstance(value, list):
            value = ",".join(value)
        if hasattr(args, key):
            setattr(args, key, value)
        elif key in fields:
            args.config_values[key] = value


def _load_tensorflow(verbose: bool) -> None:
    """Imports TensorFlow, its start-up log and Python log silenced unless `verbose`.

    Each command that needs TensorFlow calls this before its first import of it (directly or
    through the package's modules), after its arguments are checked.
    """
    if verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")
        return
    from sequential_learning._tf import quiet_tensorflow

    quiet_tensorflow()
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    tf.autograph.set_verbosity(0)


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
    from sequential_learning.config import default_run_dir, run_experiment

    if args.resume:
        config, out = _resume_config(args), Path(args.resume)
    else:
        config = _config_from(args, args.method)
        out = _claim(Path(args.out) if args.out else default_run_dir(config), args)
    _load_tensorflow(args.verbose)
    start = time.perf_counter()
    with _removed_if_unfinished(out, getattr(args, "created_out", False)):
        results = run_experiment(config, out, progress=True, resume=bool(args.resume),
                                 overwrite=bool(getattr(args, "overwrite", False)))
    row = {"method": config.method, "metrics": results.metrics, "seconds": time.perf_counter() - start}
    print(_table([row]))
    print(f"results: {out / 'results.json'}\nplots:   {out / 'task_curves.png'}, "
          f"{out / 'accuracy_matrix.png'}\nreport:  {out / 'report.html'}")
    return 0


#: Options `--resume` accepts: they change how a run is carried out or shown, not its numbers.
_RESUME_OPTIONS = ("resume", "tensorboard", "verbose", "strategy", "deterministic")


def _claim(out: Path, args: argparse.Namespace) -> Path:
    """`out`, checked to take a new run (see `rundir.claim_run_dir`) before TensorFlow loads;
    `args.created_out` says whether this command made the folder.

    Under `multi-worker` every worker runs this command with the same `--out`, and only
    `run_experiment` knows which worker it is (the chief writes `out`, the others
    `out/worker_K`): it claims the folder there."""
    from sequential_learning.rundir import claim_run_dir

    args.created_out = not out.exists()
    if args.strategy == "multi-worker":
        args.created_out = False
        return out
    return claim_run_dir(out, overwrite=bool(args.overwrite))


@contextlib.contextmanager
def _removed_if_unfinished(out: Path, created: bool):
    """Removes the run folder this command made when it fails before any task finished (the
    folder holds no results.json: nothing computed is lost, and no half run is left behind)."""
    try:
        yield
    except BaseException:
        if created and out.is_dir() and not any(out.rglob("results.json")):
            shutil.rmtree(out, ignore_errors=True)
        raise


def _saved_config(run_dir: Path) -> dict:
    """The config a run folder records: its results.json's, else the checkpoint's copy of the
    results (a note says so), else a one-line error."""
    from sequential_learning.checkpoint import checkpoint_results_path
    from sequential_learning.errors import SeqlError

    path = run_dir / "results.json"
    if not run_dir.is_dir():
        raise SeqlError(f"--resume {run_dir}: not a folder; give the folder of an interrupted run")
    problem = None
    try:
        saved = json.loads(path.read_text())["config"]
        if isinstance(saved, dict):
            return saved
        problem = "its config is not a mapping"
    except FileNotFoundError:
        problem = "it does not exist"
    except (OSError, ValueError, KeyError, TypeError) as error:
        problem = f"{type(error).__name__}: {error}"
    try:
        copy = checkpoint_results_path(run_dir)
    except ValueError:
        copy = None
    if copy is None:
        raise SeqlError(f"--resume {run_dir}: not a run directory: unreadable results.json "
                        f"({problem}) and no checkpoint; give the folder of a run with at least "
                        "one finished task")
    try:
        saved = json.loads(copy.read_text())["config"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise SeqlError(f"--resume {run_dir}: neither {path} ({problem}) nor the checkpoint's "
                        f"copy {copy} ({type(error).__name__}) can be read") from None
    sys.stderr.write(f"seql: note: {path} cannot be read ({' '.join(problem.split())}); "
                     f"resuming from the checkpoint's copy {copy.name}\n")
    return saved


def _resume_config(args: argparse.Namespace):
    """The config of the run in `--resume RUN_DIR`, or a clear error.

    Options that would change the run's results are refused unless they repeat the saved
    value; `_RESUME_OPTIONS` may differ.
    """
    import dataclasses

    from sequential_learning.config import RunConfig
    from sequential_learning.errors import SeqlError
    from sequential_learning.results import to_jsonable

    saved = _saved_config(Path(args.resume))
    names = {f.name for f in dataclasses.fields(RunConfig)}
    values = {k: v for k, v in saved.items() if k in names}
    changed = []
    for dest in sorted(getattr(args, "explicit", set()) - set(_RESUME_OPTIONS)):
        value = to_jsonable(getattr(args, dest))
        if dest in ("out", "config", "overwrite") or dest not in values \
                or _normal(dest, value) != _normal(dest, values[dest]):
            changed.append("--" + ("lambda" if dest == "ewc_lambda" else dest.replace("_", "-")))
    if changed:
        raise SeqlError(f"--resume {args.resume}: {', '.join(changed)} would change the run; a "
                        "resumed run keeps its own settings (allowed with --resume: "
                        "--tensorboard, --strategy, --deterministic, --verbose)")
    for key in ("strategy", "deterministic", "tensorboard"):  # how to run may change, not what
        if getattr(args, key, None) is not None:
            values[key] = getattr(args, key)
    return RunConfig(**values).validate()


def _normal(dest: str, value):
    """A value as the saved config holds it (`fisher+replay` for a method, floats for numbers)."""
    if dest == "method" and isinstance(value, str):
        from sequential_learning.plugins.registry import split_methods

        try:
            return "+".join(split_methods(value))
        except ValueError:
            return value
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, list):
        return [_normal(dest, v) for v in value]
    return value


def cmd_compare(args: argparse.Namespace) -> int:
    from sequential_learning.config import RunConfig, default_run_dir, run_experiment

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods:
        raise ValueError("--methods: give at least one method, e.g. none,fisher")
    configs = [_config_from(args, m) for m in methods]  # validate every method before training
    twice = sorted({c.method for c in configs if [d.method for d in configs].count(c.method) > 1})
    if twice:
        raise ValueError(f"--methods: {', '.join(twice)} given twice; each method once")
    out = _claim(Path(args.out) if args.out else default_run_dir(
        RunConfig(benchmark=args.benchmark, method="compare")
    ), args)
    _load_tensorflow(args.verbose)
    from sequential_learning import plots
    from sequential_learning.report import write_report
    from sequential_learning.results import atomic_write_text, to_jsonable

    rows = []
    with _removed_if_unfinished(out, args.created_out):
        for config in configs:
            start = time.perf_counter()
            results = run_experiment(config, out / config.method, progress=f"[{config.method}]")
            rows.append({"method": config.method, "ewc_lambda": config.ewc_lambda,
                         "metrics": results.metrics, "seconds": time.perf_counter() - start})
    comparison = {r["method"]: {**r["metrics"], "ewc_lambda": r["ewc_lambda"], "seconds": r["seconds"]}
                  for r in rows}
    atomic_write_text(out / "comparison.json", json.dumps(to_jsonable(comparison), indent=2))
    plots.comparison({r["method"]: r["metrics"] for r in rows}, out / "comparison.png")
    write_report(out)
    print(_table(rows))
    print(f"comparison: {out / 'comparison.json'}\nplot:       {out / 'comparison.png'}\n"
          f"report:     {out / 'report.html'}\n"
          f"runs:       {', '.join(str(out / r['method']) for r in rows)}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from sequential_learning.config import RunConfig, default_run_dir
    from sequential_learning.sweep import check_lambdas, lambda_sweep, log_spaced, sweep_table

    if args.lambdas is not None:
        lambdas = check_lambdas(args.lambdas)
    elif args.lambda_range is not None:
        lambdas = log_spaced(args.lambda_range[0], args.lambda_range[1], args.points)
    else:
        raise ValueError("sweep: give --lambdas L1,L2,... or --lambda-range LOW HIGH [--points N]")
    args.ewc_lambda = None
    config = _config_from(args, args.method)
    out = _claim(Path(args.out) if args.out else default_run_dir(
        RunConfig(benchmark=args.benchmark, method=f"{config.method}-sweep")
    ), args)
    _load_tensorflow(args.verbose)
    with _removed_if_unfinished(out, args.created_out):
        sweep = lambda_sweep(config, lambdas, out, progress=True)
    print(sweep_table(sweep))
    best = sweep["best"]
    if best is None:
        print("no lambda gave a finite ACC (every run diverged)")
    else:
        print(f"best lambda: {best['ewc_lambda']:g} (ACC {best['acc']:.3f})")
    print(f"sweep: {out / 'sweep.json'}\nplot:  {out / 'sweep.png'}")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    _load_tensorflow(args.verbose)
    from sequential_learning.interpret.run import explain_run

    paths = explain_run(args.run_dir, args.method, task=args.task, images=args.images,
                        layer=args.layer, seed=args.seed)
    for path in paths:
        print(path)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    _load_tensorflow(args.verbose)  # the report records TensorFlow's version and devices
    from sequential_learning.report import write_report

    print(write_report(args.run_dir))
    return 0


def cmd_augment(args: argparse.Namespace) -> int:
    _load_tensorflow(args.verbose)
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
    _load_tensorflow(args.verbose)
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
    if isinstance(value, dict):  # ewc_lambda per method
        return ", ".join(f"{key}[{m}]={v:g}" for m, v in value.items())
    if isinstance(value, list):
        return f"{key}={','.join(map(str, value))}"
    return f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}"


def cmd_list(args: argparse.Namespace) -> int:
    if args.what == "methods":
        from sequential_learning.config import DEFAULT_LAMBDA
        from sequential_learning.plugins import describe_methods

        lambdas = {m.value: lam for m, lam in DEFAULT_LAMBDA.items() if m.value != "none"}
        print("\n".join(describe_methods(lambdas)))
    else:
        from sequential_learning.config import BENCHMARK_DEFAULTS
        from sequential_learning.data.benchmarks import BENCHMARKS

        for name, spec in BENCHMARKS.items():
            print(f"{name:<24} {spec.description}; scenarios {'|'.join(spec.scenarios)} "
                  f"(default {spec.default_scenario})")
            own = BENCHMARK_DEFAULTS.get(name)
            if own:
                print(" " * 25 + "defaults: " + ", ".join(_default_text(k, v) for k, v in own.items()))
    return 0


def _join_negative_values(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """`--lambdas -1,2` as `--lambdas=-1,2`: argparse takes a value that starts with `-` and is
    not a plain number for an option, and would answer "expected one argument" instead of
    checking the value."""
    takes_value = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                takes_value |= {s for a in sub._actions if a.nargs is None and
                                not isinstance(a, argparse._StoreConstAction) and
                                a.option_strings for s in a.option_strings}
    out, i = [], 0
    while i < len(argv):
        token = argv[i]
        if (token in takes_value and i + 1 < len(argv) and len(argv[i + 1]) > 1
                and argv[i + 1][0] == "-" and (argv[i + 1][1].isdigit() or argv[i + 1][1] == ".")):
            out.append(f"{token}={argv[i + 1]}")
            i += 2
        else:
            out.append(token)
            i += 1
    return out


def _quiet_warnings() -> None:
    """Hides the libraries' warnings (TensorFlow's, NumPy's); shows this package's own, each as
    one line (a one-class task of a class-incremental stream, the native kernel's fallback)."""
    warnings.filterwarnings("ignore")
    warnings.filterwarnings("default", module=r"sequential_learning(\.|$)")

    def show(message, category, filename, lineno, file=None, line=None):
        sys.stderr.write(f"seql: warning: {_one_line(message)}\n")

    warnings.showwarning = show


def _one_line(error: BaseException) -> str:
    # One line, even for messages that list several places (a data set not found).
    return " ".join(line.strip() for line in str(error).splitlines() if line.strip())


def main(argv: list[str] | None = None) -> int:
    """Entry point of `seql`. Returns the exit status (2 for bad input, one line, no traceback).

    Every failure a user can provoke (`errors.SeqlError` and the other `ValueError`s of bad
    input, a file that cannot be read or written) is caught here, once, and printed as one
    line; `--verbose` shows the traceback instead.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    verbose = "--verbose" in argv
    parser = build_parser()
    argv = _join_negative_values(parser, argv)
    args = parser.parse_args(argv)
    handlers = {"run": cmd_run, "compare": cmd_compare, "sweep": cmd_sweep, "list": cmd_list, "explain": cmd_explain,
                "report": cmd_report, "augment": cmd_augment, "drift": cmd_drift}
    try:
        args.explicit = _explicit_options(parser, argv)
        if getattr(args, "config", None):
            _apply_config_file(args, parser, argv)
            verbose = verbose or bool(getattr(args, "verbose", False))
        if not verbose:
            _quiet_warnings()
        return handlers[args.command](args)
    except BrokenPipeError:  # `seql list methods | head`: the reader has gone, nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (ValueError, OSError) as error:
        if verbose:
            raise
        if isinstance(error, OSError) and error.filename:
            from sequential_learning.errors import os_error_reason

            error = f"{error.filename}: {os_error_reason(error)}"
        sys.stderr.write(f"seql: error: {_one_line(error)}\n")
        return EXIT_USAGE
    except KeyboardInterrupt as interrupt:
        detail = str(interrupt) or "finished tasks are saved in the run folder"
        sys.stderr.write(f"\nseql: {detail}\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
