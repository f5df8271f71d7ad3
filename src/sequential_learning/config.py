"""Experiment configuration (validated) and the function that runs one experiment."""

from __future__ import annotations

import copy
import dataclasses
import datetime as _dt
import math
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from sequential_learning.importance import (
    FISHER_MODES,
    PENALTY_MODES,
    EWCMethod,
    parse_method,
)
from sequential_learning.plugins import registry as options
from sequential_learning.plugins.registry import (
    check_families,
    method_options,
    method_spec,
    parse_mapping,
    split_methods,
)

# λ that works for each method on the embedded permuted-digits stream with the default model
# (found by sweeps; see the README). Methods differ in scale, so λ does not transfer between them.
DEFAULT_LAMBDA = {
    EWCMethod.NONE: 0.0,
    EWCMethod.WEIGHT_DECAY: 0.01,
    EWCMethod.SIGN_FLIPPING: 0.003,
    EWCMethod.MOMENTUM_BASED: 0.3,
    EWCMethod.WEIGHT_CHANGE: 0.003,
    EWCMethod.FISHER_MATRIX: 50.0,
    EWCMethod.MAS: 0.3,
    EWCMethod.SYNAPTIC_INTELLIGENCE: 100.0,
    EWCMethod.WEIGHT_MAGNITUDE: 0.1,
    EWCMethod.INVERSE_WEIGHT_MAGNITUDE: 1e-4,
    EWCMethod.RANDOM: 0.01,
}

#: Settings used when neither the run nor its benchmark sets them (see `BENCHMARK_DEFAULTS`).
GLOBAL_DEFAULTS: dict[str, object] = {
    "epochs": 10,
    "batch_size": 32,
    "learning_rate": 1e-3,
    "hidden": [100, 100],
    "num_tasks": 5,
    "model": "mlp",
}

_FASHION = {"hidden": [400, 400], "batch_size": 128}
#: What each benchmark brings when the run does not set a value: any key of `GLOBAL_DEFAULTS`,
#: and `ewc_lambda` as `{method: λ}`. Values set explicitly (command line, config file, Python)
#: always win; `RunConfig.validate` records where each value came from in `defaults_used`.
BENCHMARK_DEFAULTS: dict[str, dict] = {
    "split-fashion-mnist": {**_FASHION, "epochs": 2, "ewc_lambda": {"fisher": 1000.0}},
    "permuted-fashion-mnist": {**_FASHION, "epochs": 1, "ewc_lambda": {"fisher": 300.0}},
    "rotated-fashion-mnist": {**_FASHION, "epochs": 1, "ewc_lambda": {"fisher": 300.0}},
    "split-mnist": {**_FASHION, "epochs": 2, "ewc_lambda": {"fisher": 1000.0}},
    "permuted-mnist": {**_FASHION, "epochs": 1, "ewc_lambda": {"fisher": 300.0}},
    "rotated-mnist": {**_FASHION, "epochs": 1, "ewc_lambda": {"fisher": 300.0}},
    "split-cifar10": {"model": "cnn", "batch_size": 128, "epochs": 5},
    "iris-features": {"num_tasks": 3, "hidden": [16, 16], "batch_size": 16, "epochs": 40,
                      "learning_rate": 1e-2},
    "function-approximation": {"hidden": [64, 64], "batch_size": 32, "epochs": 20,
                               "learning_rate": 3e-3},
}

MODELS = ("mlp", "cnn")
#: Above this a learning rate only diverges (Adam's steps are about the rate itself).
MAX_LEARNING_RATE = 10.0


