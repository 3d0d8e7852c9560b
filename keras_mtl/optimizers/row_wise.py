"""Row-wise ("lazy") optimizer updates for embedding tables."""

from __future__ import annotations

import math
import warnings

import keras
from keras import ops

from keras_mtl._keras_compat import uses_weight_decay
from keras_mtl.layers._tables import is_table

#: Inner optimizers whose table updates are row-wise, subclasses included (AdamW
#: is an Adam); others update densely.
ROW_WISE_OPTIMIZERS = (
    keras.optimizers.Adam,
    keras.optimizers.Adagrad,
    keras.optimizers.SGD,
)
#: `row_wise_updates="auto"`: tables of at least this many elements (16 MiB of
#: float32, e.g. 262,144 rows of width 16) are updated row-wise; smaller ones get
#: the exact dense update, which costs little at that size.
AUTO_MIN_TABLE_SIZE = 1 << 22
#: Backends whose training step hands the optimizer a table's gradient as rows:
#: TensorFlow (`tf.IndexedSlices` from its gather), JAX and torch (`RowGradient`,
#: from `MultiTaskModel`'s row-wise step, `keras_mtl.optimizers.row_wise_step`).
ROW_WISE_BACKENDS = ("tensorflow", "jax", "torch")


class RowGradient:
    """A table's gradient as rows: `values[i]` is the gradient of row `ids[i]`
    (ids may repeat; their rows' gradients add up), as `tf.IndexedSlices` on
    TensorFlow. `keras_mtl.optimizers.row_wise_step` hands these to
    `RowWiseOptimizer` on JAX and torch."""

    def __init__(self, ids, values):
        self.ids = ids
        self.values = values


def _rule(optimizer) -> str | None:
    """The row-wise rule of `optimizer`: "adam", "adagrad", "sgd" or None."""
    for cls, rule in zip(ROW_WISE_OPTIMIZERS, ("adam", "adagrad", "sgd")):
        if isinstance(optimizer, cls):
            return rule
    return None


def _unsupported(optimizer) -> str | None:
    """Why `optimizer`'s table updates cannot be row-wise (None: they can)."""
    name = type(optimizer).__name__
    if _rule(optimizer) is None:
        return f"{name} has no row-wise update"
    if getattr(optimizer, "amsgrad", False):
        return f"{name}(amsgrad=True) has no row-wise update"
    for option in ("use_ema", "gradient_accumulation_steps", "loss_scale_factor"):
        if getattr(optimizer, option, None):
            return f"{name} has {option} set"
    backend = keras.backend.backend()
    if backend not in ROW_WISE_BACKENDS:
        return f"the {backend} backend computes dense table gradients"
    if backend != "tensorflow":
        if keras.distribution.distribution() is not None:
            # (The row-wise step is not written for sharded state yet.)
            return "a keras.distribution distribution is set"
        return None
    import tensorflow as tf

    if tf.distribute.has_strategy():
        return "a tf.distribute strategy is in scope"
    return None


