"""Input preprocessing layers at the front of a base: random crop + flip, and standardisation.

Seq-CIFAR as Mammoth runs it (Buzzega et al. 2020, "Dark experience for general continual
learning: a strong, simple baseline", NeurIPS; github.com/aimagelab/mammoth,
`datasets/seq_cifar10.py`) trains on `RandomCrop(32, padding=4)`, `RandomHorizontalFlip()`, then
`Normalize(mean, std)`, and tests on `Normalize(mean, std)` alone. Here the same steps are Keras
layers at the front of the shared base (`input_preprocessing`), so on every backend:

* the images stay in [0, 1] in the data, the buffers and the interpretation tools;
* `RandomCropFlip` is active only when the model is called with `training=True`: the task's
  batches *and the replayed buffer samples* are augmented (Mammoth replays
  `buffer.get_data(..., transform=self.transform)`: augmented too), while evaluation, the
  importance estimators and LwF's teacher (`training=False`) see the plain images, as Mammoth's
  test transform and LwF's `not_aug_inputs` do;
* what a replay buffer stores is the step's input, the un-augmented image (Mammoth stores
  `not_aug_inputs`), and DER++'s logits are those of the augmented forward pass, as Mammoth's.

The draws come from a `keras.random.SeedGenerator` seeded with the run's seed whose state is a
weight of the layer: it is threaded through JAX's stateless step like BatchNorm's statistics,
saved in checkpoints (a resumed run continues the same stream of crops and flips) and copied
with the other weights. The padding is zeros in pixel space, before standardisation, as
torchvision pads the PIL image. The draws differ between backends (each has its own generator);
on one backend the same seed gives the same crops and flips.

Example:
```python
layers = input_preprocessing("crop-flip", (CIFAR10_MEAN, CIFAR10_STD), seed=0)
base = resnet18_base((32, 32, 3), nf=64, preprocessing=layers)
```
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

__all__ = ["AUGMENTATIONS", "RandomCropFlip", "Standardize", "input_preprocessing"]

#: The values of `--augmentation`: none, or Mammoth's CIFAR training transform.
AUGMENTATIONS = ("none", "crop-flip")


@keras.saving.register_keras_serializable(package="sequential_learning")
class RandomCropFlip(keras.layers.Layer):
    """Random crop after zero padding, and a random horizontal flip, in training only.

    Each image is padded with `padding` zeros on every side and a window of its own size is cut
    at an offset drawn uniformly in `0 .. 2 * padding` (each axis, each image), as
    `torchvision.transforms.RandomCrop(size, padding=padding)`; then, with probability 1/2, it is
    mirrored left to right (`RandomHorizontalFlip`). With `training` false the input is returned
    unchanged.

    Args:
        padding: zeros added on each side before cropping (Mammoth's CIFAR: 4); 0 for no crop.
        flip: also flip horizontally with probability 1/2.
        seed: the initial seed of the draws (the run's seed).
        **kwargs: `keras.layers.Layer`'s (`name`, ...).

    Example:
    ```python
    layer = RandomCropFlip(padding=4, seed=0)
    augmented = layer(images, training=True)     # (N, 32, 32, 3), shifted and mirrored
    same = layer(images)                         # inference: unchanged
    ```
    """

    def __init__(self, padding: int = 4, flip: bool = True, seed: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        if isinstance(padding, bool) or not isinstance(padding, int | np.integer) or padding < 0:
            raise ValueError(f"padding: {padding!r} is not allowed; expected an integer >= 0")
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise ValueError(f"seed: {seed!r} is not allowed; expected an integer >= 0")
        self.padding = int(padding)
        self.flip = bool(flip)
        self.seed = int(seed)
        self.supports_masking = True

    def build(self, input_shape) -> None:
        if len(input_shape) != 4:
            raise ValueError(f"RandomCropFlip needs images shaped (N, H, W, C), got input shape "
                             f"{tuple(input_shape)}")
        # A generator outside Keras's tracking, its state replaced by a weight of this layer:
        # a weight is saved and restored with the model (a tracked generator's state is not).
        generator = keras.random.SeedGenerator(self.seed)
        seed = self.seed

        def initial(shape, dtype=None):
            return ops.convert_to_tensor(np.array([seed, 0]), dtype=dtype)

        self.seed_state = self.add_weight(shape=(2,), initializer=initial, trainable=False,
                                          dtype=generator.state.dtype, name="seed_state")
        generator.state = self.seed_state
        object.__setattr__(self, "_generator", generator)
        super().build(input_shape)

    def call(self, inputs, training=None):
        if not training or (self.padding == 0 and not self.flip):
            return inputs
        x = inputs
        batch = ops.shape(x)[0]
        height, width, channels = int(x.shape[1]), int(x.shape[2]), int(x.shape[3])
        if self.padding:
            p = self.padding
            padded = ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]])
            offsets = keras.random.randint((batch, 2), 0, 2 * p + 1, dtype="int32",
                                           seed=self._generator)
            rows = ops.expand_dims(offsets[:, 0], 1) + ops.arange(height, dtype="int32")
            rows = ops.broadcast_to(ops.reshape(rows, (batch, height, 1, 1)),
                                    (batch, height, width + 2 * p, channels))
            x = ops.take_along_axis(padded, rows, axis=1)
            cols = ops.expand_dims(offsets[:, 1], 1) + ops.arange(width, dtype="int32")
            cols = ops.broadcast_to(ops.reshape(cols, (batch, 1, width, 1)),
                                    (batch, height, width, channels))
            x = ops.take_along_axis(x, cols, axis=2)
        if self.flip:
            mirrored = keras.random.uniform((batch,), seed=self._generator) < 0.5
            x = ops.where(ops.reshape(mirrored, (batch, 1, 1, 1)), ops.flip(x, axis=2), x)
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "padding": self.padding, "flip": self.flip,
                "seed": self.seed}


@keras.saving.register_keras_serializable(package="sequential_learning")
class Standardize(keras.layers.Layer):
    """`(x - mean) / std` per channel, with fixed constants (no weights, nothing learned).

    Args:
        mean: one value per channel (the last axis).
        std: one positive value per channel.
        **kwargs: `keras.layers.Layer`'s (`name`, ...).

    Example:
    ```python
    layer = Standardize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2615))
    normalised = layer(images)       # Mammoth's seq-cifar10 normalisation
    ```
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], **kwargs) -> None:
        super().__init__(**kwargs)
        self.mean = [float(m) for m in mean]
        self.std = [float(s) for s in std]
        if len(self.mean) != len(self.std) or not self.mean:
            raise ValueError(f"Standardize needs one mean and one std per channel, got "
                             f"{self.mean} and {self.std}")
        if not all(np.isfinite(self.mean)) or not all(s > 0 and np.isfinite(s) for s in self.std):
            raise ValueError(f"Standardize needs finite means and positive stds, got "
                             f"{self.mean} and {self.std}")

    def build(self, input_shape) -> None:
        if input_shape[-1] != len(self.mean):
            raise ValueError(f"Standardize has {len(self.mean)} channel(s) of statistics, the "
                             f"inputs have {input_shape[-1]} (input shape {tuple(input_shape)})")
        super().build(input_shape)

    def call(self, inputs):
        mean = ops.convert_to_tensor(np.asarray(self.mean, np.float32), dtype=inputs.dtype)
        std = ops.convert_to_tensor(np.asarray(self.std, np.float32), dtype=inputs.dtype)
        return (inputs - mean) / std

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mean": self.mean, "std": self.std}


