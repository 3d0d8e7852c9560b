"""Per-task losses that leave out rows whose label is missing."""

from __future__ import annotations

import keras
from keras import ops

from keras_mtl.masking import label_mask, match_rank, transform_labels
from keras_mtl.transforms import get_transform, serialize_transform


class _MaskedLoss(keras.losses.Loss):
    """Mean of the elementwise loss over the rows that have a label.

    Rows whose label is NaN, infinite or equal to `mask_value` are excluded; the
    mean divides by the number of labelled rows, so a task with few labels in a
    batch is not diluted by the others, and a batch without any label for this
    task contributes exactly 0 (never NaN).

    With a `transform` (a `keras_mtl.transforms.Transform` or its name), label
    and prediction are compared on its scale: `forward(y_true)` with
    `forward(y_pred)` (a task trained on log-scale targets); labels outside
    the transform's domain are left out like missing ones.
    """

    def __init__(
        self, mask_value=None, name=None, reduction="sum", dtype=None, transform=None
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.mask_value = None if mask_value is None else float(mask_value)
        self.transform = get_transform(transform)

    def elementwise(self, y_true, y_pred):
        raise NotImplementedError

    def call(self, y_true, y_pred):
        y_true, y_pred = match_rank(y_true, y_pred)
        mask, y_clean = label_mask(y_true, self.mask_value)
        y_pred = ops.cast(y_pred, "float32")
        mask, y_clean, y_pred = transform_labels(mask, y_clean, y_pred, self.transform)
        values = ops.where(mask, self.elementwise(y_clean, y_pred), 0.0)
        count = ops.maximum(ops.sum(ops.cast(mask, "float32")), 1.0)
        return values / count

    def get_config(self):
        config = {**super().get_config(), "mask_value": self.mask_value}
        if self.transform is not None:
            config["transform"] = serialize_transform(self.transform)
        return config


@keras.saving.register_keras_serializable(package="keras_mtl")
class MaskedBinaryCrossentropy(_MaskedLoss):
    """Binary cross-entropy on probabilities, averaged over labelled rows only.

    Args:
        mask_value: float or None. Label value meaning "no label" besides NaN.
        epsilon: float. Probabilities are clipped to [epsilon, 1 - epsilon].
            Defaults to 1e-7.

    Example:
    >>> loss = MaskedBinaryCrossentropy()
    >>> round(float(loss(np.array([1.0, np.nan]), np.array([0.5, 0.9]))), 4)
    0.6931

    That is log 2, from the first row alone: the NaN row is left out. A batch
    without any label gives 0:

    >>> float(loss(np.array([np.nan, np.nan]), np.array([0.5, 0.9])))
    0.0
    >>> round(float(MaskedBinaryCrossentropy(mask_value=-1)(
    ...     np.array([1.0, -1.0]), np.array([0.5, 0.9]))), 4)
    0.6931
    """

    def __init__(self, mask_value=None, epsilon: float = 1e-7, name=None, **kwargs):
        super().__init__(mask_value=mask_value, name=name or "masked_bce", **kwargs)
        self.epsilon = float(epsilon)

    def elementwise(self, y_true, y_pred):
        p = ops.clip(y_pred, self.epsilon, 1.0 - self.epsilon)
        return -(y_true * ops.log(p) + (1.0 - y_true) * ops.log(1.0 - p))

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="keras_mtl")
class MaskedMeanSquaredError(_MaskedLoss):
    """Mean squared error over labelled rows only.

    Args:
        mask_value: float or None. Label value meaning "no label" besides NaN.
        transform: `keras_mtl.transforms.Transform`, its name or None. Compare
            `forward(y_true)` with `forward(y_pred)` (e.g. "log1p": the MSE of
            log(1 + y)). Defaults to None.

    Example:
    >>> loss = MaskedMeanSquaredError()
    >>> float(loss(np.array([1.0, np.nan, 3.0]), np.array([2.0, 9.0, 3.0])))
    0.5

    The mean of `(2 - 1)²` and `(3 - 3)²`; the NaN row is left out. On the
    log1p scale, `(log 4 - log 2)²` (the label 3, the prediction 1):

    >>> loss = MaskedMeanSquaredError(transform="log1p")
    >>> round(float(loss(np.array([3.0, np.nan]), np.array([1.0, 5.0]))), 4)
    0.4805
    """

    def __init__(self, mask_value=None, name=None, transform=None, **kwargs):
        super().__init__(
            mask_value=mask_value,
            name=name or "masked_mse",
            transform=transform,
            **kwargs,
        )

    def elementwise(self, y_true, y_pred):
        return ops.square(y_pred - y_true)