@dataclass
class RunConfig:
    """Every setting of one run; `validate()` rejects bad values with the key's name.

    Attributes:
        benchmark: a benchmark name (see `seql list benchmarks`).
        scenario: `task`, `domain` or `class` (default: the benchmark's own).
        method: the consolidation method (kebab case, e.g. `fisher`).
        ewc_lambda: λ; None takes the method's default.
        epochs: epochs per task.
        batch_size: training batch size.
        learning_rate: Adam's learning rate.
        fisher_mode: `exact`, `sampled`, `empirical` or `batch`.
        fisher_samples: training inputs used to estimate importance.
        penalty_mode: `separate` or `online` (default: the method's own, as its paper defines
            it: `online` for mas and si, `separate` for the others).
        gamma: online decay in (0, 1].
        normalize_importance: divide each task's Ω by its maximum (so λ means the same across
            methods); off by default.
        si_xi: synaptic intelligence's damping ξ > 0.
        weight_change_net: weight change uses |θ_end − θ_start| instead of the path length.
        inverse_magnitude_epsilon: ε > 0 of inverse weight magnitude, Ω = 1 / (|θ| + ε).
        seed: seeds everything; the same config gives the same numbers.
        hidden: sizes of the MLP base's hidden layers.
        num_tasks: tasks of a permuted, rotated, iris-features or function-approximation stream.
        classes_per_task: classes per task of a split stream.
        model: the shared base: `mlp` or `cnn` (conv-pool blocks; image streams only).
        filters: filters of the CNN's conv blocks.
        eval_every: evaluate every task after every k-th epoch of a task (the last epoch of each
            task always).
        eval_subset: evaluate the per-epoch curves on this many validation samples per task (a
            fixed seeded subset; None: all); the accuracy matrix always uses all of them.
        class_order: a split stream's class order: `sorted`, `random` (seeded) or a list.
        angles: a rotated stream's angles in degrees, one per task.
        data: your own arrays, an npz file (benchmarks `split`, `permuted`, `rotated`).
        data_dir: the folder holding Fashion-MNIST, MNIST or CIFAR-10.
        limit: keep only the first `limit` samples of each split of the data set.
        strategy: `default`, `mirrored` (local GPUs) or `multi-worker` (hosts in TF_CONFIG).
        deterministic: turn on TensorFlow's op determinism (bitwise-repeatable runs, slower).
        tensorboard: write TensorBoard logs to `RUN_DIR/tensorboard` (per-task training logs and
            every task's validation metrics against the global epoch).
        plugins: more methods to run with `method`: names, or mappings `{name: ..., option:
            value}` whose options apply to that method alone (`seql list methods`).
        memory: samples of the replay, DER++ or A-GEM buffer (all tasks together).
        memory_batch: samples drawn from the buffer per step (None: the batch size).
        replay_policy: `reservoir` (every sample offered, in the step) or `balanced` (equal per
            class, after each task).
        lwf_alpha: LwF's distillation weight.
        lwf_temperature: LwF's softmax temperature.
        derpp_alpha: DER++'s weight of matching stored logits.
        derpp_beta: DER++'s weight of replayed labels.
        class_masking: in the class-incremental scenario, mask the classes of later tasks out of
            the loss and the accuracy (and record the task-incremental accuracy beside it).

    `epochs`, `batch_size`, `learning_rate`, `hidden`, `num_tasks`, `model` and `ewc_lambda` left
    as None take the benchmark's own value (`BENCHMARK_DEFAULTS`), else `GLOBAL_DEFAULTS` (λ: the
    method's `DEFAULT_LAMBDA`); `validate()` fills them in.
    """

    benchmark: str = "permuted-digits"
    scenario: str | None = None
    method: str = "fisher"
    ewc_lambda: float | None = None
    epochs: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    fisher_mode: str = "exact"
    fisher_samples: int = 1000
    penalty_mode: str | None = None
    gamma: float = 1.0
    normalize_importance: bool = False
    si_xi: float = 0.1
    weight_change_net: bool = False
    inverse_magnitude_epsilon: float = 1e-2
    seed: int = 0
    hidden: list[int] | None = None
    num_tasks: int | None = None
    classes_per_task: int = 2
    model: str | None = None
    filters: list[int] = field(default_factory=lambda: [32, 64])
    eval_every: int = 1
    eval_subset: int | None = None
    class_order: list[int] | str | None = None
    angles: list[float] | None = None
    data: str | None = None
    data_dir: str | None = None
    limit: int | None = None
    tensorboard: bool = False
    strategy: str = "default"
    deterministic: bool = False
    plugins: list[str | dict] = field(default_factory=list)
    memory: int = options.MEMORY.default
    memory_batch: int | None = options.MEMORY_BATCH.default
    replay_policy: str = options.REPLAY_POLICY.default
    lwf_alpha: float = options.LWF_ALPHA.default
    lwf_temperature: float = options.LWF_TEMPERATURE.default
    derpp_alpha: float = options.DERPP_ALPHA.default
    derpp_beta: float = options.DERPP_BETA.default
    class_masking: bool = True

    def validate(self) -> RunConfig:
        """Checks every value; returns self with the method normalised and λ resolved.

        Raises:
            ValueError: naming the key, the value and what is allowed.
        """
        from sequential_learning.data.benchmarks import check_benchmark_options

        check_benchmark_options(self.benchmark, self.scenario, self.data, self.data_dir)
        names = self._method_names()
        self.method = "+".join(names)  # `plugins` included: the run's name says what ran
        method = importance_method(names)
        self._resolve_defaults(method)
        self._check_method_options(names)
        _check(self.ewc_lambda >= 0 and math.isfinite(self.ewc_lambda), "lambda",
               self.ewc_lambda, "a finite number >= 0")
        _check(self.epochs >= 1, "epochs", self.epochs, "an integer >= 1")
        _check(self.batch_size >= 1, "batch_size", self.batch_size, "an integer >= 1")
        _check(math.isfinite(self.learning_rate) and 0 < self.learning_rate <= MAX_LEARNING_RATE,
               "learning_rate", self.learning_rate,
               f"a number in (0, {MAX_LEARNING_RATE:g}] (Adam's usual values are 1e-4 to 1e-2)")
        _check(self.fisher_mode in FISHER_MODES, "fisher_mode", self.fisher_mode,
               f"one of {', '.join(FISHER_MODES)}")
        _check(self.fisher_samples >= 1, "fisher_samples", self.fisher_samples, "an integer >= 1")
        _check(self.penalty_mode in PENALTY_MODES, "penalty_mode", self.penalty_mode,
               f"one of {', '.join(PENALTY_MODES)}")
        _check(0 < self.gamma <= 1, "gamma", self.gamma, "a number in (0, 1]")
        _check(isinstance(self.normalize_importance, bool), "normalize_importance",
               self.normalize_importance, "true or false")
        _check(math.isfinite(self.si_xi) and self.si_xi > 0, "si_xi", self.si_xi,
               "a finite number > 0")
        _check(isinstance(self.weight_change_net, bool), "weight_change_net",
               self.weight_change_net, "true or false")
        _check(math.isfinite(self.inverse_magnitude_epsilon) and self.inverse_magnitude_epsilon > 0,
               "inverse_magnitude_epsilon", self.inverse_magnitude_epsilon, "a finite number > 0")
        _check(len(self.hidden) >= 1 and all(h >= 1 for h in self.hidden), "hidden",
               self.hidden, "one or more layer sizes >= 1")
        _check(self.num_tasks >= 1, "num_tasks", self.num_tasks, "an integer >= 1")
        _check(self.classes_per_task >= 1, "classes_per_task", self.classes_per_task,
               "an integer >= 1")
        _check(self.model in MODELS, "model", self.model, f"one of {', '.join(MODELS)}")
        _check(len(self.filters) >= 1 and all(f >= 1 for f in self.filters), "filters",
               self.filters, "one or more filter counts >= 1")
        _check(_is_int(self.eval_every) and self.eval_every >= 1, "eval_every", self.eval_every,
               "an integer >= 1")
        _check(self.eval_subset is None or (_is_int(self.eval_subset) and self.eval_subset >= 1),
               "eval_subset", self.eval_subset, "an integer >= 1, or null for all samples")
        _check(isinstance(self.tensorboard, bool), "tensorboard", self.tensorboard,
               "true or false")
        from sequential_learning.distribute import STRATEGIES

        _check(self.strategy in STRATEGIES, "strategy", self.strategy,
               f"one of {', '.join(STRATEGIES)}")
        _check(isinstance(self.deterministic, bool), "deterministic", self.deterministic,
               "true or false")
        _check(isinstance(self.class_masking, bool), "class_masking", self.class_masking,
               "true or false")
        _check(self.limit is None or (_is_int(self.limit) and self.limit >= 1), "limit",
               self.limit, "an integer >= 1, or null for all samples")
        _check(self.class_order is None or self.class_order in ("sorted", "random")
               or isinstance(self.class_order, list), "class_order", self.class_order,
               "sorted, random or a list of class ids")
        if self.angles is not None:
            _check(len(self.angles) >= 1 and all(math.isfinite(a) for a in self.angles),
                   "angles", self.angles, "one finite angle in degrees per task")
            _check(self.num_tasks == len(self.angles), "angles", self.angles,
                   f"one angle per task (num_tasks is {self.num_tasks})")
        return self

    def _method_names(self) -> list[str]:
        """Every method this run combines: `method` (names joined with `+`), then those of
        `plugins` it does not name already."""
        _check(isinstance(self.plugins, list), "plugins", self.plugins,
               "a list of method names or {name: ..., option: value} mappings")
        names = split_methods(self.method)
        for item in self.plugins:
            if isinstance(item, dict):
                more = [parse_mapping(item)[0].name]  # its own options checked too
            else:
                _check(isinstance(item, str), "plugins", item, "a method name or a mapping")
                more = split_methods(item)
            names += [name for name in more if name not in names]
        return names

    def _check_method_options(self, names: list[str]) -> None:
        """Checks the run's options of the combined methods (a mapping in `plugins` has its own
        checked by `_method_names`) and that the methods can run together."""
        # The replay, distillation and projection options are checked whatever the method (a
        # bad value is bad even where unused), the others where their method runs.
        checked = {o.name: o for o in _PLUGIN_OPTIONS}
        checked.update(method_options(names))
        for name, option in checked.items():
            if hasattr(self, name) and name not in _OWN_CHECKS:
                option.validate(getattr(self, name))
        # The plugins' own check, on the registry's families (no TensorFlow here); `none`
        # makes no plugin.
        check_families([(n, method_spec(n).family) for n in names if n != "none"])

    def methods(self) -> list[str | dict]:
        """The method specification the manager takes: each method's name, or its mapping in
        `plugins` (with options of its own)."""
        own = {method_spec(p["name"]).name: p for p in self.plugins if isinstance(p, dict)}
        return [own.get(name, name) for name in self._method_names()]

    def _resolve_defaults(self, method: EWCMethod) -> None:
        """Fills the values left as None: the benchmark's own, else the global default."""
        own = BENCHMARK_DEFAULTS.get(self.benchmark, {})
        used = dict(getattr(self, "defaults_used", {}))
        if self.num_tasks is None and self.angles is not None:
            self.num_tasks = len(self.angles)
            used["num_tasks"] = "angles"
        for key, fallback in GLOBAL_DEFAULTS.items():
            if getattr(self, key) is None:
                setattr(self, key, copy.deepcopy(own.get(key, fallback)))
                used[key] = f"benchmark {self.benchmark}" if key in own else "default"
        if self.ewc_lambda is None:
            lambdas = own.get("ewc_lambda", {})
            if method.value in lambdas:
                self.ewc_lambda = float(lambdas[method.value])
                used["ewc_lambda"] = f"benchmark {self.benchmark}"
            else:
                self.ewc_lambda = DEFAULT_LAMBDA.get(method, 1.0)
                used["ewc_lambda"] = f"method {method.value}"
        if self.penalty_mode is None:
            from sequential_learning.importance import default_penalty_mode

            self.penalty_mode = default_penalty_mode(method)
            used["penalty_mode"] = f"method {method.value}"
        #: Where each value that was not set explicitly came from.
        self.defaults_used = used

    def method_options(self) -> dict:
        """The methods' settings beyond the Fisher's (each method takes the ones it knows)."""
        return {
            "xi": self.si_xi,
            "net": self.weight_change_net,
            "epsilon": self.inverse_magnitude_epsilon,
            **{key: getattr(self, key) for key in _PLUGIN_KEYS},
        }

    def to_dict(self) -> dict:
        """The resolved settings as a JSON-ready dict."""
        return dataclasses.asdict(self)


