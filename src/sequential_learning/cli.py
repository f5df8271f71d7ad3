"""The `seql` command: run, compare, sweep, explain, report, augment, drift and list.

The flags of `run`, `compare` and `sweep` are generated from the declarations: `RunConfig`'s
fields (`config.run_options`), the registered methods' options (`plugins.registry`) and the
commands' own (`config.COMMAND_OPTIONS`, `_COMMAND_ONLY`). They parse with no defaults, so the
options given are exactly those in the namespace; a config file fills the others, and the
declarations' defaults the rest. Plain argparse, generated, rather than jsonargparse or a
pydantic model: the schema is already declared (`Option`), argparse answers `--help` and bad
input in milliseconds without a new dependency, and no TensorFlow is imported before the
settings are checked. What each command then does is in `commands.py`.

The Keras backend (`--backend tensorflow|jax|torch`, before or after the command, else
`KERAS_BACKEND`, else TensorFlow) is chosen before anything imports Keras: `main` reads the flag
from the command line first (`backend_flag`) and calls `backend.select`, so an unknown or
uninstalled backend is one line and exit 2, and under JAX or PyTorch TensorFlow is never loaded.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import warnings

from sequential_learning.commands import (
    cmd_augment,
    cmd_compare,
    cmd_drift,
    cmd_explain,
    cmd_list,
    cmd_report,
    cmd_run,
    cmd_sweep,
)
from sequential_learning.commands import config_from as _config_from  # noqa: F401 - tests

EXIT_USAGE = 2
BACKEND_HELP = ("Keras backend: tensorflow, jax or torch (default: $KERAS_BACKEND, else "
                "tensorflow); recorded in results.json and environment.json")
#: The commands whose flags are generated from the declarations.
GENERATED = ("run", "compare", "sweep")


def _flag_arguments(option, methods: dict[int, list[str]], shared: set[int]) -> dict:
    """`options.flag_arguments` of `option`, its help naming the methods it belongs to (unless
    every weight-importance method has it) and its default (a resolved one: the global value)."""
    from sequential_learning.config import RESOLVED, benchmark_defaults
    from sequential_learning.options import flag_arguments, value_text

    users = methods.get(id(option), [])
    prefix = "" if not users or id(option) in shared else f"{', '.join(users)}: "
    shown = None
    if option.config_key in RESOLVED:
        shown = (value_text(benchmark_defaults(None)[option.config_key])
                 + ", or the benchmark's own, see `seql list benchmarks`")
    return flag_arguments(option, prefix, shown)


#: Options of the commands that config files do not hold.
def _command_only():
    from sequential_learning.options import Option

    return {
        "config": Option("config", None, "settings from a YAML file; options given here "
                         "override it", metavar="FILE.yaml"),
        "overwrite": Option("overwrite", None, "replace the run already in --out (its files are "
                            "deleted first); without it such a folder is refused", type=bool),
        "resume": Option("resume", None, "continue an interrupted run from its last finished "
                         "task", metavar="RUN_DIR"),
    }


def command_options(command: str) -> dict:
    """Every option of `run`, `compare` or `sweep`, by key, as its flag will be generated.

    The run's settings (`config.run_options`, those with a flag), the options of methods
    registered elsewhere (`plugins.registry.all_options`) and the command's own (`--out`,
    `--config`, `--overwrite`, ...); `compare` drops `method` and `sweep` drops `ewc_lambda` and
    `tensorboard`.

    Args:
        command: `"run"`, `"compare"` or `"sweep"` (any other raises KeyError).

    Returns:
        A dict from config key to its `options.Option`, in the order the flags are added.

    Example:
    ```python
    options = command_options("sweep")
    options["lambdas"].cli_flag    # '--lambdas'
    "ewc_lambda" in options        # False
    ```
    """
    from sequential_learning.config import COMMAND_OPTIONS, run_options
    from sequential_learning.plugins.registry import all_options

    out = {k: o for k, o in run_options().items() if o.cli_flag}
    out.update({k: o for k, o in all_options().items() if k not in out and o.cli_flag
                and k not in run_options()})
    own = {o.config_key: o for o in COMMAND_OPTIONS} | _command_only()
    mine = {"run": ("out", "overwrite", "config", "verbose", "resume"),
            "compare": ("methods", "seeds", "out", "overwrite", "config", "verbose"),
            "sweep": ("lambdas", "lambda_range", "points", "out", "overwrite", "config",
                      "verbose")}[command]
    dropped = {"run": (), "compare": ("method",), "sweep": ("ewc_lambda", "tensorboard")}[command]
    out = {k: o for k, o in out.items() if k not in dropped}
    return {**out, **{k: own[k] for k in mine}}


def _add_generated(parser: argparse.ArgumentParser, command: str) -> None:
    from sequential_learning.plugins.registry import available_methods

    methods: dict[int, list[str]] = {}  # an option's methods, by the option's identity
    for spec in available_methods():
        for option in spec.options:
            methods.setdefault(id(option), []).append(spec.name)
    family = [s.name for s in available_methods() if s.family == "importance"]
    shared = {k for k, users in methods.items() if set(family) <= set(users)}
    for option in command_options(command).values():
        parser.add_argument(option.cli_flag, **_flag_arguments(option, methods, shared))


class _Parser(argparse.ArgumentParser):
    """argparse's parser whose errors are one line (no usage block), pointing to --help."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")




