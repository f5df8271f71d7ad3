"""`Option`: one setting declared once, with its default, type, check and help.

A method's options (`plugins.registry`, `importance`) and a run's settings (`config.RunConfig`)
are `Option`s; the `seql` flags, the config-file checks and `seql list methods` are generated from
them. This module imports nothing of the package (and no TensorFlow).
"""

from __future__ import annotations

import argparse
import math
import numbers
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


def is_int(value: Any) -> bool:
    """Whether `value` is an integer that is not a bool (NumPy integers count).

    Args:
        value: any value, e.g. one read from YAML.

    Returns:
        True for `3` or `np.int64(3)`, False for `True`, `3.0` or `"3"`.

    Example:
    ```python
    is_int(3), is_int(True), is_int(3.0)    # (True, False, False)
    ```
    """
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """Whether `value` is a finite real number that is not a bool.

    Args:
        value: any value.

    Returns:
        True for ints and floats (NumPy's too) other than nan and ±inf; False for bools.

    Example:
    ```python
    is_number(0.5), is_number(float("inf")), is_number(False)    # (True, False, False)
    ```
    """
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _anything(value: Any) -> bool:
    return True


@dataclass(frozen=True)
class Option:
    """One keyword option of a method (or one setting of a run), with its default and its check.

    Args:
        name: the keyword (snake case) the method's factory takes.
        default: its value when not given.
        help: one line.
        check: returns whether a value is allowed.
        expected: what is allowed, for the error message ("an integer >= 1").
        flag: its `seql` option when that is not `--` + the key in kebab case; "" when the
            command line has none (Python and config files only).
        unset: what a default of None means, for listings ("the batch size").
        key: its config key (and `RunConfig` field) when that is not `name` (`si_xi` for `xi`).
        type: its type as a hint (`int`, `float | None`, `list[int]`): the config-file check
            and the flag's parser; None: the default's type.
        choices: the values allowed, shown by `--help` and checked by the parser.
        metavar: the flag's value in `--help`.
        nargs: values the flag takes when more than one.

    Example:
    ```python
    xi = Option("xi", 0.1, "damping", lambda v: is_number(v) and v > 0, "a number > 0", key="si_xi")
    xi.cli_flag, xi.validate(0.5)    # ('--si-xi', 0.5)
    ```
    """

    name: str
    default: Any
    help: str
    check: Callable[[Any], bool] = _anything
    expected: str = "any value"
    flag: str | None = None
    unset: str = "none"
    key: str | None = None
    type: Any = None
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    nargs: int | None = None

    @property
    def config_key(self) -> str:
        """The key in config files and `RunConfig` (`key`, else `name`)."""
        return self.key or self.name

    @property
    def cli_flag(self) -> str:
        """The `seql` option that sets it ("" for none)."""
        return self.flag if self.flag is not None else "--" + self.config_key.replace("_", "-")

    @property
    def hint(self) -> Any:
        """`type`, else the type of the default (`str` for None)."""
        if self.type is not None:
            return self.type
        return str if self.default is None else type(self.default)

    def validate(self, value: Any, label: str | None = None) -> Any:
        """Returns `value` if allowed, else raises ValueError naming the option (or `label`)."""
        if not self.check(value):
            raise ValueError(f"{label or self.config_key}: {value!r} is not allowed; expected "
                             f"{self.expected}")
        return value


def int_option(name: str, default, help: str, low: int = 1, none: bool = False,
               flag: str | None = None, unset: str = "none", key: str | None = None) -> Option:
    """An integer option >= `low` (None allowed when `none`).

    Args:
        name: the keyword the method takes.
        default: its value when not given.
        help: one line.
        low: the smallest value allowed.
        none: allow None (its type is then `int | None`).
        flag, unset, key: as for `Option`.

    Returns:
        The `Option`, its type `int` (or `int | None`).

    Example:
    ```python
    memory = int_option("memory", 500, "samples the buffer holds")
    memory.validate(0)    # ValueError: memory: 0 is not allowed; expected an integer >= 1
    ```
    """
    expected = f"an integer >= {low}" + (", or null" if none else "")
    return Option(name, default, help,
                  lambda v: (none and v is None) or (is_int(v) and v >= low), expected, flag,
                  unset, key, int | None if none else int)


