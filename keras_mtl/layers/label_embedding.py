"""Label embedding: a task's prediction as a vector for the tasks above it (JMT)."""

from __future__ import annotations

import keras
from keras import ops

from keras_mtl._checks import check_head_task, check_positive_int


@keras.saving.register_keras_serializable(package="keras_mtl")
class LabelEmbedding(keras.layers.Layer):
    """A lower task's prediction as a learned vector, to feed a higher level.

    The Joint Many-Task model passes each task's soft label upward as the
    expected label embedding `y = Σ_j p(j | h) ℓ(j)`. For a "multiclass" task
    the input is the class distribution `p` `(batch, num_classes)` and the
    output `p @ L` with one learned row `ℓ(j)` per class; for a "binary" task
    the input is the probability `p` `(batch,)` and the output `p · ℓ` (the
    two-class sum `p ℓ(1) + (1 - p) ℓ(0) = ℓ(0) + p (ℓ(1) - ℓ(0))` is the
    same up to the constant `ℓ(0)`, which the next dense layer's bias
    absorbs); for a "regression"
    task the input is the prediction `ŷ` `(batch,)` and the output `ŷ · ℓ`.
    The prediction is not detached: the higher task's gradient reaches the
    lower task's layers through it, as in JMT.

    Args:
        output_dim: int. Width of the embedding.
        task_type: "binary", "regression" or "multiclass". Defaults to "binary".
        num_classes: int >= 2. Classes of a "multiclass" task (and only then).
            Defaults to None.
        embeddings_initializer: initializer of `ℓ` (`(1, output_dim)`, or
            `(num_classes, output_dim)`). Defaults to "glorot_uniform".

    Call arguments:
        inputs: the task's prediction: `(batch,)`, or `(batch, num_classes)`
            class probabilities for "multiclass".

    Returns:
        Tensor `(batch, output_dim)`.

    Example:
    >>> embed = LabelEmbedding(2, "multiclass", num_classes=3,
    ...                        embeddings_initializer="ones")
    >>> keras.ops.convert_to_numpy(embed(np.array([[0.2, 0.3, 0.5]], "float32")))
    array([[1., 1.]], dtype=float32)

    References:
        Hashimoto, Xiong, Tsuruoka, Socher, "A Joint Many-Task Model: Growing a
        Neural Network for Multiple NLP Tasks", EMNLP 2017 (arXiv:1611.01587).
    """

    def __init__(
        self,
        output_dim: int,
        task_type: str = "binary",
        num_classes: int | None = None,
        embeddings_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        owner = "LabelEmbedding"
        self.output_dim = check_positive_int(owner, "output_dim", output_dim)
        self.task_type, self.num_classes = check_head_task(
            owner, task_type, num_classes
        )
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)

    def build(self, input_shape):
        shape = tuple(input_shape)
        if self.num_classes is None:
            ok, want = len(shape) == 1, "(batch,)"
        else:
            ok = len(shape) == 2 and shape[-1] == self.num_classes
            want = f"(batch, {self.num_classes})"
        if not ok:
            raise ValueError(
                f"LabelEmbedding ({self.task_type}): inputs must be the task's "
                f"prediction of shape {want}; got {shape!r}."
            )
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(self.num_classes or 1, self.output_dim),
            initializer=self.embeddings_initializer,
        )

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        if self.num_classes is None:
            x = ops.expand_dims(x, -1)  # p·ℓ as (batch, 1) @ (1, d)
        return ops.matmul(x, ops.cast(self.embeddings, self.compute_dtype))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_dim)

    def get_config(self):
        return {
            **super().get_config(),
            "output_dim": self.output_dim,
            "task_type": self.task_type,
            "num_classes": self.num_classes,
            "embeddings_initializer": keras.initializers.serialize(
                self.embeddings_initializer
            ),
        }
