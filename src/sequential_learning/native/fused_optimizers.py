"""Keras's Adam and SGD with their per-variable update done by TensorFlow's fused kernels.

Keras 3 writes Adam's update as about a dozen separate tensor operations per variable (each a
pass over the parameters, most with a fresh output buffer). TensorFlow has the same update as
one fused kernel (`ResourceApplyAdam`; `ResourceApplyKerasMomentum` and
`ResourceApplyGradientDescent` for SGD) that reads each array once and updates in place. On a
CPU the update is bandwidth-bound, so the fused kernel makes a train step of an MLP 784-400-400-10
at batch 128 about a tenth faster (`bench/throughput.py`).

The formulas are Keras's own: `FusedAdam` and `FusedSGD` subclass `keras.optimizers.Adam` and
`keras.optimizers.SGD` and replace only `update_step`, so learning-rate schedules, clipping, weight
decay, EMA, gradient accumulation and loss scaling work as before. SGD's numbers equal Keras's to
rounding; Adam's agree to about 1e-4 relative, because TensorFlow's kernel forms 1 − β in float32
(1 − 0.999f = 0.00100005, where Keras uses float32(0.001)).
They fall back to Keras's update for sparse gradients (`tf.IndexedSlices`), AMSGrad, non-float
variables and under a `tf.distribute` strategy (whose mirrored variables the raw kernels do not
take).

TensorFlow only: `sequential_learning.optimizers` imports this module when TensorFlow runs.
"""

from __future__ import annotations

import keras
import tensorflow as tf

__all__ = ["FusedAdam", "FusedSGD"]

_FUSED_DTYPES = (tf.float16, tf.bfloat16, tf.float32, tf.float64)


def _fusable(gradient, variable) -> bool:
    """Whether the fused kernel can update `variable` with `gradient` here."""
    return (
        not isinstance(gradient, tf.IndexedSlices)
        and not tf.distribute.has_strategy()
        and tf.as_dtype(variable.dtype) in _FUSED_DTYPES
    )


@keras.saving.register_keras_serializable(package="sequential_learning")
class FusedAdam(keras.optimizers.Adam):
    """`keras.optimizers.Adam` whose update runs as TensorFlow's one fused kernel.

    Same arguments, state and formulas as Keras's Adam (m ← m + (g − m)(1 − β₁),
    v ← v + (g² − v)(1 − β₂), θ ← θ − α m / (√v + ε), α = lr √(1 − β₂ᵗ) / (1 − β₁ᵗ)); one pass
    over the parameters instead of about twelve. Not bit-identical to Keras: see the module's
    docstring.

    Args:
        *args: Keras's `Adam` arguments (`learning_rate`, `beta_1`, `beta_2`, `epsilon`, ...).
        name: the optimizer's name.
        **kwargs: Keras's `Adam` keyword arguments (`weight_decay`, `clipnorm`, `ema_momentum`,
            ...).

    Example:
    ```python
    optimizer = FusedAdam(learning_rate=1e-3)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    ```
    """

    def __init__(self, *args, name: str = "adam", **kwargs) -> None:
        super().__init__(*args, name=name, **kwargs)

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad or not _fusable(gradient, variable):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        index = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=self._momentums[index].handle,
            v=self._velocities[index].handle,
            beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(learning_rate, dtype),
            beta1=beta_1,
            beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
        )


@keras.saving.register_keras_serializable(package="sequential_learning")
class FusedSGD(keras.optimizers.SGD):
    """`keras.optimizers.SGD` (with or without momentum, Nesterov) as one fused kernel.

    Same arguments, state and formulas as Keras's SGD: with momentum μ,
    m ← μ m − lr g and θ ← θ + m (Nesterov: θ ← θ + μ m − lr g); without, θ ← θ − lr g.

    Args:
        *args: Keras's `SGD` arguments (`learning_rate`, `momentum`, `nesterov`).
        name: the optimizer's name.
        **kwargs: Keras's `SGD` keyword arguments (`weight_decay`, `clipnorm`, ...).

    Example:
    ```python
    optimizer = FusedSGD(learning_rate=0.01, momentum=0.9)
    ```
    """

    def __init__(self, *args, name: str = "SGD", **kwargs) -> None:
        super().__init__(*args, name=name, **kwargs)

    def update_step(self, gradient, variable, learning_rate):
        if not _fusable(gradient, variable):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        rate = tf.cast(learning_rate, dtype)
        gradient = tf.cast(gradient, dtype)
        if self.momentum != 0:
            tf.raw_ops.ResourceApplyKerasMomentum(
                var=variable.handle,
                accum=self.momentums[self._get_variable_index(variable)].handle,
                lr=rate,
                grad=gradient,
                momentum=tf.cast(self.momentum, dtype),
                use_nesterov=bool(self.nesterov),
            )
        else:
            tf.raw_ops.ResourceApplyGradientDescent(var=variable.handle, alpha=rate, delta=gradient)