def float_option(name: str, default, help: str, low: float = 0.0, strict: bool = False,
                 flag: str | None = None, unset: str = "none", key: str | None = None,
                 high: float | None = None) -> Option:
    """A finite number option >= `low` (> `low` when `strict`), <= `high` when given.

    Args:
        name: the keyword the method takes.
        default: its value when not given.
        help: one line.
        low: the lower bound.
        strict: exclude `low` itself.
        flag, unset, key: as for `Option`.
        high: the upper bound (included), or None for none.

    Returns:
        The `Option`, its type `float`.

    Example:
    ```python
    gamma = float_option("gamma", 1.0, "online decay", high=1.0)
    gamma.expected    # 'a number in [0, 1]'
    ```
    """
    if high is None:
        expected = f"a finite number {'>' if strict else '>='} {low:g}"
    else:
        expected = f"a number in {'(' if strict else '['}{low:g}, {high:g}]"
    return Option(name, default, help,
                  lambda v: is_number(v) and (v > low if strict else v >= low)
                  and (high is None or v <= high), expected, flag, unset, key, float)


def choice_option(name: str, default, help: str, choices: Sequence[str],
                  flag: str | None = None, unset: str = "none", key: str | None = None) -> Option:
    """An option whose value is one of `choices` (None too when the default is None).

    Args:
        name: the keyword the method takes.
        default: its value when not given; None makes its type `str | None`.
        help: one line.
        choices: the allowed strings.
        flag, unset, key: as for `Option`.

    Returns:
        The `Option`, with `choices` set (so `--help` lists them and the parser checks them).

    Example:
    ```python
    mode = choice_option("fisher_mode", "exact", "the Fisher information", ("exact", "sampled"))
    mode.validate("sampled")    # 'sampled'
    ```
    """
    return Option(name, default, help, lambda v: v in choices, f"one of {', '.join(choices)}",
                  flag, unset, key, str | None if default is None else str, tuple(choices))


def bool_option(name: str, default: bool, help: str, flag: str | None = None,
                key: str | None = None) -> Option:
    """A true-or-false option; its flag turns it on (or off, when the default is True).

    Args:
        name: the keyword the method takes.
        default: its value when not given.
        help: one line.
        flag, key: as for `Option`.

    Returns:
        The `Option`, its type `bool`.

    Example:
    ```python
    net = bool_option("net", False, "|theta_end - theta_start|", key="weight_change_net")
    net.cli_flag    # '--weight-change-net'
    ```
    """
    return Option(name, default, help, lambda v: isinstance(v, bool), "true or false", flag,
                  key=key, type=bool)


# -- type hints: config-file checks --------------------------------------------------------------
def _is_union(hint) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def type_name(hint) -> str:
    """A type hint in words, for error messages.

    Args:
        hint: a type hint: `int`, `float`, `str`, `bool`, None's type, `list[X]` or a union of them.

    Returns:
        The words, e.g. "an integer or null"; other types as `str(hint)`.

    Example:
    ```python
    type_name(int | None), type_name(list[int])    # ('an integer or null', 'a list of integers')
    ```
    """
    if _is_union(hint):
        return " or ".join(type_name(a) for a in typing.get_args(hint))
    if typing.get_origin(hint) is list:
        inner = type_name(typing.get_args(hint)[0]).removeprefix("a ").removeprefix("an ")
        return f"a list of {inner}s"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false",
            type(None): "null"}.get(hint, str(hint))


