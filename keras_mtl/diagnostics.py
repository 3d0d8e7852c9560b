"""Which experts does each task use? Mean gate weights over a dataset."""

from __future__ import annotations

import keras
import numpy as np

from keras_mtl.layers import MixtureOfExperts


def gate_weights(model: keras.Model, data, batch_size: int = 1024) -> dict:
    """Mean softmax weight of each gate over `data`, per mixture-of-experts layer.

    Args:
        model: a model built with mixture-of-experts layers (`build_mmoe`,
            `build_omoe`).
        data: what `model.predict` accepts: a dict of arrays or a `tf.data` dataset
            (labels, if any, are ignored).
        batch_size: batch size for arrays.

    Returns:
        `{layer_name: {gate_name: np.ndarray of shape (num_experts,)}}`; the gates
        of MMoE are named after the tasks, the single OMoE gate "shared". Each
        vector sums to 1.
    """
    layers = [layer for layer in model.layers if isinstance(layer, MixtureOfExperts)]
    if not layers:
        raise ValueError(f"Model {model.name!r} has no MixtureOfExperts layer.")
    probe = keras.Model(model.inputs, [layer.input for layer in layers])
    moe_inputs = probe.predict(data, batch_size=batch_size, verbose=0)
    if len(layers) == 1:
        moe_inputs = [moe_inputs]
    result = {}
    for layer, x in zip(layers, moe_inputs):
        mean = np.asarray(keras.ops.mean(layer.gate_weights(x), axis=0))
        result[layer.name] = dict(zip(layer.gate_names, mean))
    return result