def build_parser() -> argparse.ArgumentParser:
    """The `seql` argument parser, with one sub-parser per command.

    The flags of `run`, `compare` and `sweep` are generated (`command_options`) and have no
    defaults, so the namespace holds only the options given; `parse` settles the rest. Its errors
    are one line pointing to `--help` and exit with status 2.

    Returns:
        An `argparse.ArgumentParser` whose parsed namespace has `command` set.

    Example:
    ```python
    args = build_parser().parse_args(["list", "methods"])
    args.command, args.what    # ('list', 'methods')
    ```
    """
    parser = _Parser(
        prog="seql",
        description="Sequential (continual) learning with Keras: train task streams with "
        "elastic weight consolidation and its family, compare methods, report metrics.",
    )
    parser.add_argument("--backend", default=argparse.SUPPRESS, metavar="NAME", help=BACKEND_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="train one method on a task stream",
                         description="Train one method on a task stream and write its results.")
    _add_generated(run, "run")
    compare = sub.add_parser("compare", help="compare methods on the same stream, seed and initialisation",
                             description="Run several methods on the same task stream, seed and "
                             "model initialisation; print and plot their metrics.")
    _add_generated(compare, "compare")
    sweep = sub.add_parser("sweep", help="search lambda for one method",
                           description="Run one method on the same stream for several lambda "
                           "values; pick the best by ACC on validation data; write sweep.json "
                           "and sweep.png.")
    _add_generated(sweep, "sweep")
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
    lister = sub.add_parser("list", help="list methods, benchmarks or Keras backends")
    lister.add_argument("what", choices=["methods", "benchmarks", "backends"])
    for command in sub.choices.values():  # `seql run --backend jax` as well as `seql --backend jax run`
        command.add_argument("--backend", default=argparse.SUPPRESS, metavar="NAME",
                             help=BACKEND_HELP)
    return parser



def parse(argv: list[str]) -> argparse.Namespace:
    """The parsed, settled arguments of `seql ARGV`.

    For `run`, `compare` and `sweep` the options given are recorded in `args.explicit`, the others
    filled from `--config FILE.yaml` and then from their declarations, and the run's settings
    gathered in `args.settings` (see `_settle`).

    Args:
        argv: the command line without the program name, e.g. `["run", "--epochs", "2"]`.

    Returns:
        The `argparse.Namespace`; for the generated commands also `explicit` (a set of keys) and
        `settings` (a dict of the run's settings given or read from the config file).

    Raises:
        SystemExit: argparse's own errors (status 2) and `--help` (status 0).
        ValueError: a config file whose settings are not valid.

    Example:
    ```python
    args = parse(["run", "--method", "fisher", "--epochs", "2"])
    args.settings    # {'method': 'fisher', 'epochs': 2}
    ```
    """
    args = build_parser().parse_args(_join_negative_values(argv))
    if args.command in GENERATED:
        _settle(args)
    return args


