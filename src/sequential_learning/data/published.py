"""Published accuracies of the standard protocols, to compare a run with (`PUBLISHED`).

Seq-CIFAR-10: Buzzega et al. 2020, "Dark experience for general continual learning: a strong,
simple baseline" (NeurIPS), Table 2: final average accuracy (%) over the five tasks, class- and
task-incremental (Task-IL from the same class-incremental run, the task's classes only), mean of
10 runs, Mammoth's ResNet-18, 50 epochs a task, batch 32, SGD at the hyperparameters of
`defaults/seq-cifar10.yaml`. Each row carries the `seql` options that run the same protocol
(`--data-dir` to be added).

Example:
```python
print(published_table("seq-cifar10"))
rows = PUBLISHED["seq-cifar10"]["rows"]
```
"""

from __future__ import annotations

__all__ = ["PUBLISHED", "published_table"]

_DER = "Buzzega et al. 2020 (DER), NeurIPS, Table 2"

#: Per benchmark: `source`, and `rows` of `method` (as the paper names it), `memory` (buffer
#: size or None), `class_il` and `task_il` (% or None), `options` (the `seql run` options of the
#: same method) and `unchecked` (the columns whose value was taken down from the paper without
#: being compared with a copy of it here: check them before quoting).
PUBLISHED: dict[str, dict] = {
    "seq-cifar10": {
        "source": _DER,
        "rows": [
            {"method": "JOINT", "memory": None, "class_il": 92.20, "task_il": 98.31,
             "options": "--method joint", "unchecked": ("task_il",)},
            {"method": "SGD", "memory": None, "class_il": 19.62, "task_il": 61.02,
             "options": "--method none", "unchecked": ("task_il",)},
            {"method": "LwF", "memory": None, "class_il": 19.61, "task_il": 63.29,
             "options": "--method lwf", "unchecked": ("task_il",)},
            {"method": "ER", "memory": 200, "class_il": 44.79, "task_il": 91.19,
             "options": "--method replay --memory 200", "unchecked": ()},
            {"method": "A-GEM", "memory": 200, "class_il": 20.04, "task_il": 83.88,
             "options": "--method a-gem --memory 200", "unchecked": ("task_il",)},
            {"method": "DER", "memory": 200, "class_il": 61.93, "task_il": 91.40,
             "options": "--method derpp --memory 200 --derpp-alpha 0.3 --derpp-beta 0",
             "unchecked": ("class_il", "task_il")},
            {"method": "DER++", "memory": 200, "class_il": 64.88, "task_il": 91.92,
             "options": "--method derpp --memory 200", "unchecked": ()},
            {"method": "ER", "memory": 500, "class_il": 57.74, "task_il": 93.61,
             "options": "--method replay --memory 500", "unchecked": ()},
            {"method": "A-GEM", "memory": 500, "class_il": 22.67, "task_il": 89.48,
             "options": "--method a-gem --memory 500", "unchecked": ("class_il", "task_il")},
            {"method": "DER", "memory": 500, "class_il": 70.51, "task_il": 93.40,
             "options": "--method derpp --memory 500 --derpp-alpha 0.3 --derpp-beta 0",
             "unchecked": ()},
            {"method": "DER++", "memory": 500, "class_il": 72.70, "task_il": 93.88,
             "options": "--method derpp --memory 500", "unchecked": ()},
        ],
    },
}


def published_table(benchmark: str) -> str:
    """The published accuracies of `benchmark` as a Markdown table, with the `seql` options.

    Args:
        benchmark: a key of `PUBLISHED` (`"seq-cifar10"`).

    Returns:
        The table, its source on the first line; values not yet compared with the paper here
        are marked with `*`.

    Raises:
        KeyError: no published numbers for `benchmark`.

    Example:
    ```python
    print(published_table("seq-cifar10"))
    ```
    """
    entry = PUBLISHED[benchmark]

    def cell(row: dict, column: str) -> str:
        value = row[column]
        return "—" if value is None else f"{value:.2f}" + ("*" if column in row["unchecked"]
                                                           else "")

    lines = [f"{benchmark}: {entry['source']} (* not yet checked against the paper)", "",
             "| method | buffer | class-IL | task-IL | seql run options |",
             "| --- | --- | --- | --- | --- |"]
    for row in entry["rows"]:
        lines.append(f"| {row['method']} | {row['memory'] or '—'} | "
                     f"{cell(row, 'class_il')} | {cell(row, 'task_il')} | "
                     f"`--benchmark {benchmark} {row['options']}` |")
    return "\n".join(lines)