#: `RunConfig` fields that are options of the replay, distillation and projection methods.
_PLUGIN_OPTIONS = (options.MEMORY, options.MEMORY_BATCH, options.REPLAY_POLICY, options.LWF_ALPHA,
                   options.LWF_TEMPERATURE, options.DERPP_ALPHA, options.DERPP_BETA)
_PLUGIN_KEYS = tuple(o.name for o in _PLUGIN_OPTIONS)
#: Options `validate` checks itself (λ and the penalty's settings, resolved from defaults).
_OWN_CHECKS = ("ewc_lambda", "fisher_samples", "penalty_mode", "gamma", "normalize_importance",
               "fisher_mode")


def importance_method(names: list[str]) -> EWCMethod:
    """The weight-importance method among the method `names` (EWCMethod.NONE when none is).

    Example:
    ```python
    importance_method(["fisher", "replay"])     # EWCMethod.FISHER_MATRIX
    ```
    """
    for name in names:
        try:
            method = parse_method(name)
        except ValueError:
            continue
        if method is not EWCMethod.NONE:
            return method
    return EWCMethod.NONE


def _check(ok: bool, key: str, value, allowed: str) -> None:
    if not ok:
        raise ValueError(f"{key}: {value!r} is not allowed; expected {allowed}")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# -- config files ----------------------------------------------------------------------------------
