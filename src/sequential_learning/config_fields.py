"""How `config.RunConfig`'s fields are declared: the run's own settings and the choices they allow.

A field is either a run setting declared here with `setting` (its help, check and flag), or an
`Option` declared elsewhere and held with `declared` (a method's option, `plugins.registry` and
`importance`; the stream's, `config_online`). `config.run_options` turns both into `Option`s.
This module imports nothing of the package but `options`.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any

from sequential_learning.options import Option, is_int

MODELS = ("mlp", "cnn", "resnet18")
#: The optimizers of `optimizers.make_optimizer` (SGD without momentum, as Mammoth's default).
OPTIMIZERS = ("adam", "sgd")
#: Input augmentations (`augmentation.input_preprocessing`): none, or Mammoth's CIFAR training
#: transform (random crop with 4 pixels of padding, random horizontal flip; training only).
AUGMENTATIONS = ("none", "crop-flip")
#: Above this a learning rate only diverges (Adam's steps are about the rate itself).
MAX_LEARNING_RATE = 10.0


def setting(default: Any = None, help: str = "", check=None, expected: str = "",
            factory=None, **cli) -> Any:
    """A `RunConfig` field and its declaration.

    Args:
        default: the field's default (None: unset).
        help: one line, for `seql run --help`.
        check: returns whether a value is allowed (None: anything).
        expected: what is allowed, for the error message.
        factory: makes the default (a list or dict), instead of `default`.
        **cli: more of `Option`'s arguments: `flag`, `unset`, `choices`, `metavar`, ...

    Returns:
        A dataclass field whose metadata holds the declaration (`"spec"`).

    Example:
    ```python
    seed: int = setting(0, "seeds everything", **ints(0))
    ```
    """
    spec = {"help": help, "check": check or (lambda v: True), "expected": expected, **cli}
    if factory is not None:
        return field(default_factory=factory, metadata={"spec": spec})
    return field(default=default, metadata={"spec": spec})


def declared(option: Option) -> Any:
    """A `RunConfig` field holding an `Option` declared elsewhere (a method's, the stream's).

    Args:
        option: the declaration; its default is the field's.

    Returns:
        A dataclass field whose metadata holds the option (`"option"`).

    Example:
    ```python
    memory: int = declared(MEMORY)
    ```
    """
    return field(default=option.default, metadata={"option": option})


def ints(low: int, none: str = "") -> dict:
    """The check of an integer >= `low` (None allowed when `none` says what it means).

    Args:
        low: the smallest value allowed.
        none: what None means ("all samples"); "" when None is not allowed.

    Returns:
        `{"check": ..., "expected": ...}` for `setting`.

    Example:
    ```python
    ints(1, "all samples")["expected"]   # 'an integer >= 1, or null for all samples'
    ```
    """
    return {"check": lambda v: (bool(none) and v is None) or (is_int(v) and v >= low),
            "expected": f"an integer >= {low}" + (f", or null for {none}" if none else "")}


def sizes(what: str) -> dict:
    """The check of a list of one or more integers >= 1 (None allowed).

    Args:
        what: the items, for the message ("layer sizes").

    Returns:
        `{"check": ..., "expected": ...}` for `setting`.

    Example:
    ```python
    sizes("layer sizes")["expected"]     # 'one or more layer sizes >= 1'
    ```
    """
    return {"check": lambda v: v is None or (isinstance(v, list) and len(v) >= 1
                                             and all(is_int(h) and h >= 1 for h in v)),
            "expected": f"one or more {what} >= 1"}


#: The check of true or false, for `setting`.
BOOL = {"check": lambda v: isinstance(v, bool), "expected": "true or false"}
