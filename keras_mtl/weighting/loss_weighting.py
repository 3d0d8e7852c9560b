"""The base of every loss-weighting strategy, and `get` to pick one by name."""

from __future__ import annotations

import keras
from keras import ops

from keras_mtl._checks import check_non_negative

#: Losses read as a negative log-likelihood of a classifier (Kendall's "classification
#: form" of uncertainty weighting); every other loss uses the regression form.
CLASSIFICATION_LOSSES = (
    "MaskedBinaryCrossentropy",
    "BinaryCrossentropy",
    "binary_crossentropy",
)


@keras.saving.register_keras_serializable(package="keras_mtl")
class LossWeighting(keras.layers.Layer):
    """Combines the per-task losses of a multi-task model into its training loss.

    A strategy is passed to `MultiTaskModel.compile(loss_weighting=...)` (every
    builder's model) and then works inside a
    plain `model.fit`: the model hands it each task's loss every step
    (`combine`), and every epoch's mean task losses (`on_epoch_end`). The model
    reports each task's loss as `{task}_loss` and the weight in force at the end
    of each epoch as `{task}_weight` in the logs (so in `History`).

    `Task.loss_weight` (λ_k) always scales task k's loss; a strategy weights the
    scaled losses L_k. The base class is the fixed weighting `Σ_k w_k L_k`.

    Subclasses keep their state in weights created in `build`, so the state is
    saved with the model and restored when a `.keras` file is loaded.

    Args:
        weights: dict of task name to a fixed weight w_k, or None (all 1).
            Defaults to None.
    """

    #: Whether the training step must compute each task's gradient at the
    #: shared weights (GradNorm, Pareto, PCGrad, CAGrad: `GradientWeighting`).
    needs_task_gradients = False

    def __init__(self, weights: dict | None = None, **kwargs):
        super().__init__(**kwargs)
        self.fixed_weights = dict(weights) if weights is not None else None
        for task, w in (self.fixed_weights or {}).items():
            check_non_negative(type(self).__name__, f"the weight of task {task!r}", w)
        self.task_names = None

    # ------------------------------------------------------------------ set-up

    def configure(self, losses: dict, loss_weights: dict | None = None) -> None:
        """Bind the strategy to the tasks of `losses` (name -> loss object).

        Called by `MultiTaskModel.compile`. A task's kind is "classification"
        when its loss is a binary cross-entropy, else "regression". One
        instance serves one model: its state lives in its weights.
        """
        losses = {name: keras.losses.get(fn) for name, fn in losses.items()}
        names = tuple(losses)
        if self.task_names is not None and names != self.task_names:
            raise ValueError(
                f"{type(self).__name__} {self.name!r} already weights the tasks "
                f"{list(self.task_names)}; use a new instance for {list(names)}."
            )
        if not names:
            raise ValueError(f"{type(self).__name__}: there is no task loss to weight.")
        self.task_names = names
        self.task_loss_fns = losses
        self.task_kinds = tuple(
            "classification"
            if getattr(loss, "__name__", type(loss).__name__) in CLASSIFICATION_LOSSES
            else "regression"
            for loss in losses.values()
        )
        if isinstance(loss_weights, (list, tuple)):  # Keras allows one per output
            loss_weights = dict(zip(names, loss_weights))
        self.loss_weights = tuple(
            float((loss_weights or {}).get(n, 1.0)) for n in names
        )
        self._check_tasks()
        if not self.built:
            self.build()

    def _check_tasks(self) -> None:
        """Reject settings for tasks that have no loss."""
        unknown = sorted(set(self.fixed_weights or {}) - set(self.task_names))
        if unknown:
            raise ValueError(
                f"{type(self).__name__}: weights for {unknown}, which are not tasks "
                f"with a loss; the tasks are {list(self.task_names)}."
            )

    @property
    def num_tasks(self) -> int:
        return len(self.task_names)

    def initial_weights(self) -> list[float]:
        """w_k before training: the fixed weights (1 for tasks not given)."""
        return [float((self.fixed_weights or {}).get(n, 1.0)) for n in self.task_names]

    def get_build_config(self):
        """None: `configure` (called by `compile`) builds the strategy."""
        return None

    def build(self, input_shape=None):
        # Each task's loss, reported as `{task}_loss` (they are this layer's
        # metrics, so the model resets and logs them with its own).
        self.loss_trackers = [
            keras.metrics.Mean(name=f"{n}_loss") for n in self.task_names
        ]
        self.task_weights = self.add_weight(
            name="task_weights",
            shape=(self.num_tasks,),
            initializer=keras.initializers.Constant(self.initial_weights()),
            trainable=False,
        )

    # ------------------------------------------------------------------ training

    def task_losses(self, y, y_pred, sample_weight=None) -> dict:
        """Each task's loss on this batch, `{task: scalar}` (tasks without labels
        in `y` are left out), recorded in its `{task}_loss` metric."""
        losses = {}
        for name, loss_fn in self.task_loss_fns.items():
            if not isinstance(y, dict) or name not in y:
                continue
            weight = (
                sample_weight.get(name)
                if isinstance(sample_weight, dict)
                else sample_weight
            )
            losses[name] = ops.cast(loss_fn(y[name], y_pred[name], weight), "float32")
        self.track(losses)
        return losses

    def total_loss(self, y, y_pred, sample_weight=None, extra_losses=(), training=True):
        """The training loss of a batch: the task losses combined, plus
        `extra_losses` (what layers added with `add_loss`)."""
        losses = self.task_losses(y, y_pred, sample_weight)
        return self.total(losses, extra_losses, training)

    def total(self, losses: dict, extra_losses=(), training: bool = True):
        """`combine(losses)` plus `extra_losses`."""
        extra = [ops.cast(loss, "float32") for loss in extra_losses]
        return self.combine(losses, training=training) + sum(extra, ops.zeros(()))

    def track(self, losses: dict) -> None:
        """Record each task's loss of this batch in its `{task}_loss` metric."""
        for name, tracker in zip(self.task_names, self.loss_trackers):
            if name in losses:
                tracker.update_state(losses[name])

    def scaled(self, losses: dict) -> list:
        """`[λ_k · loss_k]` in task order (missing tasks count 0)."""
        return [
            ops.cast(losses[n], "float32") * lam if n in losses else ops.zeros(())
            for n, lam in zip(self.task_names, self.loss_weights)
        ]

    def combine(self, losses: dict, training: bool = True):
        """The training loss from each task's loss `{task: scalar}`."""
        return ops.sum(ops.stack(self.scaled(losses)) * self.task_weights)

    def weights_in_force(self) -> dict[str, float]:
        """`{task: w_k}`: the weight each task's loss gets now."""
        values = keras.ops.convert_to_numpy(self.task_weights)
        return {n: float(v) for n, v in zip(self.task_names, values)}

    def on_epoch_begin(self, epoch: int) -> None:
        """Called before epoch `epoch` (0-based) of `fit`."""

    def on_epoch_end(self, epoch: int, task_losses: dict[str, float]) -> None:
        """Called after epoch `epoch` with each task's mean training loss."""

    def get_config(self):
        return {
            **super().get_config(),
            "weights": self.fixed_weights,
        }


def get(identifier) -> LossWeighting:
    """A fresh strategy from a name, a config dict, or an instance (returned as is).

    Names: "fixed", "uncertainty", "gradnorm", "dwa", "decay", "pareto",
    "pcgrad", "cagrad" (their defaults).

    Example:
    >>> type(get("dwa")).__name__
    'DynamicWeightAverage'
    >>> from keras_mtl.weighting import EpochDecay
    >>> config = keras.saving.serialize_keras_object(EpochDecay(decay=0.5))
    >>> get(config).decay
    0.5
    """
    from keras_mtl.weighting import STRATEGIES

    if isinstance(identifier, LossWeighting):
        return identifier
    if isinstance(identifier, str):
        if identifier not in STRATEGIES:
            raise ValueError(
                f"Unknown loss weighting {identifier!r}; choose one of "
                f"{sorted(STRATEGIES)} or pass a LossWeighting."
            )
        return STRATEGIES[identifier]()
    if isinstance(identifier, dict):
        return keras.saving.deserialize_keras_object(identifier)
    raise TypeError(
        f"A loss weighting must be a name, a config dict or a LossWeighting, got "
        f"{identifier!r}."
    )