def matches(value, hint) -> bool:
    """Whether a value read from YAML has the type `hint` (an integer is a number too).

    Args:
        value: the value.
        hint: a type hint as `type_name` takes it (unions and `list[X]` are checked member by
            member; other classes with `isinstance`).

    Returns:
        True when `value` fits `hint`; a bool never fits `int` or `float`.

    Example:
    ```python
    matches(3, float), matches([1, 2], list[int]), matches(True, int)    # (True, True, False)
    ```
    """
    if _is_union(hint):
        return any(matches(value, a) for a in typing.get_args(hint))
    if typing.get_origin(hint) is list:
        return isinstance(value, list) and all(matches(v, typing.get_args(hint)[0])
                                               for v in value)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return is_int(value)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, hint)


def is_float_hint(hint) -> bool:
    """Whether `hint` is `float` or a union with `float` (integers given for it become floats).

    Args:
        hint: a type hint.

    Returns:
        True for `float` and `float | None`, False otherwise.

    Example:
    ```python
    is_float_hint(float | None), is_float_hint(int)    # (True, False)
    ```
    """
    return hint is float or (_is_union(hint) and float in typing.get_args(hint))


def scalar(hint) -> Any:
    """The non-None member of `X | None` (else `hint` itself).

    Args:
        hint: a type hint.

    Returns:
        `X` for `X | None`; `hint` unchanged when it is no union or has more than one other member.

    Example:
    ```python
    scalar(int | None), scalar(list[int])    # (int, list[int])
    ```
    """
    if _is_union(hint):
        rest = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return hint


# -- command-line flags ----------------------------------------------------------------------------
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


def _ids_or_word(text: str) -> list[int] | str:
    return text.strip() if text.strip() in ("sorted", "random") else _int_list(text)


def value_text(value) -> str:
    """A value as a flag would take it, for help texts and listings.

    Args:
        value: a setting's value.

    Returns:
        A list comma-joined (`100,100`), a float with `:g` (`0.001`), anything else as `str`.

    Example:
    ```python
    value_text([100, 100]), value_text(1e-3), value_text(None)    # ('100,100', '0.001', 'None')
    ```
    """
    if isinstance(value, list):
        return ",".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def flag_arguments(option: Option, prefix: str = "", default: str | None = None) -> dict:
    """`argparse.add_argument`'s keywords for `option`'s flag.

    No default (`argparse.SUPPRESS`: only the flags given are set), the parser of its type (a
    comma-separated list for `list[int]` and `list[float]`; class ids or `sorted`/`random` for
    `list[int] | str`), its choices, metavar and nargs, and its help with its default. A bool
    option becomes a `store_true` flag (`store_false` when its default is True).

    Args:
        option: the option.
        prefix: text put before the help (the methods it belongs to, `"fisher, mas: "`).
        default: the default as shown in the help, instead of the option's own.

    Returns:
        A dict of keywords: `dest`, `default`, `help`, and `type` or `action`, with `choices`,
        `metavar` and `nargs` where the option has them.

    Example:
    ```python
    parser.add_argument(option.cli_flag, **flag_arguments(option))
    ```
    """
    hint = scalar(option.hint)
    kwargs: dict[str, Any] = {"dest": option.config_key, "default": argparse.SUPPRESS}
    if hint is bool:
        kwargs["action"] = "store_false" if option.default else "store_true"
        off = "" if option.default else " (off by default)"
        kwargs["help"] = f"{prefix}{option.help}{off}".replace("%", "%%")
        return kwargs
    if default is None:
        default = option.unset if option.default is None else value_text(option.default)
    shown = "" if default == "none" else f" (default: {default})"
    kwargs["help"] = f"{prefix}{option.help}{shown}".replace("%", "%%")
    parse = {str(list[int]): _int_list, str(list[float]): _float_list}.get(str(hint))
    if {list[int], str} <= set(typing.get_args(option.hint)):
        parse = _ids_or_word
    kwargs["type"] = float if option.nargs else parse or (hint if hint in (int, float) else str)
    for key in ("choices", "metavar", "nargs"):
        if getattr(option, key) is not None:
            kwargs[key] = list(option.choices) if key == "choices" else getattr(option, key)
    return kwargs
