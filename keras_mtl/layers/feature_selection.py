"""Per-task feature selection: each task weighs the feature fields of its input."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import ops

from keras_mtl._checks import check_units


def _names(owner: str, arg: str, names, count: int | None = None) -> tuple[str, ...]:
    """`names` as a tuple of unique strings (`count` of them when given)."""
    if isinstance(names, str) or names is None:
        names = [] if names is None else [names]
    names = tuple(str(n) for n in names)
    wanted = f" of {count}" if count is not None else ""
    if not names or len(set(names)) != len(names) or count not in (None, len(names)):
        raise ValueError(
            f"{owner}: {arg} must be a non-empty list{wanted} unique names, got "
            f"{names!r}."
        )
    return names


@keras.saving.register_keras_serializable(package="keras_mtl")
class FeatureSelection(keras.layers.Layer):
    """Re-weights the feature fields of an input, once per task (or gate).

    The input `x` is the concatenation of F fields (field i: `field_dims[i]`
    consecutive columns, e.g. one sparse feature's pooled embedding or one
    dense feature's values). Selection k scores the fields from the whole
    input and scales each field by its weight:
    `w_k(x) = F · softmax(W_k x + b_k)` over the fields, and output k is `x`
    with field i's columns multiplied by `w_k,i(x)`.

    The softmax makes the fields compete: a selection can raise a field only
    by lowering others, so its weights rank the fields (independent sigmoid
    gates could leave every field open). The factor F keeps the average
    weight at 1, so the next layers see inputs of the usual scale, and with
    the default zero initializers every weight starts at exactly 1: the layer
    starts as the identity. The weights depend on the input (each example
    selects its own fields, as AdaFS's controller and PEPNet's embedding
    gates do); `keras_mtl.feature_weights(model, data)` averages them over
    data.

    Args:
        field_dims: sequence of int. Width of each field, in input order.
        selection_names: sequence of str. One selection per name (builders
            pass the task names, "shared" for a shared gate); the output has
            one tensor per name.
        field_names: sequence of str or None. Names of the fields (builders
            pass the feature names), used by `keras_mtl.feature_weights`.
            Defaults to `field_0, field_1, ...`.
        kernel_initializer: initializer of the scoring matrices `W_k`.
            Defaults to "zeros" (every weight starts at 1).
        bias_initializer: initializer of the biases `b_k`. Defaults to
            "zeros".

    Call arguments:
        inputs: tensor `(batch, sum(field_dims))`.

    Returns:
        A list of `len(selection_names)` tensors `(batch, sum(field_dims))`:
        the input re-weighted by each selection.

    Example:
    >>> select = FeatureSelection([2, 1], ("ctr", "cvr"), field_names=("user", "age"))
    >>> x = np.array([[1.0, 2.0, 3.0]], "float32")  # user: 2 columns, age: 1
    >>> [keras.ops.convert_to_numpy(t) for t in select(x)]  # starts as the identity
    [array([[1., 2., 3.]], dtype=float32), array([[1., 2., 3.]], dtype=float32)]
    >>> _ = select.bias.assign([[np.log(3.0), 0.0], [0.0, 0.0]])  # ctr: 3 to 1 for user
    >>> weights = select.field_weights(x)  # (batch, tasks, fields)
    >>> np.round(keras.ops.convert_to_numpy(weights), 4)
    array([[[1.5, 0.5],
            [1. , 1. ]]], dtype=float32)
    >>> np.round(keras.ops.convert_to_numpy(select(x)[0]), 4)  # user x 1.5, age x 0.5
    array([[1.5, 3. , 1.5]], dtype=float32)

    References:
        Lin, Zhao, Wang, Xu, Wu, "AdaFS: Adaptive Feature Selection in Deep
        Recommender System", KDD 2022. Chang et al., "PEPNet: Parameter and
        Embedding Personalized Network for Infusing with Personalized Prior
        Information", KDD 2023 (arXiv:2302.01115).
    """

    def __init__(
        self,
        field_dims: Sequence[int],
        selection_names: Sequence[str],
        field_names: Sequence[str] | None = None,
        kernel_initializer="zeros",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        owner = "FeatureSelection"
        self.field_dims = check_units(
            owner, "field_dims", field_dims, allow_empty=False
        )
        self.selection_names = _names(owner, "selection_names", selection_names)
        if field_names is None:
            field_names = [f"field_{i}" for i in range(len(self.field_dims))]
        self.field_names = _names(
            owner, "field_names", field_names, len(self.field_dims)
        )
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        #: The field of every input column, to spread the field weights.
        self._column_field = np.repeat(
            np.arange(len(self.field_dims)), self.field_dims
        ).astype("int32")

    @property
    def num_fields(self) -> int:
        return len(self.field_dims)

    def build(self, input_shape):
        width = input_shape[-1]
        if len(input_shape) != 2 or width != sum(self.field_dims):
            raise ValueError(
                f"FeatureSelection: expected inputs (batch, {sum(self.field_dims)}) "
                f"(the fields {dict(zip(self.field_names, self.field_dims))} side "
                f"by side), got shape {tuple(input_shape)}."
            )
        count = len(self.selection_names)
        self.kernel = self.add_weight(
            name="kernel",
            shape=(count, width, self.num_fields),
            initializer=self.kernel_initializer,
        )
        self.bias = self.add_weight(
            name="bias",
            shape=(count, self.num_fields),
            initializer=self.bias_initializer,
        )

    def field_weights(self, inputs):
        """Each selection's weights over the fields, `(batch, selections,
        fields)`, non-negative, averaging 1 over the fields."""
        if not self.built:
            self.build(tuple(ops.shape(inputs)))
        logits = ops.einsum("bd,sdf->bsf", inputs, self.kernel) + self.bias
        return ops.softmax(logits, axis=-1) * ops.cast(self.num_fields, logits.dtype)

    def call(self, inputs):
        columns = ops.take(self.field_weights(inputs), self._column_field, axis=-1)
        selected = ops.expand_dims(inputs, 1) * columns  # (batch, selections, d)
        return [selected[:, k, :] for k in range(len(self.selection_names))]

    def compute_output_shape(self, input_shape):
        return [tuple(input_shape)] * len(self.selection_names)

    def get_config(self):
        return {
            **super().get_config(),
            "field_dims": list(self.field_dims),
            "selection_names": list(self.selection_names),
            "field_names": list(self.field_names),
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        }