@keras.saving.register_keras_serializable(package="keras_mtl")
class MaskedCategoricalCrossentropy(_MaskedLoss):
    """Cross-entropy of a class distribution, averaged over labelled rows only.

    The label is a distribution over the classes (one-hot or soft, e.g. the
    normalised genres of a movie), the prediction a softmax output. A row whose
    label has a NaN (or `mask_value`) entry is left out.

    Args:
        mask_value: float or None. Label value meaning "no label" besides NaN.
        epsilon: float. Probabilities are clipped to [epsilon, 1]. Defaults to 1e-7.

    Example:
    >>> loss = MaskedCategoricalCrossentropy()
    >>> labels = np.array([[0.5, 0.5], [np.nan, np.nan]])
    >>> round(float(loss(labels, np.array([[0.5, 0.5], [0.9, 0.1]]))), 4)  # log 2
    0.6931
    """

    def __init__(self, mask_value=None, epsilon: float = 1e-7, name=None, **kwargs):
        super().__init__(mask_value=mask_value, name=name or "masked_cce", **kwargs)
        self.epsilon = float(epsilon)

    def call(self, y_true, y_pred):
        mask, y_clean = label_mask(y_true, self.mask_value)
        row = ops.all(mask, axis=-1)
        p = ops.clip(ops.cast(y_pred, "float32"), self.epsilon, 1.0)
        values = -ops.sum(y_clean * ops.log(p), axis=-1)
        count = ops.maximum(ops.sum(ops.cast(row, "float32")), 1.0)
        return ops.where(row, values, 0.0) / count

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="keras_mtl")
class KLDivergenceBound(keras.losses.Loss):
    """Symmetric Bernoulli KL divergence between two probabilities of one event.

    Meituan's multi-task ranking model predicts p(click), p(convert | click) and
    p(order) with separate heads and ties them with KL(p||q) + KL(q||p) between
    p = p(click) p(convert) and q = p(order). For Bernoulli distributions the sum
    has the closed form `(p - q) (logit(p) - logit(q))`, which is >= 0 and 0 only
    when p = q. Both probabilities are clipped to [epsilon, 1 - epsilon], so the
    value and its gradient stay finite at 0 and 1.

    Called as `loss(p, q)` (`y_true` is p, `y_pred` is q); neither needs a label.
    Add it to a model with `keras_mtl.add_kl_bound`.

    Args:
        epsilon: float. Clipping of both probabilities. Defaults to 1e-6.
        name: str. Defaults to "kl_divergence_bound".
        reduction: Keras loss reduction. Defaults to "sum_over_batch_size" (mean).

    Example:
    >>> loss = KLDivergenceBound()
    >>> round(float(loss(np.array([0.2]), np.array([0.5]))), 4)  # -0.3 * -log 4
    0.4159
    >>> float(loss(np.array([0.3]), np.array([0.3])))
    0.0

    References:
        Meituan tech blog, "美团'猜你喜欢'深度学习排序模型实践" (2018).
    """

    def __init__(
        self,
        epsilon: float = 1e-6,
        name: str = "kl_divergence_bound",
        reduction="sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if not 0.0 < epsilon < 0.5:
            raise ValueError(
                f"KLDivergenceBound: epsilon must be in (0, 0.5); got {epsilon!r}."
            )
        self.epsilon = float(epsilon)

    def call(self, y_true, y_pred):
        p, q = match_rank(y_true, y_pred)
        p = ops.clip(ops.cast(p, "float32"), self.epsilon, 1.0 - self.epsilon)
        q = ops.clip(ops.cast(q, "float32"), self.epsilon, 1.0 - self.epsilon)
        logit = lambda x: ops.log(x) - ops.log1p(-x)  # noqa: E731
        return (p - q) * (logit(p) - logit(q))

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="keras_mtl")
class FunnelCalibration(keras.losses.Loss):
    """Penalty for a later funnel step predicted likelier than the step before it.

    AITM's behavioural expectation calibrator: a purchase needs a click, so
    p(purchase) <= p(click) for every impression; the loss is
    `mean(max(p_later - p_earlier, 0))`. Called as `loss(p_earlier, p_later)`.

    Args:
        name: str. Defaults to "funnel_calibration".
        reduction: Keras loss reduction. Defaults to "sum_over_batch_size" (mean).

    Example:
    >>> p_click, p_purchase = np.array([0.5, 0.2]), np.array([0.3, 0.4])
    >>> round(float(FunnelCalibration()(p_click, p_purchase)), 4)  # (0 + 0.2) / 2
    0.1

    References:
        Xi et al., "Modeling the Sequential Dependence among Audience
        Multi-step Conversions with Multi-task Learning in Targeted Display
        Advertising", KDD 2021 (arXiv:2105.08489).
    """

    def __init__(
        self,
        name: str = "funnel_calibration",
        reduction="sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        earlier, later = match_rank(y_true, y_pred)
        return ops.relu(ops.cast(later, "float32") - ops.cast(earlier, "float32"))
