"""The model class every builder returns."""

from __future__ import annotations

import inspect
import math

import keras
from keras import ops

from keras_mtl import optimizers as optimizers_module
from keras_mtl import weighting as weighting_module
from keras_mtl.data import packed as packed_module
from keras_mtl.layers._lookup import holds_strings
from keras_mtl.models import _host_lookups


@keras.saving.register_keras_serializable(package="keras_mtl")
class MultiTaskModel(keras.Model):
    """A functional model with per-task losses, missing labels and loss weighting.

    Every builder returns one. It behaves like the functional `keras.Model` it is
    built as (`MultiTaskModel(inputs, outputs)`), plus:

    - `fit` and `evaluate` accept label dicts without a key for some outputs:
      that output's metrics see only missing (NaN) labels. Plain Keras raises a
      `KeyError` instead, which would forbid e.g. training ESMM (outputs `ctr`,
      `cvr`, `ctcvr`) on data labelled for `ctr` and `ctcvr` only.
    - `compile(..., loss_weighting=...)` takes a `keras_mtl.weighting` strategy
      (or its name). The strategy then combines the per-task losses inside
      plain `fit`; the logs report each task's `{task}_loss` and `{task}_weight`.
      The strategy and its state are saved with the model and restored by
      `keras.saving.load_model`.
    - Large embedding tables are updated row-wise: `compile` wraps the
      optimizer in `keras_mtl.optimizers.RowWiseOptimizer` when a table has at
      least `AUTO_MIN_TABLE_SIZE` elements (`row_wise_updates="auto"`), so a
      step touches only the rows a batch looked up (on TensorFlow), and costs
      about the same for a table of 1M rows or of 10M.
    - String features keep XLA: the string vocabularies and string hashes of
      its inputs run outside the compiled step (mapped over a `tf.data`
      pipeline, or applied to arrays, by `fit`, `evaluate`, `predict` and the
      `*_on_batch` methods), which sees their int32 table rows. The model still
      takes raw strings everywhere else: calling it, its SavedModel, a
      reloaded `.keras` file (`models._host_lookups` says how).
    - In-memory data trains without a per-batch pipeline: given a dataset
      `keras_mtl.data.make_dataset` built from memory, as it returned it, `fit`
      and `evaluate` gather each batch inside the compiled step from the
      packed columns the dataset carries (`keras_mtl.data.packed`). The
      batches, their order and the results are those of the dataset; a
      reshuffle every epoch costs one permutation. (TensorFlow backend, no
      distribution strategy, no string columns; any other data, or a dataset
      transformed after `make_dataset`, is read as Keras reads it.)
    """

    loss_weighting = None

    # ---------------------------------------------------------------- strings

    @property
    def hosted_lookups(self) -> _host_lookups.Hosted:
        """The string inputs whose lookups run outside the compiled step."""
        hosted = self.__dict__.get("_hosted")
        if hosted is None:
            hosted = _host_lookups.find_hosted(self)
            self.__dict__["_hosted"] = hosted
        return hosted

    def _convert_inputs_to_tensors(self, flat_inputs):
        # A hosted string input may arrive as its int32 rows (`host_data`):
        # keep those as rows, convert the rest as Keras does.
        hosted = self.hosted_lookups.lookups
        if not hosted or any(x is None for x in flat_inputs):
            return super()._convert_inputs_to_tensors(flat_inputs)
        return [
            ops.cast(x, "int32")
            if spec.name in hosted and not holds_strings(x)
            else ops.convert_to_tensor(x, dtype=spec.dtype, sparse=spec.sparse)
            for x, spec in zip(flat_inputs, self._inputs)
        ]

    @property
    def jit_compile(self):
        return keras.Model.jit_compile.fget(self)

    @jit_compile.setter
    def jit_compile(self, value):
        # Keras's own check counts the hosted lookups, which never run inside
        # the compiled step: ask keras_mtl's, which knows.
        from keras_mtl.training import supports_jit

        if value and self.hosted_lookups and supports_jit(self):
            self._jit_compile = value
        else:
            keras.Model.jit_compile.fset(self, value)

    def _host(self, data):
        """`data` with the hosted string inputs as rows (`host_data`)."""
        return _host_lookups.host_data(
            self.hosted_lookups, data, strings_may_pass=not self.jit_compile
        )

    def compile(
        self,
        optimizer="rmsprop",
        loss=None,
        loss_weights=None,
        metrics=None,
        *args,
        loss_weighting=None,
        row_wise_updates="auto",
        **kwargs,
    ):
        """`keras.Model.compile`, plus `loss_weighting` and `row_wise_updates`.

        Args:
            loss_weighting: None (Keras's fixed `loss_weights`), a strategy name
                ("fixed", "uncertainty", "gradnorm", "dwa", "decay") or a
                `keras_mtl.weighting.LossWeighting`. With a strategy, `loss` must
                be a dict of task name to loss; `loss_weights` then scales each
                task's loss before the strategy weights it.
            row_wise_updates: "auto", True or False. Wrap the optimizer in
                `RowWiseOptimizer`, which updates a table's rows only when they
                are looked up (see its docstring for the optimizers it covers):
                "auto" for the tables of at least `AUTO_MIN_TABLE_SIZE`
                elements (smaller ones keep the optimizer's exact dense
                update; a model without such a table keeps its optimizer as
                given), True for every table, False for none. Defaults to
                "auto".
            Other arguments: see `keras.Model.compile`.
        """
        self._drop_loss_weighting()
        optimizer = self._row_wise(optimizer, row_wise_updates)
        if loss_weighting is None:
            super().compile(optimizer, loss, loss_weights, metrics, *args, **kwargs)
        else:
            self._compile_with_weighting(
                optimizer, loss, loss_weights, metrics, loss_weighting, *args, **kwargs
            )
        if row_wise_updates != "auto":  # saved: loading decides as compiling did
            self._compile_config.config["row_wise_updates"] = row_wise_updates

    def _compile_with_weighting(
        self, optimizer, loss, loss_weights, metrics, loss_weighting, *args, **kwargs
    ):
        if not isinstance(loss, dict) or not loss:
            raise ValueError(
                "MultiTaskModel.compile: a loss_weighting needs `loss` as a dict of "
                f"task name to loss, got {loss!r}."
            )
        outputs = sorted(self.output) if isinstance(self.output, dict) else []
        unknown = sorted(set(loss) - set(outputs))
        if unknown:
            raise ValueError(
                f"MultiTaskModel.compile: losses for {unknown}, which are not "
                f"outputs; the outputs are {outputs}."
            )
        strategy = weighting_module.get(loss_weighting)
        self._task_losses = {n: keras.losses.get(fn) for n, fn in loss.items()}
        strategy.configure(self._task_losses, loss_weights)
        self.loss_weighting = strategy
        super().compile(optimizer, None, None, metrics, *args, **kwargs)
        # What `get_compile_config` saves, so that loading restores the strategy.
        self._compile_config.config.update(
            loss=loss, loss_weights=loss_weights, loss_weighting=strategy
        )

    def _row_wise(self, optimizer, row_wise_updates):
        """`optimizer`, wrapped in `RowWiseOptimizer` as `row_wise_updates` says."""
        if row_wise_updates not in ("auto", True, False):
            raise ValueError(
                "MultiTaskModel.compile: row_wise_updates must be 'auto', True or "
                f"False; got {row_wise_updates!r}."
            )
        wrapper = optimizers_module.RowWiseOptimizer
        if row_wise_updates is False or isinstance(optimizer, wrapper):
            return optimizer
        auto = row_wise_updates == "auto"
        smallest = optimizers_module.AUTO_MIN_TABLE_SIZE if auto else 0
        sizes = [
            math.prod(v.shape)
            for v in self.trainable_variables
            if optimizers_module.is_table(v)
        ]
        if not any(size >= smallest for size in sizes):
            return optimizer
        return wrapper(keras.optimizers.get(optimizer), min_table_size=smallest)

    def _drop_loss_weighting(self) -> None:
        old = self.loss_weighting
        if old is not None:
            if old in self._layers:  # untrack its weights and metrics
                self._layers.remove(old)
            self.__dict__.pop("loss_weighting", None)
        self._task_losses = None

    def compile_from_config(self, config):
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    # ---------------------------------------------------------------- losses

    def task_losses(self, y, y_pred, sample_weight=None) -> dict:
        """Each weighted task's loss on this batch, `{task: scalar}` (tasks without
        labels in `y` are left out)."""
        losses = {}
        for name, loss_fn in self._task_losses.items():
            if not isinstance(y, dict) or name not in y:
                continue
            weight = (
                sample_weight.get(name)
                if isinstance(sample_weight, dict)
                else sample_weight
            )
            losses[name] = ops.cast(loss_fn(y[name], y_pred[name], weight), "float32")
        self.loss_weighting.track(losses)
        return losses

    def _extra_losses(self):
        """The losses layers added (`add_loss`: auxiliary terms, penalties)."""
        return [ops.cast(loss, "float32") for loss in self.losses]

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        if self.loss_weighting is None:
            return super().compute_loss(x, y, y_pred, sample_weight, training=training)
        total = self.loss_weighting.combine(
            self.task_losses(y, y_pred, sample_weight), training=training
        )
        return total + sum(self._extra_losses(), ops.zeros(()))

    def train_step(self, data):
        data = self._unpack(data)
        if self.loss_weighting is None or not self.loss_weighting.needs_task_gradients:
            return super().train_step(data)
        return self._train_step_with_task_gradients(data)

    def _train_step_with_task_gradients(self, data):
        """A TensorFlow train step that also hands the strategy each task's
        gradient norm at the shared layer (GradNorm)."""
        if keras.backend.backend() != "tensorflow":
            raise NotImplementedError(
                f"{type(self.loss_weighting).__name__} needs per-task gradients, "
                "implemented for the TensorFlow backend only; this is "
                f"{keras.backend.backend()!r}."
            )
        import tensorflow as tf

        strategy = self.loss_weighting
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        shared = strategy.shared_weights(self)
        with tf.GradientTape(persistent=True) as tape:
            y_pred = self(x, training=True)
            losses = self.task_losses(y, y_pred, sample_weight)
            total = strategy.combine(losses) + sum(self._extra_losses(), 0.0)
            scaled = strategy.scaled(losses)
        variables = self.trainable_weights
        gradients = tape.gradient(total, variables)
        norms = []
        for name, value in zip(strategy.task_names, scaled):
            # A task without labels in this batch has no gradient (norm 0).
            grads = tape.gradient(value, shared) if name in losses else []
            grads = [g for g in grads if g is not None]
            norms.append(tf.linalg.global_norm(grads) if grads else tf.zeros(()))
        del tape
        self.optimizer.apply_gradients(zip(gradients, variables))
        strategy.update_from_gradients(scaled, norms)
        batch = tf.shape(keras.tree.flatten(x)[0])[0]
        self._loss_tracker.update_state(total, sample_weight=batch)
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def test_step(self, data):
        return super().test_step(self._unpack(data))

    # ---------------------------------------------------------------- metrics

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        if isinstance(y, dict) and isinstance(y_pred, dict):
            missing = [k for k in y_pred if k not in y]
            if missing:
                y = dict(y)
                for k in missing:
                    y[k] = ops.full_like(y_pred[k], float("nan"))
        return super().compute_metrics(x, y, y_pred, sample_weight)

    # ---------------------------------------------------------------- fit

    def _build_from_spec(self, data) -> bool:
        """Build the optimizer, compiled losses and metrics before the first step.

        On TensorFlow without a distribution strategy, Keras defers this to the
        first trace of the train or test step. Their variables are then created
        inside a `tf.function`, and TensorFlow traces the step a second time:
        the first epoch of every `fit` pays for two traces (and two XLA
        compilations). Built here symbolically, from the data's `element_spec`
        (no batch is read), the step is traced once. Returns whether it built.
        """
        # Keras's own builder (`Trainer._symbolic_build`, private): without it
        # (a future Keras), the model trains as plain Keras does.
        symbolic_build = getattr(self, "_symbolic_build", None)
        if keras.backend.backend() != "tensorflow" or symbolic_build is None:
            return False  # (JAX and torch trainers build symbolically themselves)
        if getattr(self, "_distribute_strategy", None) is not None:
            return False  # Keras builds under its strategy itself
        import tensorflow as tf

        if not isinstance(data, tf.data.Dataset):
            return False
        specs = keras.tree.flatten(data.element_spec)
        if not all(isinstance(spec, tf.TensorSpec) for spec in specs):
            return False
        symbolic_build(data_batch=data.element_spec)
        return True

    def _step_data(self, data):
        """What the step reads for `data`: the index batches of packed
        in-memory columns (gathered by the step, `_unpack`), or `data` with
        the hosted string inputs as rows (`_host`)."""
        if packed_module.is_step_dataset(data):  # (fit's own evaluate)
            return data
        packed = packed_module.packed_columns(data)
        if (
            packed is None
            or any(dtype == "string" for dtype in packed.dtypes)
            or not self._build_from_spec(data)  # (the step's data has no spec)
        ):
            data = self._host(data)
            self._build_from_spec(data)
            return data
        layouts = self.__dict__.setdefault("_packed_layouts", {})
        layouts[packed.key] = packed.layout_only()
        return packed.step_dataset()

    def _unpack(self, data):
        return packed_module.unpack_step_element(
            data, self.__dict__.get("_packed_layouts", {})
        )

    def fit(self, *args, **kwargs):
        """`keras.Model.fit`; with a loss weighting, its per-epoch hooks run and
        `{task}_weight` enters the logs. String inputs are looked up outside
        the compiled step (see the class docstring)."""
        bound = inspect.signature(keras.Model.fit).bind(self, *args, **kwargs)
        arguments = bound.arguments
        for key in ("x", "validation_data"):
            if key in arguments:
                arguments[key] = self._step_data(arguments[key])
        if self.loss_weighting is not None:
            arguments["callbacks"] = [
                _LossWeightingCallback(self.loss_weighting),
                *(arguments.get("callbacks") or []),
            ]
        return super().fit(*bound.args[1:], **bound.kwargs)

    def evaluate(self, x=None, *args, **kwargs):
        """`keras.Model.evaluate` (the test step traced once, see `fit`)."""
        return super().evaluate(self._step_data(x), *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        """`keras.Model.predict`, string inputs looked up outside the step."""
        return super().predict(self._host(x), *args, **kwargs)

    def train_on_batch(self, x, *args, **kwargs):
        return super().train_on_batch(self._host(x), *args, **kwargs)

    def test_on_batch(self, x, *args, **kwargs):
        return super().test_on_batch(self._host(x), *args, **kwargs)

    def predict_on_batch(self, x):
        return super().predict_on_batch(self._host(x))


class _LossWeightingCallback(keras.callbacks.Callback):
    """Runs a strategy's epoch hooks and logs the weights it used."""

    def __init__(self, strategy):
        super().__init__()
        self.strategy = strategy

    def on_epoch_begin(self, epoch, logs=None):
        self.strategy.on_epoch_begin(epoch)

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        for name, value in self.strategy.weights_in_force().items():
            logs[f"{name}_weight"] = value
        self.strategy.on_epoch_end(
            epoch,
            {n: float(logs[f"{n}_loss"]) for n in self.strategy.task_names},
        )
