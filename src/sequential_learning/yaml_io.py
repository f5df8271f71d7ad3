"""YAML read safely: `yaml.SafeLoader` (no tags that run code), numbers as YAML 1.2 reads them,
every problem one line naming the file (config files, the tuned defaults in `defaults/`)."""

from __future__ import annotations

import functools
import re
from pathlib import Path


def read_yaml(path: Path, what: str) -> dict:
    """A YAML mapping read safely, numbers as YAML 1.2 reads them ({} for an empty file).

    Read with a `yaml.SafeLoader` (no tags that run code) whose floats include `1e-3` and `1e6`
    (YAML 1.1, PyYAML's default, reads those as strings).

    Args:
        path: the file.
        what: what the file is, for messages (`"config"`, `"defaults"`).

    Returns:
        The mapping as a dict.

    Raises:
        ValueError: one line naming `what` and the file: missing, unreadable, not UTF-8, not
            YAML, nested too deeply or not a mapping.

    Example:
    ```python
    read_yaml(Path("examples/permuted_fashion_mnist.yaml"), "config")["benchmark"]
    ```
    """
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"{what}: {path} does not exist") from None
    except UnicodeDecodeError as error:
        raise ValueError(f"{what}: {path} is not UTF-8 text (byte {error.start}); expected a "
                         "YAML file") from None
    except OSError as error:
        raise ValueError(f"{what}: {path} could not be read: {error}") from None
    try:
        doc = yaml.load(text, Loader=_loader())  # a SafeLoader: no tags that run code
    except yaml.YAMLError as error:
        raise ValueError(f"{what}: {path} is not valid YAML: {' '.join(str(error).split())}") from None
    except RecursionError:
        raise ValueError(f"{what}: {path} is nested too deeply; expected a flat mapping of "
                         "keys to values") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ValueError(f"{what}: {path} must hold a mapping of keys to values, got "
                         f"{type(doc).__name__}")
    return doc


@functools.cache
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