#: Keys a config file may hold besides `RunConfig`'s fields: options of the command itself.
COMMAND_KEYS: dict[str, object] = {
    "out": str | None,
    "methods": list[str] | str,
    "verbose": bool,
    "lambdas": list[float] | None,
    "lambda_range": list[float] | None,
    "points": int,
}
_KEY_ALIASES = {"lambda": "ewc_lambda"}


def _type_name(hint) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(hint))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(hint)[0]).removeprefix('a ').removeprefix('an ')}s"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false",
            type(None): "null"}.get(hint, str(hint))


def _matches(value, hint) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in typing.get_args(hint))
    if origin is list:
        return isinstance(value, list) and all(_matches(v, typing.get_args(hint)[0]) for v in value)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return _is_int(value)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, hint)


def config_keys() -> dict[str, object]:
    """Every key a config file may hold, with its type: `RunConfig`'s fields and `COMMAND_KEYS`."""
    hints = typing.get_type_hints(RunConfig)
    return {**{f.name: hints[f.name] for f in dataclasses.fields(RunConfig)}, **COMMAND_KEYS}


def load_config_file(path: str | os.PathLike) -> dict:
    """Reads a YAML experiment config (with `yaml.safe_load`) and checks its keys and types.

    Keys are `RunConfig`'s fields (`batch_size` or `batch-size`; `lambda` for `ewc_lambda`) and
    the command's own options (`out`, `methods`, ...). Ranges are checked by `RunConfig.validate`.

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
    config = RunConfig(**{k: v for k, v in values.items() if k not in COMMAND_KEYS})
    ```
    """
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"config: {path} does not exist") from None
    except UnicodeDecodeError as error:
        raise ValueError(f"config: {path} is not UTF-8 text (byte {error.start}); expected a "
                         "YAML file") from None
    except OSError as error:
        raise ValueError(f"config: {path} could not be read: {error}") from None
    try:
        doc = yaml.load(text, Loader=_loader())  # a SafeLoader: no tags that run code
    except yaml.YAMLError as error:
        raise ValueError(f"config: {path} is not valid YAML: {' '.join(str(error).split())}") from None
    except RecursionError:
        raise ValueError(f"config: {path} is nested too deeply; expected a flat mapping of "
                         "keys to values") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ValueError(f"config: {path} must hold a mapping of keys to values, got "
                         f"{type(doc).__name__}")
    allowed = config_keys()
    values = {}
    for raw_key, value in doc.items():
        key = _KEY_ALIASES.get(str(raw_key), str(raw_key).replace("-", "_"))
        if key not in allowed:
            raise ValueError(f"config {path}: unknown key {raw_key!r}; allowed keys: "
                             + ", ".join(sorted(allowed)))
        if not _matches(value, allowed[key]):
            raise ValueError(f"config {path}: {key}: {value!r} is not allowed; expected "
                             f"{_type_name(allowed[key])}")
        if allowed[key] in (float, float | None) and _is_int(value):
            value = float(value)
        values[key] = value
    return values