@keras.saving.register_keras_serializable(package="keras_mtl")
class RowWiseOptimizer(keras.optimizers.Optimizer):
    """An optimizer whose embedding-table updates touch only the looked-up rows.

    A batch looks up a few thousand rows of tables that may hold millions. Keras
    3's Adam and Adagrad turn the table's sparse gradient into a dense one and
    update every row and both moment slots at every step, so a step costs in
    proportion to the table, not to the batch. This wrapper hands the dense
    weights to `inner_optimizer` unchanged and updates each table marked by
    keras-mtl's layers (`FeatureEncoder`, `FieldEmbedding`) row-wise: the
    gradient's rows are summed per distinct id, and only those rows and their
    slots are read and written, with the inner optimizer's hyperparameters,
    learning rate (schedules included) and step count:

    - `Adam` / `AdamW` ("lazy" Adam): per-element moments `m`, `v` as in Adam,
      updated on the touched rows only; bias correction uses the global step.
      AdamW's decoupled weight decay shrinks the touched rows.
    - `Adagrad` (row-wise Adagrad, as in TorchRec / FBGEMM): one accumulator
      per row, `acc += mean(g ** 2)` over the row, and
      `row -= lr * g / sqrt(acc + epsilon)`: a table's slot costs one float per
      row instead of one per element.
    - `SGD`: `row -= lr * g`, with momentum (and Nesterov) kept per touched row.

    Untouched rows and their slots are not read or changed, so their moments
    are not decayed while they are not seen (the semantics of lazy Adam:
    a row's next update uses the moments of its last appearance). `clipnorm`,
    `clipvalue` and `global_clipnorm` of the inner optimizer clip the tables'
    gradients as the dense gradients, each norm taken over the whole
    gradient (the global norm over every variable).

    Any other inner optimizer (RMSprop, Nadam, Adam with `amsgrad`, an inner
    optimizer with EMA, gradient accumulation or loss scaling), or a
    `tf.distribute` strategy in scope falls back to the inner optimizer's dense
    update of the tables, with a warning that names the tables.

    Backends: on TensorFlow a table's gradient arrives as rows
    (`tf.IndexedSlices`). On JAX and torch, `MultiTaskModel`'s training step
    differentiates with respect to the looked-up rows and hands them over as
    `RowGradient`s (`keras_mtl.optimizers.row_wise_step`); a dense table
    gradient (e.g. from a plain `keras.Model`'s step) is taken as touching
    every row.

    `MultiTaskModel.compile` (every keras-mtl builder) wraps its optimizer in
    this class when a table has at least `AUTO_MIN_TABLE_SIZE` elements
    (`row_wise_updates="auto"`, with that `min_table_size`: smaller tables
    keep the exact dense update, cheap at their size), or for every table
    (`row_wise_updates=True`).

    Args:
        inner_optimizer: `keras.optimizers.Optimizer`, its name or config:
            updates the dense weights, and its hyperparameters drive the
            tables' updates.
        min_table_size: int. Only tables of at least this many elements are
            updated row-wise; smaller ones get the inner optimizer's dense
            update. Defaults to 0 (every table).
        name: str or None. Defaults to "row_wise".

    Example:
    >>> import tensorflow as tf
    >>> table = keras.Variable(np.ones((4, 2), "float32"), name="table")
    >>> km.optimizers.mark_table(table)  # as keras-mtl's layers do
    >>> opt = RowWiseOptimizer(keras.optimizers.Adagrad(learning_rate=0.5))
    >>> grad = tf.IndexedSlices(tf.ones((2, 2)), tf.constant([1, 1]), (4, 2))
    >>> opt.apply([grad], [table])  # row 1 twice: gradient 2 per element
    >>> keras.ops.convert_to_numpy(opt.slots(table)[0])  # 0.1 + mean(2 ** 2)
    array([0.1, 4.1, 0.1, 0.1], dtype=float32)
    >>> np.round(keras.ops.convert_to_numpy(table), 4)  # 1 - 0.5 * 2 / sqrt(4.1)
    array([[1.    , 1.    ],
           [0.5061, 0.5061],
           [1.    , 1.    ],
           [1.    , 1.    ]], dtype=float32)
    """

    def __init__(
        self, inner_optimizer="adam", min_table_size: int = 0, name=None, **kwargs
    ):
        if kwargs:
            raise ValueError(
                "RowWiseOptimizer: set optimizer arguments on the inner optimizer; "
                f"got {sorted(kwargs)}."
            )
        super().__init__(learning_rate=0.0, name=name or "row_wise")
        self.inner_optimizer = keras.optimizers.get(inner_optimizer)
        self.min_table_size = int(min_table_size)
        if isinstance(self.inner_optimizer, RowWiseOptimizer):
            raise ValueError("RowWiseOptimizer: the inner optimizer is row-wise too.")
        # `id` of each row-wise table -> positions of its slots among this
        # optimizer's own variables. Plain ints: the optimizer's attribute
        # tracking would adopt any variable stored here as one of its own.
        self._table_slots = {}

    # ------------------------------------------------------------ delegation

    @property
    def learning_rate(self):
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, learning_rate):
        self.inner_optimizer.learning_rate = learning_rate

    @property
    def iterations(self):
        return self.inner_optimizer.iterations

    @property
    def variables(self):
        return self.own_variables + self.inner_optimizer.variables

    @property
    def own_variables(self) -> list:
        """This optimizer's variables (the tables' slots), without the inner's."""
        return keras.optimizers.Optimizer.variables.fget(self)

    def finalize_variable_values(self, var_list):
        self.inner_optimizer.finalize_variable_values(var_list)

    # ----------------------------------------------------------------- build

    def build(self, var_list):
        var_list = list(var_list)
        tables = [
            v
            for v in var_list
            if is_table(v) and math.prod(v.shape) >= self.min_table_size
        ]
        reason = _unsupported(self.inner_optimizer) if tables else None
        if reason is not None:
            warnings.warn(
                f"RowWiseOptimizer: {reason}, so the embedding tables "
                f"{[v.path for v in tables]} get the inner optimizer's dense "
                "update (every row, every step).",
                stacklevel=2,
            )
            tables = []
        keys = {id(v) for v in tables}
        dense = [v for v in var_list if id(v) not in keys]
        self.inner_optimizer.build(dense)
        rule = _rule(self.inner_optimizer)
        for table in tables:
            rows = table.shape[0]
            if rule == "adam":
                names = [("momentum", table.shape), ("velocity", table.shape)]
            elif rule == "adagrad":
                names = [("accumulator", (rows,))]
            elif self.inner_optimizer.momentum:  # SGD
                names = [("momentum", table.shape)]
            else:
                names = []
            init = getattr(self.inner_optimizer, "initial_accumulator_value", 0.0)
            slots = [
                self.add_variable(
                    shape=shape,
                    # ("zeros" allocates the slot once; Constant(0) twice.)
                    initializer=keras.initializers.Constant(init)
                    if slot == "accumulator"
                    else "zeros",
                    dtype=table.dtype,
                    name=f"{table.path.replace('/', '_')}_{slot}",
                )
                for slot, shape in names
            ]
            count = len(self.own_variables)
            self._table_slots[id(table)] = [
                count - len(slots) + i for i in range(len(slots))
            ]
        super().build(var_list)
        # (Not an attribute: the optimizer's tracking would adopt the variables.)
        self.__dict__["_built_variables"] = var_list

    def row_wise_tables(self) -> list:
        """The tables this optimizer updates row-wise (once built)."""
        keys = self._table_slots
        return [v for v in self.__dict__.get("_built_variables", ()) if id(v) in keys]

    def slots(self, table) -> list:
        """The row-wise slots of `table` (Adam: `[m, v]`; Adagrad: `[acc]`;
        SGD: `[momentum]` or `[]`)."""
        own = self.own_variables
        return [own[i] for i in self._table_slots[id(table)]]

    # ----------------------------------------------------------------- apply

    def apply(self, grads, trainable_variables=None):
        if trainable_variables is None and self.built:
            # (`stateless_apply`, on JAX, passes the gradients alone.)
            trainable_variables = self.__dict__["_built_variables"]
        if trainable_variables is None:
            raise ValueError(
                "RowWiseOptimizer.apply: pass the variables with their gradients "
                "(`apply(grads, variables)` or `apply_gradients(zip(grads, "
                "variables))`)."
            )
        trainable_variables = list(trainable_variables)
        if not self.built:
            with keras.name_scope(self.name):
                self.build(trainable_variables)
        keys = self._table_slots.keys()
        table_pairs, dense_grads, dense_vars = [], [], []
        for g, v in zip(grads, trainable_variables):
            if id(v) in keys:
                if g is not None:
                    table_pairs.append((g, v))
            else:
                dense_grads.append(g)
                dense_vars.append(v)
        if not table_pairs:
            self.inner_optimizer.apply(dense_grads, dense_vars)
            return
        opt = self.inner_optimizer
        if keras.backend.backend() == "tensorflow":
            distinct, clip, update = _distinct_rows, _clip_globally, self._update_rows
        else:
            distinct, clip = _distinct_rows_ops, _clip_globally_ops
            update = self._update_rows_ops
        rows = [distinct(g) for g, _ in table_pairs]
        if opt.global_clipnorm:
            rows, dense_grads = clip(rows, dense_grads, opt.global_clipnorm)
        with keras.name_scope(self.name):
            for (ids, g, count), (_, table) in zip(rows, table_pairs):
                update(table, ids, g, count)
        if any(g is not None for g in dense_grads):
            self.inner_optimizer.apply(dense_grads, dense_vars)
        else:  # the inner optimizer counts the steps
            opt.iterations.assign_add(1)

    def _update_rows(self, table, ids, g, count):
        """One optimizer step on `table`'s rows `ids` with summed gradients `g`.

        `ids` and `g` have a static length n; entries past `count` (the number of
        distinct ids) repeat the last distinct row, so every write is well
        defined and writes the same value twice at most.
        """
        import tensorflow as tf

        opt = self.inner_optimizer
        rule = _rule(opt)
        dtype = table.dtype
        g = tf.cast(g, dtype)
        if opt.clipnorm:
            g = tf.clip_by_norm(g, opt.clipnorm)  # (rows past count are zero)
        elif opt.clipvalue:
            g = tf.clip_by_value(g, -opt.clipvalue, opt.clipvalue)
        position = tf.minimum(tf.range(tf.shape(ids)[0]), count - 1)
        ids = tf.gather(ids, position)
        g = tf.gather(g, position)
        lr = tf.cast(opt.learning_rate, dtype)
        var = table.value
        old = tf.gather(var, ids)
        if uses_weight_decay(opt, table):
            old = old - old * tf.cast(opt.weight_decay, dtype) * lr
        slots = [s.value for s in self.slots(table)]
        if rule == "adam":
            m_var, v_var = slots
            step = tf.cast(opt.iterations + 1, dtype)
            b1 = tf.pow(tf.cast(opt.beta_1, dtype), step)
            b2 = tf.pow(tf.cast(opt.beta_2, dtype), step)
            alpha = lr * tf.sqrt(1 - b2) / (1 - b1)
            m = tf.gather(m_var, ids)
            v = tf.gather(v_var, ids)
            # (1 - beta) in Python floats, as Keras's Adam computes it.
            m = m + (g - m) * (1 - opt.beta_1)
            v = v + (tf.square(g) - v) * (1 - opt.beta_2)
            new = old - alpha * m / (tf.sqrt(v) + opt.epsilon)
            m_var.scatter_update(tf.IndexedSlices(m, ids))
            v_var.scatter_update(tf.IndexedSlices(v, ids))
        elif rule == "adagrad":
            (acc_var,) = slots
            acc = tf.gather(acc_var, ids) + tf.reduce_mean(tf.square(g), axis=-1)
            new = old - lr * g / tf.sqrt(acc[:, None] + opt.epsilon)
            acc_var.scatter_update(tf.IndexedSlices(acc, ids))
        elif slots:  # SGD with momentum
            (m_var,) = slots
            momentum = tf.cast(opt.momentum, dtype)
            m = tf.gather(m_var, ids) * momentum - g * lr
            new = old + (m * momentum - g * lr if opt.nesterov else m)
            m_var.scatter_update(tf.IndexedSlices(m, ids))
        else:  # plain SGD
            new = old - g * lr
        var.scatter_update(tf.IndexedSlices(new, ids))

    def _update_rows_ops(self, table, ids, g, count):
        """`_update_rows` in `keras.ops` (the JAX backend): the same rule, read
        with `take` and written with `scatter_update`, which XLA performs in
        place on the train step's donated buffers."""
        opt = self.inner_optimizer
        rule = _rule(opt)
        dtype = table.dtype
        g = ops.cast(g, dtype)
        if opt.clipnorm:
            norm = ops.sqrt(ops.sum(ops.square(g)))
            g = g * (opt.clipnorm / ops.maximum(norm, opt.clipnorm))
        elif opt.clipvalue:
            g = ops.clip(g, -opt.clipvalue, opt.clipvalue)
        position = ops.minimum(ops.arange(ids.shape[0], dtype="int32"), count - 1)
        ids = ops.take(ids, position, axis=0)
        g = ops.take(g, position, axis=0)
        at = ops.expand_dims(ids, -1)
        lr = ops.cast(opt.learning_rate, dtype)
        old = ops.take(table.value, ids, axis=0)
        if uses_weight_decay(opt, table):
            old = old - old * ops.cast(opt.weight_decay, dtype) * lr
        slots = self.slots(table)

        def write(variable, rows):
            if keras.backend.backend() == "torch":
                # (In place: torch's `scatter_update` copies the whole table,
                # and its eager step has no buffer donation to undo that.)
                variable.value.index_copy_(0, ops.cast(ids, "int64"), rows)
            else:
                variable.assign(ops.scatter_update(variable.value, at, rows))

        if rule == "adam":
            m_var, v_var = slots
            step = ops.cast(opt.iterations + 1, dtype)
            b1 = ops.power(ops.cast(opt.beta_1, dtype), step)
            b2 = ops.power(ops.cast(opt.beta_2, dtype), step)
            alpha = lr * ops.sqrt(1 - b2) / (1 - b1)
            m = ops.take(m_var.value, ids, axis=0)
            v = ops.take(v_var.value, ids, axis=0)
            m = m + (g - m) * (1 - opt.beta_1)
            v = v + (ops.square(g) - v) * (1 - opt.beta_2)
            new = old - alpha * m / (ops.sqrt(v) + opt.epsilon)
            write(m_var, m)
            write(v_var, v)
        elif rule == "adagrad":
            (acc_var,) = slots
            acc = ops.take(acc_var.value, ids, axis=0) + ops.mean(
                ops.square(g), axis=-1
            )
            new = old - lr * g / ops.sqrt(acc[:, None] + opt.epsilon)
            write(acc_var, acc)
        elif slots:  # SGD with momentum
            (m_var,) = slots
            momentum = ops.cast(opt.momentum, dtype)
            m = ops.take(m_var.value, ids, axis=0) * momentum - g * lr
            new = old + (m * momentum - g * lr if opt.nesterov else m)
            write(m_var, m)
        else:  # plain SGD
            new = old - g * lr
        write(table, new)

    # ------------------------------------------------------------- config

    def get_config(self):
        return {
            "name": self.name,
            "inner_optimizer": keras.saving.serialize_keras_object(
                self.inner_optimizer
            ),
            "min_table_size": self.min_table_size,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        inner = keras.saving.deserialize_keras_object(
            config.pop("inner_optimizer"), custom_objects=custom_objects
        )
        return cls(inner, **config)


def _distinct_rows(gradient):
    """`(ids, summed, count)` of a table gradient, with static shapes.

    `ids` (n,) holds the distinct row ids first, `summed` (n, dim) the sum of
    their gradient rows (zeros past `count`, the number of distinct ids). The
    sort-and-segment form keeps every shape static, so XLA compiles it (a
    `tf.unique` would not); a dense gradient is taken as touching every row.
    """
    import tensorflow as tf

    if isinstance(gradient, tf.IndexedSlices):
        ids, values = gradient.indices, gradient.values
    else:
        gradient = tf.convert_to_tensor(gradient)
        ids, values = tf.range(tf.shape(gradient)[0]), gradient
    ids = tf.cast(ids, "int32")
    n = tf.shape(ids)[0]
    order = tf.argsort(ids, stable=True)
    sorted_ids = tf.gather(ids, order)
    first = tf.concat(
        [tf.ones((1,), tf.bool), sorted_ids[1:] != sorted_ids[:-1]], axis=0
    )
    segment = tf.cumsum(tf.cast(first, "int32")) - 1
    summed = tf.math.unsorted_segment_sum(tf.gather(values, order), segment, n)
    distinct = tf.math.unsorted_segment_max(sorted_ids, segment, n)
    return distinct, summed, segment[-1] + 1


def _clip_globally(rows, dense_grads, clip):
    """Scale table and dense gradients by `clip / max(global norm, clip)`."""
    import tensorflow as tf

    squares = [tf.reduce_sum(tf.square(s)) for _, s, _ in rows]
    squares += [
        tf.reduce_sum(tf.square(tf.convert_to_tensor(g)))
        for g in dense_grads
        if g is not None
    ]
    norm = tf.sqrt(tf.add_n(squares))
    scale = clip / tf.maximum(norm, clip)
    rows = [(ids, s * tf.cast(scale, s.dtype), c) for ids, s, c in rows]
    dense = [None if g is None else g * tf.cast(scale, g.dtype) for g in dense_grads]
    return rows, dense


def _distinct_rows_ops(gradient):
    """`_distinct_rows` in `keras.ops`, for a `RowGradient` (or a dense
    gradient, taken as touching every row)."""
    if isinstance(gradient, RowGradient):
        ids, values = gradient.ids, gradient.values
    else:
        values = ops.convert_to_tensor(gradient)
        ids = ops.arange(values.shape[0], dtype="int32")
    ids = ops.cast(ids, "int32")
    n = int(ids.shape[0])
    order = ops.argsort(ids)
    sorted_ids = ops.take(ids, order, axis=0)
    first = ops.concatenate(
        [ops.ones((1,), "bool"), ops.not_equal(sorted_ids[1:], sorted_ids[:-1])]
    )
    segment = ops.cumsum(ops.cast(first, "int32")) - 1
    summed = ops.segment_sum(ops.take(values, order, axis=0), segment, n)
    # (Segments past the count are empty: their max is the dtype's lowest.)
    distinct = ops.segment_max(sorted_ids, segment, n)
    return distinct, summed, segment[-1] + 1


def _clip_globally_ops(rows, dense_grads, clip):
    """`_clip_globally` in `keras.ops`."""
    squares = [ops.sum(ops.square(s)) for _, s, _ in rows]
    squares += [
        ops.sum(ops.square(ops.convert_to_tensor(g)))
        for g in dense_grads
        if g is not None
    ]
    norm = ops.sqrt(sum(squares[1:], squares[0]))
    scale = clip / ops.maximum(norm, clip)
    rows = [(ids, s * ops.cast(scale, s.dtype), c) for ids, s, c in rows]
    dense = [None if g is None else g * ops.cast(scale, g.dtype) for g in dense_grads]
    return rows, dense


def row_wise_for_tables(optimizer, variables, row_wise_updates="auto"):
    """`optimizer`, wrapped in `RowWiseOptimizer` as `row_wise_updates` says.

    Args:
        optimizer: a `keras.optimizers.Optimizer` (returned as is when it is
            already row-wise, or when no table qualifies).
        variables: the model's trainable variables (tables are those marked
            by keras-mtl's layers).
        row_wise_updates: "auto" (tables of at least `AUTO_MIN_TABLE_SIZE`
            elements), True (every table) or False (none).
    """
    if row_wise_updates not in ("auto", True, False):
        raise ValueError(
            "compile: row_wise_updates must be 'auto', True or False; got "
            f"{row_wise_updates!r}."
        )
    if row_wise_updates is False or isinstance(optimizer, RowWiseOptimizer):
        return optimizer
    if keras.backend.backend() not in ROW_WISE_BACKENDS:
        # (A backend without a row-wise path: the tables keep the plain
        # update; docs/large_vocabularies.md.)
        return optimizer
    smallest = AUTO_MIN_TABLE_SIZE if row_wise_updates == "auto" else 0
    sizes = [math.prod(v.shape) for v in variables if is_table(v)]
    if not any(size >= smallest for size in sizes):
        return optimizer
    return RowWiseOptimizer(optimizer, min_table_size=smallest)
