"""Fixed per-task loss weights."""

from __future__ import annotations

import keras

from keras_mtl.weighting.loss_weighting import LossWeighting


@keras.saving.register_keras_serializable(package="keras_mtl")
class FixedWeighting(LossWeighting):
    """Constant weights: `L = Σ_k w_k L_k`.

    The same loss as compiling with `Task.loss_weight` alone, but reported like
    every other strategy (`{task}_weight` in the logs).

    Args:
        weights: dict of task name to weight w_k >= 0; tasks not named get 1.
            Defaults to None (all 1).

    Example:
    In use, `model.compile(loss_weighting=FixedWeighting({"marital": 0.5}))`.
    What `compile` and each training step then do:

    >>> from keras_mtl.losses import MaskedBinaryCrossentropy as BCE
    >>> fixed = FixedWeighting({"marital": 0.5})
    >>> fixed.configure({"income": BCE(), "marital": BCE()})  # by compile
    >>> fixed.weights_in_force()
    {'income': 1.0, 'marital': 0.5}
    >>> round(float(fixed.combine({"income": 0.4, "marital": 0.2})), 4)  # .4 + .1
    0.5
    """