def input_preprocessing(
    augmentation: str = "none",
    normalization: tuple[Sequence[float], Sequence[float]] | None = None,
    seed: int = 0,
) -> list[keras.layers.Layer]:
    """The layers a base applies to its inputs first: augmentation, then standardisation.

    Args:
        augmentation: one of `AUGMENTATIONS`: `"none"`, or `"crop-flip"` (Mammoth's CIFAR
            training transform: random crop with 4 pixels of zero padding and a random
            horizontal flip, in training only).
        normalization: `(mean, std)` per channel, or None for none.
        seed: the augmentation's seed (the run's).

    Returns:
        The layers, in the order they apply (possibly none).

    Raises:
        ValueError: for an unknown augmentation.

    Example:
    ```python
    layers = input_preprocessing("crop-flip", (CIFAR10_MEAN, CIFAR10_STD), seed=0)
    ```
    """
    if augmentation not in AUGMENTATIONS:
        raise ValueError(f"augmentation: {augmentation!r} is not allowed; expected one of "
                         f"{', '.join(AUGMENTATIONS)}")
    layers: list[keras.layers.Layer] = []
    if augmentation == "crop-flip":
        layers.append(RandomCropFlip(4, True, seed, name="augment_crop_flip"))
    if normalization is not None:
        mean, std = normalization
        layers.append(Standardize(mean, std, name="standardize"))
    return layers
