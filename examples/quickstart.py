"""The README's Python example: Fisher EWC on split digits, results saved to a run folder.

    python examples/quickstart.py --epochs 1 --out runs/quickstart
"""

from __future__ import annotations

import argparse

import sequential_learning as sl


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10, help="epochs per task")
    parser.add_argument("--out", default=None, help="a run folder to write (default: none)")
    args = parser.parse_args(argv)

    stream = sl.benchmarks.make_benchmark("split-digits")        # or sl.benchmarks.split(x, y, ...)
    base = sl.models.mlp_base(stream.input_shape, hidden=(100, 100))
    tasks = sl.tasks_from_benchmark(stream, base)                # shared base + a head per task
    manager = sl.SequentialLearningManager(base, tasks, method=sl.EWCMethod.FISHER_MATRIX,
                                           ewc_lambda=300.0, epochs=args.epochs, seed=0)
    results = manager.train_all()
    print({k: round(v, 3) for k, v in results.metrics.items() if isinstance(v, float)})
    if args.out:
        results.save(args.out)
        sl.plots.task_curves(results, f"{args.out}/task_curves.png")
    return results.metrics


if __name__ == "__main__":
    main()
