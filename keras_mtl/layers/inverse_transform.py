"""A task's output on its label's scale, from the tower's transformed scale."""

from __future__ import annotations

import keras

from keras_mtl.transforms import get_transform, serialize_transform


@keras.saving.register_keras_serializable(package="keras_mtl")
class InverseTransform(keras.layers.Layer):
    """`transform.inverse(z)`: a regression task's prediction on the label's scale.

    The builders put one after the tower of each task with a `Task.transform`
    (e.g. "log1p"): the tower predicts `z = log(1 + y)`, this layer returns
    `y = exp(z) - 1`. It has no weights.

    Args:
        transform: `keras_mtl.transforms.Transform` or its name ("log1p",
            "identity").

    Call arguments:
        inputs: tensor of predictions on the transformed scale.

    Returns:
        Tensor of the same shape, on the label's scale.

    Example:
    >>> layer = InverseTransform("log1p")
    >>> keras.ops.convert_to_numpy(layer(np.array([0.0, np.log(3.0)], "float32")))
    array([0., 2.], dtype=float32)
    """

    def __init__(self, transform, **kwargs):
        super().__init__(**kwargs)
        self.transform = get_transform(transform)
        if self.transform is None:
            raise ValueError(
                "InverseTransform: transform must be a Transform or its name; got None."
            )

    def call(self, inputs):
        return self.transform.inverse(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "transform": serialize_transform(self.transform),
        }