def _settle(args: argparse.Namespace) -> None:
    """Records the options given (`args.explicit`), fills the others from `--config FILE.yaml`
    and then from their declarations; the run's settings go to `args.settings`, each option's
    flag to `args.flags`.

    Keys of the file that are options of another command (e.g. `methods` for `run`) are ignored.
    """
    from sequential_learning.config import COMMAND_KEYS, load_config_file

    options = command_options(args.command)
    given = vars(args)
    args.explicit = set(given) - {"command", "backend"}
    args.settings = {k: v for k, v in given.items() if k in options and k not in COMMAND_KEYS
                     and k not in _command_only()}
    if given.get("config"):
        for key, value in load_config_file(given["config"]).items():
            if key in args.explicit:
                continue
            if key not in COMMAND_KEYS:
                args.settings[key] = value
            elif key in options:
                setattr(args, key, ",".join(value) if key == "methods" and isinstance(
                    value, list) else value)
    for key in ({*COMMAND_KEYS, *_command_only()} & set(options)):
        if not hasattr(args, key):
            setattr(args, key, options[key].default)
    args.flags = {k: o.cli_flag for k, o in options.items()}  # for messages (`--resume`)


def _join_negative_values(argv: list[str]) -> list[str]:
    """`--lambdas -1,2` as `--lambdas=-1,2`: argparse takes a value that starts with `-` and is
    not a plain number for an option, and would answer "expected one argument" instead of
    checking the value (a flag that takes no value then says so)."""
    out, i = [], 0
    while i < len(argv):
        token, following = argv[i], argv[i + 1] if i + 1 < len(argv) else ""
        if (token.startswith("--") and "=" not in token and re.match(r"-[\d.]", following)
                and not re.fullmatch(r"-\d+|-\d*\.\d+", following)):
            out.append(f"{token}={following}")
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


def backend_flag(argv: list[str]) -> str | None:
    """The value of `--backend NAME` (or `--backend=NAME`) anywhere in `argv`, read before parsing.

    The backend must be chosen before Keras is imported, and building the full parser must not
    be what imports it; so `main` reads this one flag first. Only the flag spelt in full is read
    here (an abbreviation such as `--backe` is settled after parsing, still before Keras loads).

    Args:
        argv: the command line without the program name.

    Returns:
        The backend's name as given, or None when the flag is not given (or given without value).

    Example:
    ```python
    backend_flag(["run", "--backend", "jax", "--epochs", "1"])    # 'jax'
    backend_flag(["--backend=torch", "list", "methods"])           # 'torch'
    ```
    """
    for i, token in enumerate(argv):
        if token == "--":
            break
        if token.startswith("--backend="):
            return token.split("=", 1)[1]
        if token == "--backend" and i + 1 < len(argv):
            return argv[i + 1]
    return None


def _select_backend(name: str | None) -> str:
    from sequential_learning.backend import select

    return select(name)


def main(argv: list[str] | None = None) -> int:
    """Entry point of `seql`: chooses the Keras backend, parses the command line, runs the command.

    The backend (`--backend`, else `KERAS_BACKEND`, else TensorFlow) is checked and set before
    anything imports Keras. Every failure a user can provoke (`errors.SeqlError` and the other
    `ValueError`s of bad input, a file that cannot be read or written, a backend that is unknown
    or not installed) is caught here, once, and printed as one line; `--verbose` shows the
    traceback instead. A closed pipe (`seql list methods | head`) is not an error.

    Args:
        argv: the arguments without the program name; None reads `sys.argv[1:]`.

    Returns:
        The exit status: 0, 2 for bad input (one line on stderr, no traceback), 130 when
        interrupted.

    Example:
    ```python
    main(["list", "methods"])    # prints the methods, returns 0
    main(["run", "--epochs", "-1"])    # seql: error: ... ; returns 2
    main(["--backend", "jax", "list", "backends"])    # jax marked as the one running
    ```
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    verbose = "--verbose" in argv
    try:
        chosen = _select_backend(backend_flag(argv))
    except ValueError as error:
        if verbose:
            raise
        sys.stderr.write(f"seql: error: {_one_line(error)}\n")
        return EXIT_USAGE
    args = build_parser().parse_args(_join_negative_values(argv))
    handlers = {"run": cmd_run, "compare": cmd_compare, "sweep": cmd_sweep, "list": cmd_list, "explain": cmd_explain,
                "report": cmd_report, "augment": cmd_augment, "drift": cmd_drift}
    try:
        if getattr(args, "backend", chosen) != chosen:  # the flag abbreviated (`--backe jax`)
            _select_backend(args.backend)
        if args.command in GENERATED:
            _settle(args)
            verbose = verbose or bool(args.verbose)
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
