"""Occlusion sensitivity (Zeiler & Fergus 2014), batched.

Every image is covered by a grid of patches; each patch in turn is replaced by a baseline and the
model's probability for the target class is measured again. The map at a pixel is the **mean**
drop in that probability over all patches that cover the pixel (overlapping patches are averaged,
never overwritten). Patch positions run from 0 in steps of `stride`; when the last step does not
reach the bottom or right edge, one more patch is placed flush with that edge, so every pixel is
covered at least once. A stride larger than the patch would leave pixels between patches that no
patch covers (their map value would be 0 / 0); it is refused with a `SeqlError` rather than
filled with an invented value.

All occluded variants of all images are evaluated in batches by one compiled function
(`backend.ops().compiled`, on every backend; `keras.ops` inside): there is no Python loop over
patches.

Probabilities are `softmax(logits)`; for a model that ends in a softmax that is its output (the
softmax is taken from the logits, see `interpret/base.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from sequential_learning import backend
from sequential_learning.errors import SeqlError
from sequential_learning.interpret import base
from sequential_learning.interpret.probe import compile_for, fixed_batches, pad_rows


def check_stride(patch: tuple[int, int], stride: tuple[int, int]) -> None:
    """Refuses a stride that leaves gaps between patches.

    Args:
        patch: the patch's `(height, width)`.
        stride: the step between patches, `(rows, cols)`.

    Raises:
        SeqlError: a stride larger than the patch along either axis (the pixels between two
            patches would be covered by none, so their sensitivity would be unknown).

    Example:
    ```python
    >>> check_stride((3, 3), (2, 3))      # fine: overlapping rows, adjacent columns
    >>> check_stride((2, 2), (3, 3))      # SeqlError
    ```

    Returns:
        None.
    """
    for axis, p, s in (("rows", patch[0], stride[0]), ("columns", patch[1], stride[1])):
        if s > p:
            raise SeqlError(
                f"occlusion: `stride` {tuple(stride)} is larger than `patch_size` {tuple(patch)} "
                f"along the {axis}, so some pixels would be covered by no patch; use a stride no "
                f"larger than the patch (e.g. stride={p}, or a patch of at least {s})"
            )


def patch_positions(size: int, patch: int, stride: int) -> np.ndarray:
    """Start offsets of the patches along one axis.

    Args:
        size: the image's size along the axis.
        patch: the patch's size along the axis (at most `size`).
        stride: the step between patches.

    Returns:
        `0, stride, 2 * stride, ...` up to `size - patch`, with `size - patch` appended when the
        steps stop short of it (so the far edge is covered).

    Example:
    ```python
    >>> patch_positions(7, 3, 2).tolist()
    [0, 2, 4]
    >>> patch_positions(8, 3, 2).tolist()
    [0, 2, 4, 5]
    ```
    """
    starts = np.arange(0, size - patch + 1, stride)
    if starts[-1] != size - patch:
        starts = np.append(starts, size - patch)
    return starts


def occlusion_masks(
    height: int, width: int, patch_size: tuple[int, int], stride: tuple[int, int]
) -> np.ndarray:
    """Boolean masks of every patch position, shape `(P, height, width)` (True = occluded).

    Args:
        height: the image's height.
        width: the image's width.
        patch_size: `(patch height, patch width)`.
        stride: `(vertical step, horizontal step)`.

    Returns:
        A boolean array `(P, height, width)`, one mask per patch position.

    Raises:
        SeqlError: a stride larger than the patch (see `check_stride`).

    Example:
    ```python
    occlusion_masks(8, 8, (4, 4), (4, 4)).shape   # (4, 8, 8)
    ```
    """
    check_stride(tuple(patch_size), tuple(stride))
    (ph, pw), (sh, sw) = patch_size, stride
    rows, cols = patch_positions(height, ph, sh), patch_positions(width, pw, sw)
    row_in = (np.arange(height)[None, :] >= rows[:, None]) & (
        np.arange(height)[None, :] < rows[:, None] + ph
    )
    col_in = (np.arange(width)[None, :] >= cols[:, None]) & (
        np.arange(width)[None, :] < cols[:, None] + pw
    )
    masks = row_in[:, None, :, None] & col_in[None, :, None, :]
    return masks.reshape(len(rows) * len(cols), height, width)


def _target_probability_fn(model: keras.Model) -> Any:
    """A compiled `(images, masks, baselines, image_index, mask_index, targets) -> p_target`."""
    cache = base.model_cache(model)
    if "occlusion" in cache:
        return cache["occlusion"]
    probe = base.build_probe(model)

    def target_probability(images, masks, baselines, image_index, mask_index, targets):
        # images (N, H, W, C), masks (P, H, W, 1), baselines (N, 1, 1, C); one image, mask and
        # target index per variant.
        x = ops.take(images, image_index, axis=0)
        m = ops.take(masks, mask_index, axis=0)
        occluded = x * (1.0 - m) + ops.take(baselines, image_index, axis=0) * m
        probs = ops.softmax(probe.forward(occluded), axis=-1)
        return ops.take_along_axis(probs, ops.expand_dims(targets, 1), axis=1)[:, 0]

    cache["occlusion"] = (compile_for(model, target_probability), probe.num_classes)
    return cache["occlusion"]


def occlusion_sensitivity(
    model: keras.Model,
    images: Any,
    targets: Any,
    patch_size: int | Sequence[int] = 4,
    stride: int | Sequence[int] | None = None,
    baseline: float | str = 0.0,
    batch_size: int = 256,
) -> np.ndarray:
    """Occlusion sensitivity maps of a batch of images.

    Args:
        model: a Sequential or functional model (nested base models are fine) from images
            `(N, H, W, C)` to logits or softmax probabilities.
        images: array `(N, H, W, C)` matching the model's input; non-square images are fine.
        targets: the class to explain for each image, shape `(N,)`, or one int for all.
        patch_size: the occluding patch's `(height, width)`, or one int for a square.
        stride: step between patches, an int or `(rows, cols)`, at most the patch size along
            each axis (so every pixel is covered); defaults to `patch_size` (non-overlapping
            patches).
        baseline: the value the patch is filled with, or `"mean"` for each image's own
            per-channel mean.
        batch_size: occluded variants per model call.

    Returns:
        Float32 array `(N, H, W)`: at each pixel, the mean over the patches covering it of
        `p(target | image) - p(target | occluded image)`. Positive where hiding the pixel hurts
        the target class, negative where it helps; not rescaled.

    Raises:
        ValueError: a patch larger than the image, a bad stride or baseline, or bad images /
            targets.
        SeqlError: a stride larger than the patch (pixels between patches would be covered by
            no patch), naming both.

    Example:
    ```python
    >>> maps = occlusion_sensitivity(model, x[:4], y[:4], patch_size=4, stride=2)
    >>> maps.shape
    (4, 28, 28)
    ```
    """
    x = base.validate_images(model, images, require_spatial=True)
    n, height, width, channels = x.shape
    patch = base.pair(patch_size, "patch_size")
    steps = patch if stride is None else base.pair(stride, "stride")
    if patch[0] > height or patch[1] > width:
        raise ValueError(
            f"`patch_size` {patch} is larger than the images ({height}, {width}); use a patch "
            "no larger than the image."
        )
    check_stride(patch, steps)
    if isinstance(baseline, str):
        if baseline != "mean":
            raise ValueError(f'`baseline` must be a number or "mean"; got {baseline!r}.')
        fill = x.mean(axis=(1, 2), keepdims=True)
    elif np.ndim(baseline) == 0 and np.isfinite(baseline):
        fill = np.full((n, 1, 1, channels), float(baseline), np.float32)
    else:
        raise ValueError(f'`baseline` must be a finite number or "mean"; got {baseline!r}.')
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive int; got {batch_size!r}.")

    target_probability, classes = _target_probability_fn(model)
    y = base.validate_targets(targets, n, classes)
    masks = occlusion_masks(height, width, patch, steps)
    num_patches = len(masks)
    # One more, empty mask: the unoccluded image's probability comes out of the same batches.
    all_masks = np.concatenate([masks, np.zeros((1, height, width), bool)])
    per_image = num_patches + 1

    images_t = ops.convert_to_tensor(x)
    masks_t = ops.convert_to_tensor(all_masks[..., None].astype(np.float32))
    fill_t = ops.convert_to_tensor(fill.astype(np.float32))
    total = n * per_image  # variant v is image v // per_image under mask v % per_image
    probabilities = np.empty(total, np.float32)
    with backend.ops().no_grad():
        for start, stop, size in fixed_batches(total, batch_size):
            v = pad_rows(np.arange(start, stop, dtype=np.int32), size)
            image_index = v // per_image
            found = target_probability(
                images_t,
                masks_t,
                fill_t,
                ops.convert_to_tensor(image_index),
                ops.convert_to_tensor(v % per_image),
                ops.convert_to_tensor(y[image_index]),
            )
            probabilities[start:stop] = ops.convert_to_numpy(found)[: stop - start]

    probabilities = probabilities.reshape(n, per_image)
    drops = probabilities[:, -1:] - probabilities[:, :-1]
    coverage = masks.sum(axis=0).astype(np.float32)
    sums = np.tensordot(drops, masks.astype(np.float32), axes=([1], [0]))
    return (sums / coverage).astype(np.float32)
