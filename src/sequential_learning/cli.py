"""The `seql` command: run, compare and list.

TensorFlow's start-up log is silenced before TensorFlow loads (`--verbose` shows it): `main`
looks for `--verbose` first, then imports the rest of the package and parses the arguments.
"""

from __future__ import annotations

import argparse
import json
import os
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


def _add_run_options(parser: argparse.ArgumentParser, method: bool = True) -> None:
    from sequential_learning.config import RunConfig
    from sequential_learning.data.benchmarks import BENCHMARKS, SCENARIOS
    from sequential_learning.importance import FISHER_MODES, PENALTY_MODES, available_methods

    d = RunConfig()
    parser.add_argument("--benchmark", default=d.benchmark, choices=list(BENCHMARKS),
                        metavar="NAME", help=f"task stream: {', '.join(BENCHMARKS)} (default: %(default)s)")
    parser.add_argument("--scenario", default=None, choices=SCENARIOS,
                        help="task | domain | class (default: the benchmark's own)")
    if method:
        parser.add_argument("--method", default=d.method, metavar="METHOD",
                            help="consolidation method: "
                            + ", ".join(m.value for m in available_methods())
                            + " (default: %(default)s)")
    parser.add_argument("--lambda", dest="ewc_lambda", type=float, default=None,
                        help="penalty strength lambda (default: the method's own, see `seql list methods`)")
    parser.add_argument("--epochs", type=int, default=d.epochs, help="epochs per task (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=d.batch_size, help="default: %(default)s")
    parser.add_argument("--learning-rate", type=float, default=d.learning_rate, help="Adam's (default: %(default)s)")
    parser.add_argument("--fisher-mode", default=d.fisher_mode, choices=FISHER_MODES,
                        help="Fisher information: exact, sampled, empirical, batch (default: %(default)s)")
    parser.add_argument("--fisher-samples", type=int, default=d.fisher_samples,
                        help="inputs used to estimate importance (default: %(default)s)")
    parser.add_argument("--penalty-mode", default=d.penalty_mode, choices=PENALTY_MODES,
                        help="separate terms per task, or online (default: %(default)s)")
    parser.add_argument("--gamma", type=float, default=d.gamma, help="online decay (default: %(default)s)")
    parser.add_argument("--hidden", type=_int_list, default=d.hidden,
                        help="MLP hidden sizes, comma-separated (default: 100,100)")
    parser.add_argument("--num-tasks", type=int, default=d.num_tasks, help="tasks of permuted streams (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=d.seed, help="default: %(default)s")
    parser.add_argument("--out", default=None, help="output folder (default: runs/<timestamp>-<name>)")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's log and warnings")


def build_parser() -> argparse.ArgumentParser:
    """The `seql` argument parser."""
    parser = argparse.ArgumentParser(
        prog="seql",
        description="Sequential (continual) learning with Keras: train task streams with "
        "elastic weight consolidation and its family, compare methods, report metrics.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="train one method on a task stream",
                         description="Train one method on a task stream and write its results.")
    _add_run_options(run)
    compare = sub.add_parser("compare", help="compare methods on the same stream, seed and initialisation",
                             description="Run several methods on the same task stream, seed and "
                             "model initialisation; print and plot their metrics.")
    _add_run_options(compare, method=False)
    compare.add_argument("--methods", default="none,weight-decay,fisher",
                         help="comma-separated methods (default: %(default)s)")
    lister = sub.add_parser("list", help="list methods or benchmarks")
    lister.add_argument("what", choices=["methods", "benchmarks"])
    return parser


def _config_from(args: argparse.Namespace, method: str):
    from sequential_learning.config import RunConfig

    return RunConfig(
        benchmark=args.benchmark, scenario=args.scenario, method=method,
        ewc_lambda=args.ewc_lambda, epochs=args.epochs, batch_size=args.batch_size,
        learning_rate=args.learning_rate, fisher_mode=args.fisher_mode,
        fisher_samples=args.fisher_samples, penalty_mode=args.penalty_mode, gamma=args.gamma,
        seed=args.seed, hidden=list(args.hidden), num_tasks=args.num_tasks,
    ).validate()


def _quiet(verbose: bool) -> None:
    if verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")
        return
    from sequential_learning._tf import quiet_tensorflow

    quiet_tensorflow()
    warnings.filterwarnings("ignore")


def _after_import(verbose: bool) -> None:
    if not verbose:
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")
        tf.autograph.set_verbosity(0)


def _table(rows: list[dict]) -> str:
    header = f"{'method':<16} {'ACC':>7} {'BWT':>7} {'FWT':>7} {'forget':>7} {'seconds':>8}"
    lines = [header, "-" * len(header)]
    for r in rows:
        m = r["metrics"]

        def f(v):
            return "    n/a" if v is None or v != v else f"{v:7.3f}"

        lines.append(f"{r['method']:<16} {f(m['acc'])} {f(m['bwt'])} {f(m['fwt'])} "
                     f"{f(m['forgetting'])} {r['seconds']:8.1f}")
    return "\n".join(lines)


def cmd_run(args: argparse.Namespace) -> int:
    from sequential_learning.config import default_run_dir, run_experiment

    config = _config_from(args, args.method)
    out = Path(args.out) if args.out else default_run_dir(config)
    _after_import(args.verbose)
    start = time.perf_counter()
    results = run_experiment(config, out, progress=True)
    row = {"method": config.method, "metrics": results.metrics, "seconds": time.perf_counter() - start}
    print(_table([row]))
    print(f"results: {out / 'results.json'}\nplots:   {out / 'task_curves.png'}, "
          f"{out / 'accuracy_matrix.png'}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from sequential_learning import plots
    from sequential_learning.config import RunConfig, default_run_dir, run_experiment
    from sequential_learning.results import atomic_write_text, to_jsonable

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods:
        raise ValueError("--methods: give at least one method, e.g. none,fisher")
    configs = [_config_from(args, m) for m in methods]  # validate every method before training
    out = Path(args.out) if args.out else default_run_dir(
        RunConfig(benchmark=args.benchmark, method="compare")
    )
    _after_import(args.verbose)
    rows = []
    for config in configs:
        start = time.perf_counter()
        results = run_experiment(config, out / config.method, progress=f"[{config.method}]")
        sys.stderr.write("\n")
        rows.append({"method": config.method, "ewc_lambda": config.ewc_lambda,
                     "metrics": results.metrics, "seconds": time.perf_counter() - start})
    comparison = {r["method"]: {**r["metrics"], "ewc_lambda": r["ewc_lambda"], "seconds": r["seconds"]}
                  for r in rows}
    atomic_write_text(out / "comparison.json", json.dumps(to_jsonable(comparison), indent=2))
    plots.comparison({r["method"]: r["metrics"] for r in rows}, out / "comparison.png")
    print(_table(rows))
    print(f"comparison: {out / 'comparison.json'}\nplot:       {out / 'comparison.png'}\n"
          f"runs:       {', '.join(str(out / r['method']) for r in rows)}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    if args.what == "methods":
        from sequential_learning.config import DEFAULT_LAMBDA
        from sequential_learning.importance import available_methods, method_description

        for m in available_methods():
            lam = DEFAULT_LAMBDA.get(m, 1.0)
            print(f"{m.value:<18} {method_description(m)} (default lambda {lam:g})")
    else:
        from sequential_learning.data.benchmarks import BENCHMARKS

        for name, (kind, _) in BENCHMARKS.items():
            print(f"{name:<22} {kind} stream")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `seql`. Returns the exit status (2 for bad input, one line, no traceback)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    verbose = "--verbose" in argv
    _quiet(verbose)
    parser = build_parser()
    args = parser.parse_args(argv)
    handlers = {"run": cmd_run, "compare": cmd_compare, "list": cmd_list}
    try:
        return handlers[args.command](args)
    except (ValueError, FileNotFoundError) as error:
        if verbose:
            raise
        sys.stderr.write(f"seql: error: {error}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write("\nseql: interrupted; finished tasks are saved in the run folder\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
