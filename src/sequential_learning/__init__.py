"""sequential_learning: continual learning for Keras 3."""

from sequential_learning._tf import quiet_tensorflow

quiet_tensorflow(verbose=bool(__import__("os").environ.get("SEQL_VERBOSE")))

__version__ = "0.1.0"