def _loader() -> type:
    """`yaml.SafeLoader` that reads numbers as YAML 1.2 does: `1.0e6`, `1e-3` and `1e6` are
    floats (YAML 1.1, PyYAML's default, wants a dot and a sign: `1.0e+6`)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.yaml_implicit_resolvers = {
        k: [(tag, regex) for tag, regex in v if tag != "tag:yaml.org,2002:float"]
        for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                    |[-+]?\.(?:inf|Inf|INF)
                    |\.(?:nan|NaN|NAN))$""", re.X),
        list("-+0123456789."),
    )
    return Loader


def default_run_dir(config: RunConfig, root: str | Path = "runs") -> Path:
    """`runs/<timestamp>-<benchmark>-<method>` (a fresh, not yet existing folder)."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{config.benchmark}-{config.method}")
    path = Path(root) / f"{stamp}-{name}"
    k = 1
    while path.exists():
        k += 1
        path = Path(root) / f"{stamp}-{name}-{k}"
    return path


def run_experiment(config: RunConfig, out_dir: str | Path | None = None,
                   progress: bool | str = False, resume: bool = False,
                   overwrite: bool = False):
    """Builds the benchmark, model and tasks of `config`, trains them and writes the outputs.

    Models, optimizers and consolidation state are created under the strategy's scope
    (`config.strategy`); under `multi-worker` only the chief (worker 0) writes `out_dir`, the
    others write `out_dir/worker_K`.

    Args:
        config: the run's settings (validated here).
        out_dir: where results, models and figures go (None: nothing is written).
        progress: show a progress line (a string is used as its prefix).
        resume: continue the run in `out_dir` from its last finished task.
        overwrite: replace a run already in `out_dir` (without it, a folder that holds files is
            refused: a run folder never mixes two runs; see `rundir.claim_run_dir`).

    Returns:
        The run's `Results`.

    Example:
    ```python
    results = run_experiment(RunConfig(benchmark="split-digits", method="fisher"), "runs/x")
    ```
    """
    import keras

    from sequential_learning import plots
    from sequential_learning.data.benchmarks import make_benchmark
    from sequential_learning.manager import SequentialLearningManager
    from sequential_learning.models import cnn_base, mlp_base
    from sequential_learning.tasks import tasks_from_benchmark

    config.validate()
    from sequential_learning.distribute import make_strategy, worker_index

    strategy = make_strategy(config.strategy)
    if config.deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    if out_dir is not None and worker_index(strategy) > 0:
        out_dir = Path(out_dir) / f"worker_{worker_index(strategy)}"
        progress = False
    if config.tensorboard and out_dir is None:
        raise ValueError("tensorboard: true needs an output directory for the logs")
    if out_dir is not None and not resume:
        from sequential_learning.rundir import claim_run_dir

        # Under multi-worker the other workers write their own worker_K folders inside the
        # chief's, each claiming its own.
        claim_run_dir(out_dir, overwrite=overwrite, others=r"worker_\d+")
    stream = make_benchmark(
        config.benchmark, config.scenario, config.seed, config.num_tasks, config.classes_per_task,
        data=config.data, data_dir=config.data_dir, limit=config.limit,
        class_order=config.class_order, angles=config.angles,
    )
    if config.model == "cnn" and len(stream.input_shape) != 3:
        raise ValueError(f"model: cnn needs images shaped (H, W, C); {config.benchmark} has inputs "
                         f"shaped {tuple(stream.input_shape)}; use model mlp")
    # The same seed gives the same initial weights for every method.
    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        if config.model == "cnn":
            base = cnn_base(stream.input_shape, config.filters)
        else:
            base = mlp_base(stream.input_shape, config.hidden)
        tasks = tasks_from_benchmark(stream, base, config.batch_size, config.seed,
                                     mask_classes=config.class_masking)
    if out_dir is not None and not resume:
        import yaml

        from sequential_learning.results import atomic_write_text

        # The resolved settings: `seql run --config <run>/config.yaml` repeats the run.
        atomic_write_text(Path(out_dir) / "config.yaml",
                          yaml.safe_dump(config.to_dict(), sort_keys=False))
    manager = SequentialLearningManager(
        base,
        tasks,
        method=config.methods(),
        ewc_lambda=float(config.ewc_lambda),
        epochs=config.epochs,
        seed=config.seed,
        learning_rate=config.learning_rate,
        fisher_mode=config.fisher_mode,
        fisher_samples=config.fisher_samples,
        penalty_mode=config.penalty_mode,
        gamma=config.gamma,
        normalize_importance=config.normalize_importance,
        method_options=config.method_options(),
        out_dir=out_dir,
        progress=progress,
        config={**config.to_dict(), "defaults_used": getattr(config, "defaults_used", {}),
                "benchmark_info": stream.describe()},
        eval_every=config.eval_every,
        eval_subset=config.eval_subset,
        tensorboard_dir=Path(out_dir) / "tensorboard" if config.tensorboard else None,
        strategy=strategy,
        scenario=stream.scenario,
    )
    results = manager.train_all(resume=resume)
    if out_dir is not None:
        plots.task_curves(results, Path(out_dir) / "task_curves.png")
        plots.accuracy_matrix(results, Path(out_dir) / "accuracy_matrix.png")
        if manager.penalty is not None:
            plots.importance_histogram(
                {
                    getattr(v, "path", f"variable_{i}"): o.numpy()
                    for i, (v, o) in enumerate(zip(manager.covered, manager.penalty.importance))
                },
                Path(out_dir) / "importance.png",
                title=f"{config.method}: Ω held by the penalty after the last task",
            )
        from sequential_learning.report import write_report

        write_report(out_dir)  # report.html: everything above in one self-contained file
    return results
