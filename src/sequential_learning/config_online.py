"""The settings of online and task-free runs, declared once, and the rules a run's config obeys.

`online`, `boundaries`, `eval_every_samples` and `blur_window` are fields of `config.RunConfig`
(`declared` there); `resolve_online` is the part of `RunConfig.validate` that applies to them:
an online run is one pass (epochs 1, batch size 10 unless given), the settings that apply only
online (or only to blurry boundaries) are refused elsewhere, and a task-free stream has no class
masks (see `sequential_learning.online` for how such a run trains, `data.blurry` for its order).
"""

from __future__ import annotations

from typing import Any

from sequential_learning.config_fields import BOOL, ints
from sequential_learning.data.benchmarks import BENCHMARKS
from sequential_learning.data.blurry import BOUNDARIES, ONLINE_BATCH_SIZE
from sequential_learning.options import Option, is_int

ONLINE = Option("online", False, "one pass over each task's data (epochs 1, batch size 10 unless "
                "given), every task evaluated along the stream", type=bool, **BOOL)
STREAM_BOUNDARIES = Option(
    "boundaries", "tasks", "tasks (announced), none (task-free: the methods see one experience) "
    "or blurry (task-free, tasks blend over --blur-window samples); none and blurry need "
    "--online", lambda v: v in BOUNDARIES, f"one of {', '.join(BOUNDARIES)}", type=str,
    choices=BOUNDARIES)
EVAL_EVERY_SAMPLES = Option(
    "eval_every_samples", None, "online: evaluate every task every N training samples (and at "
    "each task's end)", unset="about 10 points per task", type=int | None,
    **ints(1, "about 10 points per task"))
BLUR_WINDOW = Option(
    "blur_window", None, "boundaries blurry: samples over which two tasks blend (even)",
    lambda v: v is None or (is_int(v) and v >= 2 and v % 2 == 0),
    "an even integer >= 2, or null for a fifth of the smallest task",
    unset="a fifth of the smallest task", type=int | None)
#: The stream's settings, in `RunConfig`'s order.
STREAM_OPTIONS = (ONLINE, STREAM_BOUNDARIES, EVAL_EVERY_SAMPLES, BLUR_WINDOW)


def resolve_online(config: Any, options: dict[str, Option]) -> None:
    """Applies the rules of online and task-free runs to a config being validated.

    An online run's epochs are 1 and its batch size 10 unless the run gives them; the settings
    that apply only online (or only blurry) are refused elsewhere, and a task-free stream has no
    class masks (its head covers every class from the first sample, as Mammoth's
    general-continual setting; see `sequential_learning.online`). What is filled in is recorded
    in `config.defaults_used`.

    Args:
        config: the `RunConfig` being validated (changed in place); its `given_keys` (when set)
            and the method defaults already applied say which values are the run's own.
        options: `config.run_options()`: every setting's `Option`, for the checks and defaults.

    Raises:
        ValueError: one line naming the setting and what is expected.

    Example:
    ```python
    config = RunConfig(online=True)
    resolve_online(config, run_options())
    config.epochs, config.batch_size      # (1, 10)
    ```
    """
    for key in ("online", "boundaries", "eval_every_samples", "blur_window", "epochs",
                "batch_size", "class_masking"):
        if getattr(config, key) is not None:  # epochs and batch size: None until resolved
            options[key].validate(getattr(config, key))
    given = getattr(config, "given_keys", None)
    filled = getattr(config, "_method_defaults_applied", {})
    used = dict(getattr(config, "defaults_used", {}))

    def own(key: str) -> bool:  # the run's own value, not one filled in by a default
        if key in filled and getattr(config, key) == filled[key]:
            return False
        return key in given if given is not None else getattr(config, key) != options[key].default

    if not config.online:
        if config.boundaries != "tasks":
            raise ValueError(f"boundaries: {config.boundaries} needs online: true (a task-free "
                             "stream is one pass over the data); add --online")
        if config.eval_every_samples is not None:
            raise ValueError("eval_every_samples: applies to online runs only (offline runs "
                             "are evaluated after epochs: eval_every); add --online")
    if config.blur_window is not None and config.boundaries != "blurry":
        raise ValueError(f"blur_window: applies to boundaries blurry only (this run has "
                         f"boundaries {config.boundaries})")
    if config.online:
        if own("epochs") and config.epochs != 1:
            raise ValueError(f"epochs: {config.epochs} is not allowed with online: true; an "
                             "online run is one pass over each task's data (epochs 1)")
        for key, value in (("epochs", 1), ("batch_size", ONLINE_BATCH_SIZE)):
            if not own(key):
                setattr(config, key, value)
                used[key] = "online"
    if config.boundaries != "tasks":
        scenario = config.scenario or BENCHMARKS[config.benchmark].default_scenario
        if scenario == "task":
            raise ValueError(f"boundaries: {config.boundaries} needs one head for every task "
                             f"(scenario domain or class); {config.benchmark} is "
                             "task-incremental here: add --scenario class or domain")
        if config.class_masking:
            if own("class_masking"):
                raise ValueError(f"class_masking: true does not apply to a task-free stream "
                                 f"(boundaries {config.boundaries}): its head covers every "
                                 "class from the first sample; leave it unset")
            config.class_masking = False
            used["class_masking"] = f"boundaries {config.boundaries}"
    config.defaults_used = used
