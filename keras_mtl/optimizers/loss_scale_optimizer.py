"""Keras's dynamic loss scaling, with a finiteness check that sees every table row."""

from __future__ import annotations

import keras
from keras import ops


def _gradient_values(gradient):
    """The values of `gradient`: the rows of a TensorFlow `IndexedSlices`
    (the gradient of a gathered table), else the gradient itself."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        if isinstance(gradient, tf.IndexedSlices):
            return gradient.values
    return gradient


@keras.saving.register_keras_serializable(package="keras_mtl")
class LossScaleOptimizer(keras.optimizers.LossScaleOptimizer):
    """`keras.optimizers.LossScaleOptimizer` that skips every non-finite step.

    Under the "mixed_float16" policy the loss is scaled up before the
    gradients are taken, so that small float16 gradients do not round to 0; a
    step whose gradients overflow is skipped and the scale halved. On
    TensorFlow the gradient of an embedding table is an `IndexedSlices`, and
    Keras's check (`ops.isfinite` of it, keras 3.15) misses an `inf` in a row
    that is looked up twice in the batch (it then reads the duplicate rows as
    one finite row): the inf reaches the table and every later loss is NaN.
    This check reads the gathered rows themselves. `MultiTaskModel.compile`
    uses it where Keras would wrap the optimizer in its own.

    Args:
        inner_optimizer: the `keras.optimizers.Optimizer` to wrap.
        initial_scale: float. The first loss scale. Defaults to 2**15.
        dynamic_growth_steps: int. Finite steps before the scale doubles.
            Defaults to 2000.
        **kwargs: passed to `keras.optimizers.LossScaleOptimizer`.

    Example:
    >>> optimizer = LossScaleOptimizer(keras.optimizers.Adam())
    >>> grads = [np.array([1.0, np.inf], "float32"), np.ones(2, "float32")]
    >>> bool(optimizer.check_finite(grads))
    False
    """

    def check_finite(self, grads):
        values = [_gradient_values(g) for g in grads if g is not None]
        return ops.all(ops.stack([ops.all(ops.isfinite(v)) for v in values]))


def loss_scaled(optimizer, dtype_policy, auto_scale_loss: bool = True):
    """`optimizer` in keras-mtl's `LossScaleOptimizer` where Keras's `compile`
    would wrap it in its own: under the "mixed_float16" policy, with
    `auto_scale_loss`, unless it already scales its loss."""
    policy = keras.dtype_policies.get(dtype_policy)
    if (
        not auto_scale_loss
        or policy.name != "mixed_float16"
        or isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    ):
        return optimizer
    return LossScaleOptimizer(optimizer, name="loss_scale_optimizer")
