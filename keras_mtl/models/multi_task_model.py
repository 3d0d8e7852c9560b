"""The model class every builder returns."""

from __future__ import annotations

import inspect
import sys
import warnings
from collections.abc import Sequence

import keras
from keras import ops

from keras_mtl import _keras_compat, training
from keras_mtl import optimizers as optimizers_module
from keras_mtl import weighting as weighting_module
from keras_mtl.layers._lookup import holds_strings
from keras_mtl.metrics import with_missing_outputs
from keras_mtl.models import _host_lookups
from keras_mtl.models.step_data import StepData, steps_per_epoch
from keras_mtl.optimizers import row_wise_step
from keras_mtl.tasks import Task, check_tasks, task_from_config, task_to_config


@keras.saving.register_keras_serializable(package="keras_mtl")
class MultiTaskModel(_keras_compat.HostedInputsModel):
    """A functional model that knows its tasks: per-task losses, missing labels,
    loss weighting, row-wise table updates and fast input paths.

    Every builder returns one; `MultiTaskModel(inputs, outputs, tasks=tasks)`
    makes one from any functional graph whose outputs are a dict keyed by task
    name. It is the functional `keras.Model` it is built as, plus what this
    class composes (each piece in its own module):

    - `compile()` with no arguments gives every task its default loss, loss
      weight and metrics (`keras_mtl.training.compile_arguments`), XLA where
      every layer allows it and the data is large or the run long enough to
      repay XLA's compilation (`jit_compile="auto"`, decided by `fit`), and several
      batches per compiled call chosen from the data
      (`steps_per_execution="auto"`). Every argument overrides one
      default: `compile(optimizer=..., loss_weighting=...,
      row_wise_updates=...)` changes only what it names. The tasks are saved
      with the model, so a reloaded model compiles the same way.
    - Missing labels: `fit` and `evaluate` accept label dicts without a key
      for some outputs; that output's metrics see only missing (NaN) labels
      (`keras_mtl.metrics.with_missing_outputs`).
    - Loss weighting: `compile(loss_weighting=...)` takes a
      `keras_mtl.weighting` strategy (or its name), which combines the task
      losses inside `fit`; the logs report `{task}_loss` and `{task}_weight`.
      A strategy that needs each task's gradient (GradNorm, Pareto, PCGrad,
      CAGrad) gets it from
      `keras_mtl.training.train_step_with_task_gradients`.
    - Row-wise updates of large embedding tables (`keras_mtl.optimizers`):
      `compile` wraps the optimizer in `RowWiseOptimizer` when a table has at
      least `AUTO_MIN_TABLE_SIZE` elements (`row_wise_updates="auto"`).
    - Fast input paths (`keras_mtl.models.step_data`): string lookups beside
      the compiled step (string features keep XLA; the model, its `.keras`
      file and its SavedModel still take raw strings) and packed in-memory
      batches gathered inside the step (their string columns looked up once,
      then gathered as ids).
    - Resumable training: `fit` tells `make_dataset` datasets which epoch it
      trains (`keras_mtl.training.ShuffleEpoch`: the shuffle order of epoch k
      is a function of the seed and k), and the model's own saved variables
      include its random-seed generators' states (dropout), so
      `keras.callbacks.BackupAndRestore` resumes a stopped run where it
      stopped, with the result of an uninterrupted one.

    Args:
        inputs, outputs: as `keras.Model`'s; `outputs` a dict keyed by task.
        tasks: the `Task`s the model is trained for (each one an output), or
            None (then `compile` needs `loss`, as Keras's does).
        **kwargs: passed to `keras.Model` (e.g. `name`).
    """

    def __init__(self, *args, tasks: Sequence[Task] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.tasks = None if tasks is None else tuple(check_tasks(tasks))
        if self.tasks is not None and isinstance(self.output, dict):
            unknown = [t.name for t in self.tasks if t.name not in self.output]
            if unknown:
                raise ValueError(
                    f"MultiTaskModel: tasks {unknown} are not outputs of the model; "
                    f"its outputs are {sorted(self.output)}."
                )
        self.step_data = StepData(self)
        # (An attribute, not a class default: torch's modules keep a layer
        # assigned later in their own dict, behind a class attribute.)
        self.loss_weighting = None
        self._compile_extras = {}
        self._steps_chosen = False
        self._jit_allowed = False  # `jit_compile="auto"` and every layer allows XLA
        self.jit_compile_reason = None

    # ---------------------------------------------------------------- config

    @property
    def features(self) -> list:
        """The feature specs of the model's inputs, as its encoders hold them (in
        their order: the order the builder was given)."""
        found, names = {}, {t.name for t in self.inputs}
        for layer in _keras_compat.nested_layers(self):
            for spec in [
                *getattr(layer, "features", ()),
                *getattr(layer, "fields", ()),
            ]:
                if spec.name in names:
                    found.setdefault(spec.name, spec)
        return list(found.values())

    def get_config(self):
        config = super().get_config()
        if self.tasks is not None:
            config["tasks"] = [task_to_config(t) for t in self.tasks]
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        tasks = config.pop("tasks", None)
        model = super().from_config(config, custom_objects=custom_objects)
        if tasks is not None:
            model.tasks = tuple(task_from_config(t) for t in tasks)
        return model

    # ---------------------------------------------------------------- strings

    @property
    def hosted_lookups(self) -> _host_lookups.Hosted:
        """The string inputs whose lookups run outside the compiled step."""
        hosted = self.__dict__.get("_hosted")
        if hosted is None:
            hosted = _host_lookups.find_hosted(self)
            self.__dict__["_hosted"] = hosted
        return hosted

    def __call__(self, *args, **kwargs):
        # JAX and torch tensors hold no strings: a direct call with string
        # inputs looks them up on the host first, as fit / predict do.
        x = args[0] if args else None
        if (
            keras.backend.backend() != "tensorflow"
            and isinstance(x, dict)
            and self.hosted_lookups
            and any(
                holds_strings(v) and not isinstance(v, keras.KerasTensor)
                for v in x.values()
            )
        ):
            args = (_host_lookups.host_data(self.hosted_lookups, x), *args[1:])
        return super().__call__(*args, **kwargs)

    def convert_hosted_input(self, name, value):
        # A hosted string input may arrive as its int32 rows (`host_data`).
        if name in self.hosted_lookups.lookups and not holds_strings(value):
            return ops.cast(value, "int32")
        return None

    def allows_jit(self) -> bool:
        # Keras's own check counts the hosted lookups, which never run inside
        # the compiled step: ask keras_mtl's, which knows.
        return bool(self.hosted_lookups) and training.supports_jit(self)

    # ---------------------------------------------------------------- compile

    def compile(
        self,
        optimizer="adam",
        loss=None,
        loss_weights=None,
        metrics=None,
        *,
        learning_rate: float | None = None,
        loss_weighting=None,
        row_wise_updates="auto",
        jit_compile="auto",
        steps_per_execution="auto",
        **kwargs,
    ):
        """`keras.Model.compile`, with every task's defaults.

        Every argument overrides one default; those not given take theirs.

        Args:
            optimizer: optimizer, its name or config. Defaults to Adam.
            loss, loss_weights, metrics: dicts keyed by task name, overriding
                those tasks' defaults (`keras_mtl.training.compile_arguments`:
                each task's masked loss, `Task.loss_weight`, masked metrics).
                A model built without tasks takes Keras's arguments as given.
            learning_rate: float or None. Set on the optimizer when given.
            loss_weighting: None (fixed `loss_weights`), a strategy name
                ("fixed", "uncertainty", "gradnorm", "dwa", "decay", "pareto",
                "pcgrad", "cagrad") or a
                `keras_mtl.weighting.LossWeighting`: how the task losses are
                combined inside `fit`. `loss_weights` still scale each task's
                loss first.
            row_wise_updates: "auto", True or False. Wrap the optimizer in
                `RowWiseOptimizer`, which updates a table's rows only when
                they are looked up: "auto" for tables of at least
                `AUTO_MIN_TABLE_SIZE` elements (smaller ones keep the exact
                dense update; a model without such a table keeps its optimizer
                as given), True for every table, False for none.
            jit_compile: bool or "auto". True and False are used as given.
                "auto" allows XLA when every layer of the step supports it
                (string lookups run beside the step and do not count; Keras's
                own "auto" keeps it off on CPU), and then each `fit` decides
                from its run and the backend
                (`keras_mtl.training.auto_jit_compile`, with the
                measurements). TensorFlow: XLA for large data (at least
                `AUTO_JIT_MIN_EPOCH_STEPS` batches an epoch) or a long run (at
                least `AUTO_JIT_MIN_STEPS` batches in all), none for a short
                run on small data, which compiling would mostly be spent on; a
                run of unknown length keeps XLA. JAX: always jitted (without,
                Keras runs its step op by op, many times slower from the first
                epoch on). `evaluate` and `predict` before any `fit` decide
                for their pass. `choose_jit_compile(steps_per_epoch, epochs)`
                decides ahead; `jit_compile_reason` says why. Off with
                `run_eagerly=True` and on the torch backend (where it would
                mean `torch.compile`, minutes of compilation).
            steps_per_execution: int or "auto". Batches per compiled call.
                "auto" chooses from the data's length
                (`keras_mtl.training.auto_steps_per_execution`): each `fit`
                from its training data, `evaluate` when no `fit` has chosen
                yet. Batch callbacks and the progress bar see every n-th batch.
            **kwargs: passed to `keras.Model.compile`.
        """
        if steps_per_execution != "auto" and (
            isinstance(steps_per_execution, bool)
            or not isinstance(steps_per_execution, int)
            or steps_per_execution < 1
        ):
            raise ValueError(
                "MultiTaskModel.compile: steps_per_execution must be 'auto' or an "
                f"int >= 1; got {steps_per_execution!r}."
            )
        if self.tasks is not None:  # (checks the arguments before any change)
            args = training.compile_arguments(self.tasks, loss, loss_weights, metrics)
            loss, loss_weights, metrics = (
                args[k] for k in ("loss", "loss_weights", "metrics")
            )
        optimizer = keras.optimizers.get(optimizer)
        if isinstance(optimizer, optimizers_module.LossScaleOptimizer):
            # keras-mtl's scaler is the one `compile` adds (below): a reloaded
            # compile config holds it; wrapped again, the loss would be
            # scaled twice.
            optimizer = optimizer.inner_optimizer
        if learning_rate is not None:
            optimizer.learning_rate = learning_rate
        optimizer = optimizers_module.row_wise_for_tables(
            optimizer, self.trainable_variables, row_wise_updates
        )
        if self.loss_weighting is not None:  # a recompile replaces the strategy
            _keras_compat.untrack_layer(self, self.loss_weighting)
            self.loss_weighting = None
        self._steps_chosen = False
        jit = jit_compile
        if jit == "auto":  # (Keras's "auto" keeps XLA off on CPU)
            eager = kwargs.get("run_eagerly") or keras.backend.backend() == "torch"
            jit = not eager and training.supports_jit(self)
        self._jit_allowed = jit_compile == "auto" and bool(jit)
        self.jit_compile_reason = None
        if loss_weighting is not None:
            loss_weighting = self._set_loss_weighting(
                loss, loss_weights, loss_weighting
            )
        # Loss scaling (mixed_float16), before Keras wraps the optimizer in its
        # own, whose check misses table rows. Not for a weighting that takes
        # its own task gradients: they are not scaled, and the scaler would
        # divide them by the scale.
        own_gradients = bool(loss_weighting and loss_weighting.needs_task_gradients)
        kwargs["auto_scale_loss"] = kwargs.get("auto_scale_loss", True) and not (
            own_gradients
        )
        optimizer = optimizers_module.loss_scaled(
            optimizer, self.dtype_policy, kwargs["auto_scale_loss"]
        )
        if isinstance(optimizer, optimizers_module.LossScaleOptimizer) and isinstance(
            optimizer.inner_optimizer, optimizers_module.RowWiseOptimizer
        ):
            warnings.warn(
                "MultiTaskModel.compile: under mixed_float16 the loss scaler "
                "unscales the embedding tables' gradients as dense tensors, so "
                "the row-wise table updates cost as much as dense ones; "
                "mixed_bfloat16 needs no loss scaling and keeps them row-wise.",
                stacklevel=2,
            )
        super().compile(
            optimizer,
            None if loss_weighting is not None else loss,
            None if loss_weighting is not None else loss_weights,
            metrics,
            jit_compile=jit,
            steps_per_execution=1
            if steps_per_execution == "auto"
            else steps_per_execution,
            **kwargs,
        )
        if loss_weighting is not None:
            self.loss = loss  # (what the strategy weights; Keras was given None)
        # What `get_compile_config` adds, so that loading compiles the same way.
        self._compile_extras = {
            "loss": loss,
            "loss_weights": loss_weights,
            "loss_weighting": loss_weighting,
            "row_wise_updates": row_wise_updates,
            "jit_compile": jit_compile,
            "steps_per_execution": steps_per_execution,
        }

    def _set_loss_weighting(self, loss, loss_weights, loss_weighting):
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
        if strategy.needs_task_gradients and not isinstance(
            strategy, weighting_module.GradientWeighting
        ):
            raise TypeError(
                f"MultiTaskModel.compile: {type(strategy).__name__} sets "
                "needs_task_gradients but is not a "
                "keras_mtl.weighting.GradientWeighting (which says where the "
                "gradients are taken and what to do with them); subclass it."
            )
        strategy.configure(loss, loss_weights)
        self.loss_weighting = strategy
        return strategy

    def get_compile_config(self):
        config = super().get_compile_config()
        if config:
            extras = {k: v for k, v in self._compile_extras.items() if v is not None}
            config.update(keras.saving.serialize_keras_object(extras))
        return config

    def compile_from_config(self, config):
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    # ---------------------------------------------------------------- saving

    def save_own_variables(self, store):
        # The seed generators' states too (dropout): a restored backup resumes
        # the same random draws (`keras_mtl.training.random_state`).
        super().save_own_variables(store)
        training.save_random_states(self, store)

    def load_own_variables(self, store):
        super().load_own_variables(training.load_random_states(self, store))

    # ---------------------------------------------------------------- losses

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        if self.loss_weighting is None:
            return super().compute_loss(x, y, y_pred, sample_weight, training=training)
        return self.loss_weighting.total_loss(
            y, y_pred, sample_weight, self.losses, training=training
        )

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        y = with_missing_outputs(y, y_pred)
        return super().compute_metrics(x, y, y_pred, sample_weight)

    # ---------------------------------------------------------------- steps
    # On JAX, Keras passes the state first: `train_step(state, data)`.

    def train_step(self, *args):
        *state, data = args
        data = self.step_data.unpack(data)
        if self.loss_weighting is not None and self.loss_weighting.needs_task_gradients:
            return training.train_step_with_task_gradients(self, data, *state)
        if row_wise_step.uses_row_wise_step(self):
            # JAX and torch: the tables' gradients as rows, not table-sized.
            return row_wise_step.row_wise_train_step(self, data, *state)
        return super().train_step(*state, data)

    def test_step(self, *args):
        *state, data = args
        return super().test_step(*state, self.step_data.unpack(data))

    # ---------------------------------------------------------------- loops

    def _auto_steps(self, data, steps=None, other_steps=(), by_fit=True) -> None:
        """Choose `steps_per_execution` when compiled with "auto".

        From the epoch's batches: `steps` when the caller fixed them, else the
        data's length; the count divides every fixed step count (Keras runs
        whole calls). `fit` chooses for its data (a change drops the traced
        functions, traced for the old count); `evaluate` keeps the current
        choice, and with it `fit`'s traced step (inside `fit`, for the
        validation data, too), unless nothing has chosen yet or its `steps`
        would not be whole calls.
        """
        if self._compile_extras.get("steps_per_execution") != "auto":
            return
        fixed = [n for n in (steps, *other_steps) if n]
        if not by_fit and self._steps_chosen:
            if all(n % self.steps_per_execution == 0 for n in fixed):
                return
        self._steps_chosen = True
        batches = steps if steps else steps_per_epoch(data)
        count = training.auto_steps_per_execution(batches, fixed)
        if count != self.steps_per_execution:
            self.steps_per_execution = count
            self.train_function = self.test_function = self.predict_function = None

    # ---------------------------------------------------------------- XLA

    def choose_jit_compile(self, steps_per_epoch: int | None, epochs: int = 1) -> bool:
        """Apply `jit_compile="auto"` to a run of `epochs` epochs of
        `steps_per_epoch` batches (None: unknown) and return whether XLA is on.

        The policy is per backend (`keras_mtl.training.auto_jit_compile`):
        on TensorFlow from the run's length, on JAX always on (its un-jitted
        step runs op by op), on torch always off (on would be
        `torch.compile`, minutes of compilation).

        `fit` calls it for its own run (`evaluate` and `predict` for their
        pass, before any `fit`); call it first to know the decision ahead
        (e.g. to print it). A model compiled with True or False, or whose
        layers do not allow XLA, keeps its setting. A change drops the traced
        functions. `jit_compile_reason` says what was decided and why.
        """
        if self._compile_extras.get("jit_compile") != "auto":
            return bool(self.jit_compile)
        backend = keras.backend.backend()
        if backend == "torch" and not self.run_eagerly:
            self.jit_compile_reason = training.auto_jit_reason(
                False, steps_per_epoch, epochs, backend
            )
            return bool(self.jit_compile)
        if not self._jit_allowed:
            self.jit_compile_reason = (
                "off: XLA not allowed (a layer of the step, or run_eagerly)"
            )
            return bool(self.jit_compile)
        # (positional: tests/conftest.py replaces the policy by `lambda *run`)
        jit = bool(training.auto_jit_compile(steps_per_epoch, epochs, backend))
        self.jit_compile_reason = training.auto_jit_reason(
            jit, steps_per_epoch, epochs, backend
        )
        if jit != bool(self.jit_compile):
            self.jit_compile = jit
            self.train_function = self.test_function = self.predict_function = None
        return jit

    def _auto_jit(self, data, steps=None, epochs=1, batch_size=None) -> None:
        """`choose_jit_compile` for a run over `data` (`steps` batches an
        epoch when given, else the data's length)."""
        if not steps:
            steps = steps_per_epoch(data)
        if not steps and isinstance(data, keras.utils.PyDataset):
            steps = data.num_batches  # (its len() counts batches, not rows)
        elif not steps and data is not None and not hasattr(data, "cardinality"):
            try:  # arrays or dicts of arrays: Keras's batching
                rows = len(next(iter(keras.tree.flatten(data))))
                steps = -(-rows // (batch_size or 32))
            except (TypeError, StopIteration):
                steps = None
        self.choose_jit_compile(steps or None, max(1, int(epochs)))

    def fit(self, *args, **kwargs):
        """`keras.Model.fit`; with a loss weighting, its per-epoch hooks run and
        `{task}_weight` enters the logs. Fast input paths: see the class."""
        bound = inspect.signature(keras.Model.fit).bind(self, *args, **kwargs)
        arguments = bound.arguments
        # Each epoch reads its own shuffle order (resumable: see make_dataset).
        shuffle_epoch = training.ShuffleEpoch(
            arguments.get("x"), arguments.get("validation_data")
        )
        arguments["callbacks"] = [shuffle_epoch, *(arguments.get("callbacks") or [])]
        for key in ("x", "validation_data"):
            if key in arguments:
                arguments[key] = self.step_data.for_training(arguments[key])
        if "shuffle" not in arguments and _is_tf_dataset(arguments.get("x")):
            # A dataset shuffles itself (make_dataset: every epoch); Keras's
            # default shuffle=True would only warn that it is ignored.
            arguments["shuffle"] = False
        self._auto_steps(
            arguments.get("x"),
            arguments.get("steps_per_epoch"),
            [arguments.get("validation_steps")],
        )
        self._auto_jit(
            arguments.get("x"),
            arguments.get("steps_per_epoch"),
            arguments.get("epochs", 1) - arguments.get("initial_epoch", 0),
            arguments.get("batch_size"),
        )
        if self.loss_weighting is not None:
            arguments["callbacks"] = [
                _LossWeightingCallback(self.loss_weighting),
                *(arguments.get("callbacks") or []),
            ]
        return super().fit(*bound.args[1:], **bound.kwargs)

    def evaluate(self, *args, **kwargs):
        """`keras.Model.evaluate` (fast input paths: see the class)."""
        bound = inspect.signature(keras.Model.evaluate).bind(self, *args, **kwargs)
        arguments = bound.arguments
        arguments["x"] = self.step_data.for_training(arguments.get("x"))
        self._auto_steps(arguments["x"], arguments.get("steps"), by_fit=False)
        if self.jit_compile_reason is None:  # (no `fit` has decided yet)
            self._auto_jit(
                arguments["x"], arguments.get("steps"), 1, arguments.get("batch_size")
            )
        return super().evaluate(*bound.args[1:], **bound.kwargs)

    def predict(self, x, *args, **kwargs):
        """`keras.Model.predict`, string inputs looked up outside the step."""
        if self.jit_compile_reason is None:  # (no `fit` has decided yet)
            bound = inspect.signature(keras.Model.predict).bind(
                self, x, *args, **kwargs
            )
            arguments = bound.arguments
            self._auto_jit(x, arguments.get("steps"), 1, arguments.get("batch_size"))
        return super().predict(self.step_data.hosted(x), *args, **kwargs)

    def train_on_batch(self, x, *args, **kwargs):
        return super().train_on_batch(self.step_data.hosted(x), *args, **kwargs)

    def test_on_batch(self, x, *args, **kwargs):
        return super().test_on_batch(self.step_data.hosted(x), *args, **kwargs)

    def predict_on_batch(self, x):
        return super().predict_on_batch(self.step_data.hosted(x))


def _is_tf_dataset(data) -> bool:
    tf = sys.modules.get("tensorflow")  # (not imported: not a tf.data dataset)
    return tf is not None and isinstance(data, tf.data.Dataset)


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
