"""A run's settings (`RunConfig`), each declared once; config files; tuned defaults as data.

Every field of `RunConfig` carries its `Option` (help, check, flag): the `seql` flags, the
config-file checks and `validate` are generated from them. The run's own settings are declared
here (`config_fields`: how), the methods' options by the methods (`importance`,
`plugins.registry`), the stream's by `config_online` (which also holds the rules of online and
task-free runs). Settings a run leaves unset come from `defaults/<benchmark>.yaml`, else
`defaults/global.yaml` (shipped with the package): read here (`benchmark_defaults`,
`method_defaults`), applied to a run by `config_defaults`.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import os
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sequential_learning.config_defaults import (
    RESOLVED,
    apply_method_defaults,
    importance_method,
    method_defaults_text,
    resolve_defaults,
)
from sequential_learning.config_fields import (
    AUGMENTATIONS,
    BOOL,
    MAX_LEARNING_RATE,
    MODELS,
    OPTIMIZERS,
    declared,
    ints,
    setting,
    sizes,
)
from sequential_learning.config_online import (
    BLUR_WINDOW,
    EVAL_EVERY_SAMPLES,
    ONLINE,
    STREAM_BOUNDARIES,
    resolve_online,
)
from sequential_learning.data.benchmarks import BENCHMARKS, SCENARIOS, check_benchmark_options
from sequential_learning.distribute import STRATEGIES
from sequential_learning.importance import (
    EWC_LAMBDA,
    FISHER_MODE,
    FISHER_SAMPLES,
    GAMMA,
    INVERSE_MAGNITUDE_EPSILON,
    NORMALIZE_IMPORTANCE,
    PENALTY_MODE,
    PENALTY_OPTIONS,
    SI_XI,
    WEIGHT_CHANGE_NET,
    EWCMethod,
)
from sequential_learning.options import Option, is_float_hint, is_int, is_number, matches, type_name
from sequential_learning.plugins.registry import (
    DERPP_ALPHA,
    DERPP_BETA,
    LWF_ALPHA,
    LWF_TEMPERATURE,
    MEMORY,
    MEMORY_BATCH,
    REPLAY_POLICY,
    all_options,
    check_families,
    method_spec,
    parse_mapping,
    split_methods,
)
from sequential_learning.yaml_io import read_yaml

_DEFAULTS = Path(__file__).resolve().parent / "defaults"


@dataclass
class RunConfig:
    """Every setting of one run; `validate()` rejects bad values with the key's name.

    Each field's help is its declaration (`seql run --help`, `seql list methods`): the run's
    own settings, and the methods' options (`ewc_lambda`, `fisher_mode`, `memory`, ...) where
    the method declares them. Fields left as None marked "resolved" below take the benchmark's
    own value (`defaults/<benchmark>.yaml`), else the global one (`defaults/global.yaml`; λ and
    the penalty mode: the method's own); `validate()` fills them in and records where each came
    from in `defaults_used`.

    Args:
        benchmark: the task stream, a key of `BENCHMARKS` (`seql list benchmarks`).
        scenario: `"task"`, `"domain"` or `"class"`; None: the benchmark's own.
        method: the method, or methods joined with `+` (`"fisher+replay"`).
        ewc_lambda: the penalty strength λ (resolved; per method and benchmark).
        epochs: epochs per task (resolved).
        batch_size: the training batch size (resolved).
        learning_rate: the optimizer's learning rate, in (0, 10] (resolved).
        optimizer: `"adam"` or `"sgd"` (plain SGD, no momentum) (resolved).
        augmentation: `"none"` or `"crop-flip"` (random crop with 4 pixels of zero padding and a
            random horizontal flip, in training only, replayed samples included) (resolved).
        fisher_mode: how the Fisher information is estimated: `exact`, `sampled`, `empirical` or
            `batch`.
        fisher_samples: training inputs used to estimate importance.
        penalty_mode: `separate` (one term per task) or `online` (resolved: the method's own).
        gamma: the online penalty's decay.
        normalize_importance: divide each task's importance by its maximum.
        si_xi: synaptic intelligence's damping ξ.
        weight_change_net: weight-change importance as |θ_end − θ_start| instead of the path
            length.
        inverse_magnitude_epsilon: ε in 1/(|θ| + ε).
        seed: seeds data order, initial weights and sampling; the same config gives the same
            numbers.
        hidden: the MLP's hidden sizes (resolved).
        num_tasks: tasks of permuted, rotated, iris and function streams (resolved; with `angles`,
            their count).
        classes_per_task: classes per task of split streams; None: the benchmark's own (2;
            10 for `seq-cifar100`).
        model: the shared base, `"mlp"`, `"cnn"` or `"resnet18"` (image streams only) (resolved).
        filters: the CNN's conv-block filters.
        resnet_width: ResNet-18's filters nf of the stem and first stage (64: Mammoth's
            resnet18, as DER; 20: GEM's reduced ResNet-18).
        eval_every: evaluate every task every K epochs (the last epoch of each task always).
        eval_subset: per-epoch curves on N validation samples per task (a fixed seeded subset; the
            accuracy matrix uses all); None: all.
        class_order: split streams: `"sorted"`, `"random"` (seeded) or a list of class ids.
        angles: rotated streams: degrees per task; None: 0, 180/T, 2·180/T, ...
        data: an `.npz` of `x_train, y_train, x_test, y_test` for the benchmarks `split`,
            `permuted` and `rotated`.
        data_dir: the folder of Fashion-MNIST, MNIST or CIFAR-10; None: the usual places.
        limit: keep the first N samples of each split of the data set; None: all.
        tensorboard: write TensorBoard logs to `RUN_DIR/tensorboard`.
        strategy: the `tf.distribute` strategy, `"default"`, `"mirrored"` or `"multi-worker"`.
        deterministic: turn on TensorFlow op determinism (repeatable to the bit, slower).
        plugins: more methods to run with `method`: names, or `{"name": ..., option: value}`
            mappings whose options apply to that method alone.
        memory: samples the replay buffer holds (all tasks together).
        memory_batch: samples drawn from the buffer per step; None: the batch size.
        replay_policy: `"reservoir"` (every sample seen, in the step) or `"balanced"` (equal per
            class, after each task).
        lwf_alpha: the weight of LwF's distillation loss.
        lwf_temperature: LwF's distillation temperature.
        derpp_alpha: DER++'s weight of matching the stored logits.
        derpp_beta: DER++'s weight of the replayed labels' loss.
        class_masking: class scenario: mask the classes of later tasks (False trains and evaluates
            over every class of the stream; a task-free stream always does).
        online: one pass over each task's data (epochs 1; batch size 10 unless given), every
            task evaluated along the stream (`sequential_learning.online`).
        boundaries: `"tasks"` (announced), or online `"none"` (a task-free stream: one
            experience) or `"blurry"` (task-free, tasks blend over `blur_window` samples).
        eval_every_samples: online: evaluate every task every N training samples of each task;
            None: about 10 points per task.
        blur_window: boundaries blurry: the samples (even) over which two tasks blend; None: a
            fifth of the smallest task (`sequential_learning.data.blurry`).
        more_options: options of methods registered outside this package, `{key: value}` (flat
            keys in config files and on the command line).

    Example:
    ```python
    config = RunConfig(benchmark="split-digits", method="fisher+replay", memory=200).validate()
    config.epochs, config.defaults_used["epochs"]    # (10, 'default')
    ```
    """

    benchmark: str = setting("permuted-digits", f"task stream: {', '.join(BENCHMARKS)}",
                             choices=tuple(BENCHMARKS), metavar="NAME")
    scenario: str | None = setting(None, "task | domain | class", choices=SCENARIOS,
                                   unset="the benchmark's own")
    method: str = setting("fisher", "the method, or methods joined with + (e.g. fisher+replay); "
                          "`seql list methods` shows each with its options", metavar="METHOD")
    ewc_lambda: float | None = declared(EWC_LAMBDA)
    epochs: int | None = setting(None, "epochs per task", **ints(1))
    batch_size: int | None = setting(None, "training batch size", **ints(1))
    learning_rate: float | None = setting(
        None, "the optimizer's learning rate",
        lambda v: is_number(v) and 0 < v <= MAX_LEARNING_RATE,
        f"a number in (0, {MAX_LEARNING_RATE:g}] (Adam's usual values are 1e-4 to 1e-2, SGD's "
        "1e-3 to 0.1)")
    optimizer: str | None = setting(None, "adam, or sgd (plain SGD, as Mammoth)",
                                    lambda v: v in OPTIMIZERS, f"one of {', '.join(OPTIMIZERS)}",
                                    choices=OPTIMIZERS)
    augmentation: str | None = setting(
        None, "none, or crop-flip (random crop with 4 pixels of padding and horizontal flip, "
        "training batches and replayed samples only)", lambda v: v in AUGMENTATIONS,
        f"one of {', '.join(AUGMENTATIONS)}", choices=AUGMENTATIONS)
    fisher_mode: str = declared(FISHER_MODE)
    fisher_samples: int = declared(FISHER_SAMPLES)
    penalty_mode: str | None = declared(PENALTY_MODE)
    gamma: float = declared(GAMMA)
    normalize_importance: bool = declared(NORMALIZE_IMPORTANCE)
    si_xi: float = declared(SI_XI)
    weight_change_net: bool = declared(WEIGHT_CHANGE_NET)
    inverse_magnitude_epsilon: float = declared(INVERSE_MAGNITUDE_EPSILON)
    seed: int = setting(0, "seeds everything; the same config gives the same numbers", **ints(0))
    hidden: list[int] | None = setting(None, "MLP hidden sizes, comma-separated",
                                       **sizes("layer sizes"))
    num_tasks: int | None = setting(None, "tasks of permuted, rotated, iris and function streams",
                                    **ints(1))
    classes_per_task: int | None = setting(
        None, "classes per task of split streams", unset="the benchmark's own: 2, "
        "seq-cifar100 10", **ints(1, "the benchmark's own"))
    model: str | None = setting(None, "shared base: mlp, cnn or resnet18 (image streams only)",
                                lambda v: v in MODELS, f"one of {', '.join(MODELS)}",
                                choices=MODELS)
    filters: list[int] = setting(None, "CNN conv-block filters, comma-separated",
                                 factory=lambda: [32, 64], **sizes("filter counts"))
    resnet_width: int = setting(64, "ResNet-18's filters nf of the stem and first stage (64: "
                                "Mammoth's resnet18, as DER; 20: GEM's reduced ResNet-18)",
                                **ints(1))
    eval_every: int = setting(1, "evaluate all tasks every K epochs; the last epoch of each "
                              "task always", **ints(1))
    eval_subset: int | None = setting(None, "per-epoch curves on N validation samples per task "
                                      "(a fixed seeded subset; the accuracy matrix uses all)",
                                      unset="all", **ints(1, "all samples"))
    class_order: list[int] | str | None = setting(
        None, "split streams: sorted, random (seeded) or class ids, e.g. 3,1,...",
        lambda v: v is None or v in ("sorted", "random") or isinstance(v, list),
        "sorted, random or a list of class ids", unset="sorted")
    angles: list[float] | None = setting(
        None, "rotated streams: degrees per task",
        lambda v: v is None or (len(v) >= 1 and all(is_number(a) for a in v)),
        "one finite angle in degrees per task", unset="0, 180/T, 2*180/T, ...")
    data: str | None = setting(None, "your arrays (x_train, y_train, x_test, y_test) for the "
                               "benchmarks split, permuted, rotated", metavar="FILE.npz")
    data_dir: str | None = setting(None, "folder of Fashion-MNIST, MNIST or CIFAR-10",
                                   unset="the usual places", metavar="DIR")
    limit: int | None = setting(None, "keep the first N samples of each split of the data set",
                                **ints(1, "all samples"))
    tensorboard: bool = setting(False, "write TensorBoard logs to RUN_DIR/tensorboard", **BOOL)
    strategy: str = setting("default", "tf.distribute strategy: default (one device), mirrored "
                            "(local GPUs), multi-worker (hosts in TF_CONFIG)",
                            lambda v: v in STRATEGIES, f"one of {', '.join(STRATEGIES)}",
                            choices=STRATEGIES)
    deterministic: bool = setting(False, "turn on TensorFlow op determinism (repeatable to the "
                                  "bit, slower)", **BOOL)
    plugins: list[str | dict] = setting(
        None, "more methods to run with `method`: names, or {name: ..., option: value} mappings "
        "whose options apply to that method alone", lambda v: isinstance(v, list),
        "a list of method names or {name: ..., option: value} mappings", factory=list, flag="")
    memory: int = declared(MEMORY)
    memory_batch: int | None = declared(MEMORY_BATCH)
    replay_policy: str = declared(REPLAY_POLICY)
    lwf_alpha: float = declared(LWF_ALPHA)
    lwf_temperature: float = declared(LWF_TEMPERATURE)
    derpp_alpha: float = declared(DERPP_ALPHA)
    derpp_beta: float = declared(DERPP_BETA)
    class_masking: bool = setting(True, "class scenario: train and evaluate over every class of "
                                  "the stream instead of masking the classes of later tasks",
                                  flag="--no-class-masking", **BOOL)
    online: bool = declared(ONLINE)
    boundaries: str = declared(STREAM_BOUNDARIES)
    eval_every_samples: int | None = declared(EVAL_EVERY_SAMPLES)
    blur_window: int | None = declared(BLUR_WINDOW)
    more_options: dict[str, Any] = setting(None, "options of methods registered elsewhere",
                                           lambda v: isinstance(v, dict), "a mapping",
                                           factory=dict, flag="")

    def validate(self) -> RunConfig:
        """Checks every value; returns self with the method normalised and defaults resolved.

        Raises:
            ValueError: naming the key, the value and what is allowed.
        """
        check_benchmark_options(self.benchmark, self.scenario, self.data, self.data_dir)
        names = self._method_names()
        self.method = "+".join(names)  # `plugins` included: the run's name says what ran
        apply_method_defaults(self, method_defaults(self.benchmark, names, self.memory),
                              run_options())
        resolve_online(self, run_options())
        resolve_defaults(self, importance_method(names), benchmark_defaults(self.benchmark),
                         benchmark_defaults(None))
        for key, option in run_options().items():
            option.validate(getattr(self, key))  # every option, even where its method is unused
        registered = all_options()
        for key, value in self.more_options.items():
            if key not in registered:
                raise ValueError(f"{key}: no method declares this option (`seql list methods`)")
            registered[key].validate(value)
        # The plugins' own check, on the registry's families (no TensorFlow); `none` makes none.
        check_families([(n, method_spec(n).family) for n in names if n != "none"])
        if self.angles is not None and self.num_tasks != len(self.angles):
            raise ValueError(f"angles: {self.angles!r} is not allowed; expected one angle per "
                             f"task (num_tasks is {self.num_tasks})")
        return self

    def _method_names(self) -> list[str]:
        """Every method this run combines: `method` (names joined with `+`), then those of
        `plugins` it does not name already."""
        run_options()["plugins"].validate(self.plugins)
        names = split_methods(self.method)
        for item in self.plugins:
            if isinstance(item, dict):
                more = [parse_mapping(item)[0].name]  # its own options checked too
            elif isinstance(item, str):
                more = split_methods(item)
            else:
                raise ValueError(f"plugins: {item!r} is not allowed; expected a method name or "
                                 "a mapping")
            names += [name for name in more if name not in names]
        return names

    def methods(self) -> list[str | dict]:
        """The method specification the manager takes: each method's name, or its mapping in
        `plugins` (with options of its own)."""
        own = {method_spec(p["name"]).name: p for p in self.plugins if isinstance(p, dict)}
        return [own.get(name, name) for name in self._method_names()]

    def method_options(self) -> dict:
        """The methods' options beyond the penalty's and the Fisher mode (which the manager
        takes as arguments of its own); each method takes the ones it knows."""
        own = {o.name for o in (*PENALTY_OPTIONS, FISHER_MODE)}
        registered = all_options()
        out = {o.name: getattr(self, key) for key, o in run_options().items()
               if key in registered and o.name not in own}
        out.update({registered[key].name: value for key, value in self.more_options.items()})
        return out

    def to_dict(self) -> dict:
        """The resolved settings as a JSON-ready dict (`more_options` as flat keys)."""
        out = dataclasses.asdict(self)
        out.update(out.pop("more_options"))
        return out


def make_config(values: dict) -> RunConfig:
    """A `RunConfig` from flat `{key: value}` settings (a config file's, the command line's, ...).

    Options of methods registered elsewhere go to `more_options`; keys that are no setting and
    no registered option (`defaults_used`, `benchmark_info`, ...) are left out. Nothing is
    checked: call `validate()` on the result.

    Args:
        values: the settings by config key (snake case).

    Returns:
        A new, not yet validated `RunConfig`.

    Example:
    ```python
    config = make_config({"method": "fisher", "memory": 200, "defaults_used": {}}).validate()
    ```
    """
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    extra = {k: v for k, v in values.items() if k not in fields and k in all_options()}
    config = RunConfig(**{k: v for k, v in values.items() if k in fields})
    config.more_options = {**config.more_options, **extra}
    #: The settings given (the rest may come from the benchmark's `method_defaults`).
    config.given_keys = set(values) | set(config.more_options)
    return config


@functools.cache
def run_options() -> dict[str, Option]:
    """Every field of `RunConfig` as its `Option`, by key (the methods' options are theirs)."""
    hints = typing.get_type_hints(RunConfig)
    out = {}
    for f in dataclasses.fields(RunConfig):
        if "option" in f.metadata:
            out[f.name] = f.metadata["option"]
        else:
            default = f.default_factory() if f.default is dataclasses.MISSING else f.default
            out[f.name] = Option(f.name, default, type=hints[f.name], **f.metadata["spec"])
    return out


# -- tuned defaults: data files ---------------------------------------------------------------------
#: Settings a benchmark's `method_defaults` may not set: what the run is, not how it trains.
_NOT_PER_METHOD = ("benchmark", "scenario", "method", "plugins", "memory", "seed", "data",
                   "data_dir", "limit", "more_options", "strategy", "tensorboard", "deterministic")


def method_defaults(benchmark: str, names: list[str], memory: int) -> dict[str, tuple[Any, str]]:
    """The settings `benchmark`'s `method_defaults` gives a run of the methods `names`.

    A benchmark's defaults file may hold, beside its own settings, per-method ones (e.g. the
    hyperparameters a paper tuned for each method and buffer size):

    ```yaml
    method_defaults:
      none: {learning_rate: 0.1}
      derpp:
        learning_rate: 0.03          # for every memory size
        200: {derpp_alpha: 0.1, derpp_beta: 0.5}
        500: {derpp_alpha: 0.2, derpp_beta: 0.5}
    ```

    A method's entry maps settings to values, and memory sizes (integer keys) to the settings
    that apply when the run's `memory` is that size (they win over the entry's plain ones). For
    a run of several methods (`fisher+replay`) each method's entry is read in the run's order
    and the first to set a key wins. `RunConfig.validate` then applies them to what the run left
    unset: a setting given on the command line or in a config file (or, in Python, a value other
    than the option's default) always wins. Where each came from is in `defaults_used`.

    Args:
        benchmark: a benchmark name.
        names: the run's method names (`split_methods` order).
        memory: the run's buffer size.

    Returns:
        `{key: (value, source)}`, `source` naming the benchmark, the method and the memory size.

    Raises:
        ValueError: the file's `method_defaults` is malformed: not a mapping, an unknown method
            or setting, or one that is no per-method setting (`memory`, `seed`, ...); the
            message names the file and the key.

    Example:
    ```python
    method_defaults("seq-cifar10", ["derpp"], 200)["derpp_alpha"]
    # (0.1, 'benchmark seq-cifar10, method derpp, memory 200')
    ```
    """
    table = benchmark_defaults(benchmark).get("method_defaults") or {}
    where = f"defaults/{benchmark}.yaml: method_defaults"
    if not isinstance(table, dict):
        raise ValueError(f"{where}: {table!r} is not a mapping of method names")
    keys = {k: o for k, o in run_options().items() if k not in _NOT_PER_METHOD}
    keys.update({k: o for k, o in all_options().items() if k not in _NOT_PER_METHOD})
    out: dict[str, tuple[Any, str]] = {}
    for name in names:
        entry = None
        for method, settings in table.items():
            if split_methods(str(method)) == [name]:
                entry = settings
        if entry is None:
            continue
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: {name}: {entry!r} is not a mapping of settings")
        source = f"benchmark {benchmark}, method {name}"
        plain = [(k, v, source) for k, v in entry.items() if not is_int(k)]
        sized = entry.get(memory, {}) if is_int(memory) else {}
        if not isinstance(sized, dict):
            raise ValueError(f"{where}: {name}: {memory}: {sized!r} is not a mapping of settings")
        chosen = {k: (v, s) for k, v, s in plain}
        chosen.update({k: (v, f"{source}, memory {memory}") for k, v in sized.items()})
        for key, (value, label) in chosen.items():
            if key not in keys:
                raise ValueError(f"{where}: {name}: {key!r} is not a per-method setting; "
                                 "expected settings such as learning_rate, epochs, batch_size "
                                 "or a method's options (`seql run --help`)")
            keys[key].validate(value, f"{where}: {name}: {key}")
            out.setdefault(key, (float(value) if is_float_hint(keys[key].hint) and is_int(value)
                                 else value, label))
    return out


@functools.cache
def _defaults_file(name: str) -> dict:
    path = _DEFAULTS / f"{name}.yaml"
    return read_yaml(path, "defaults") if path.is_file() else {}


def benchmark_defaults(benchmark: str | None) -> dict:
    """The tuned settings of `benchmark`, or with None the global ones.

    Read from `defaults/<benchmark>.yaml` ({} when the benchmark has none) or
    `defaults/global.yaml` (every key of `RESOLVED`, and `ewc_lambda` as `{method: λ}`); the
    files are read once, and each call returns a fresh copy.

    Args:
        benchmark: a benchmark name, or None for the global defaults.

    Returns:
        A dict of settings by config key; `ewc_lambda`, when present, maps method names to λ.

    Example:
    ```python
    benchmark_defaults("split-fashion-mnist")["ewc_lambda"]     # {'fisher': 1000.0}
    benchmark_defaults(None)["epochs"]                          # 10
    ```
    """
    return copy.deepcopy(_defaults_file("global" if benchmark is None else benchmark))


def __getattr__(name: str):
    # The tables as they were when they were code (read from the data files on first use), and
    # `run_experiment`, which moved to `experiment` (kept here for existing imports).
    if name == "DEFAULT_LAMBDA":
        return {EWCMethod(k): float(v) for k, v in benchmark_defaults(None)["ewc_lambda"].items()}
    if name == "GLOBAL_DEFAULTS":
        return {k: v for k, v in benchmark_defaults(None).items() if k != "ewc_lambda"}
    if name == "BENCHMARK_DEFAULTS":
        return {b: benchmark_defaults(b) for b in BENCHMARKS if benchmark_defaults(b)}
    if name in ("run_experiment", "default_run_dir"):
        import importlib

        return getattr(importlib.import_module("sequential_learning.experiment"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- config files ----------------------------------------------------------------------------------
#: Options of the commands themselves that a config file may hold besides the run's settings.
COMMAND_OPTIONS = (
    Option("out", None, "output folder", type=str | None, unset="runs/<timestamp>-<name>"),
    Option("methods", "none,weight-decay,fisher", "comma-separated methods",
           type=list[str] | str),
    Option("seeds", None, "run the whole comparison at each of these seeds (in "
           "OUT/seed-S/) and report each metric's mean and sample standard deviation over them",
           type=list[int] | None, metavar="S1,S2,..."),
    Option("verbose", False, "show TensorFlow's log and warnings", type=bool),
    Option("lambdas", None, "comma-separated lambda values, e.g. 1,10,100,1000",
           type=list[float] | None, metavar="L1,L2,..."),
    Option("lambda_range", None, "log-spaced lambdas from LOW to HIGH", type=list[float] | None,
           metavar=("LOW", "HIGH"), nargs=2),
    Option("points", 5, "values in --lambda-range", type=int),
)
COMMAND_KEYS: dict[str, object] = {o.config_key: o.hint for o in COMMAND_OPTIONS}
_KEY_ALIASES = {"lambda": "ewc_lambda"}


def config_keys() -> dict[str, object]:
    """Every key a config file may hold, with its type.

    The run's settings, the options of methods registered elsewhere, and `COMMAND_KEYS` (`out`,
    `methods`, `lambdas`, ...).

    Returns:
        A dict from config key (snake case) to its type hint (`int`, `float | None`, ...).

    Example:
    ```python
    config_keys()["hidden"]    # list[int] | None
    ```
    """
    keys = {k: o.hint for k, o in all_options().items()}
    keys.update({k: o.hint for k, o in run_options().items() if k != "more_options"})
    return {**keys, **COMMAND_KEYS}


def load_config_file(path: str | os.PathLike) -> dict:
    """Reads a YAML experiment config (with `yaml.safe_load`) and checks its keys and types.

    Keys are `RunConfig`'s fields (`batch_size` or `batch-size`; `lambda` for `ewc_lambda`), the
    options of registered methods and the command's own options (`out`, `methods`, ...). Ranges
    are checked by `RunConfig.validate`.

    Args:
        path: the YAML file.

    Returns:
        `{key: value}` with keys in snake case; integers given for float keys become floats.

    Raises:
        ValueError: the file is missing or not YAML, is not a mapping, has an unknown key (the
            message lists the allowed ones) or a value of the wrong type (naming the key and the
            type allowed).

    Example:
    ```python
    values = load_config_file("examples/permuted_fashion_mnist.yaml")
    config = make_config({k: v for k, v in values.items() if k not in COMMAND_KEYS})
    ```
    """
    path = Path(path)
    doc = read_yaml(path, "config")
    allowed = config_keys()
    values = {}
    for raw_key, value in doc.items():
        key = _KEY_ALIASES.get(str(raw_key), str(raw_key).replace("-", "_"))
        if key not in allowed:
            raise ValueError(f"config {path}: unknown key {raw_key!r}; allowed keys: "
                             + ", ".join(sorted(allowed)))
        if not matches(value, allowed[key]):
            raise ValueError(f"config {path}: {key}: {value!r} is not allowed; expected "
                             f"{type_name(allowed[key])}")
        values[key] = float(value) if is_float_hint(allowed[key]) and is_int(value) else value
    return values


__all__ = ["COMMAND_KEYS", "COMMAND_OPTIONS", "RESOLVED", "RunConfig", "benchmark_defaults",
           "config_keys", "importance_method", "load_config_file", "make_config", "method_defaults",
           "method_defaults_text", "run_options"]
