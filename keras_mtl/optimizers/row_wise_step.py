"""The JAX training step of a model whose embedding tables are updated row-wise.

On TensorFlow the gradient of a gathered table arrives as rows
(`tf.IndexedSlices`) and `RowWiseOptimizer` updates those rows. JAX's autodiff
gives the dense, table-sized gradient instead, and applying it touches every
row of the table and of its optimizer slots at every step, so a step costs in
proportion to the table. This step differentiates with respect to the looked-up
rows instead:

1. A first, abstract pass (`jax.eval_shape`: nothing runs) records the shape of
   every lookup of a row-wise table (`keras_mtl.layers._tables.RowCapture`).
2. The loss is differentiated with respect to the dense weights and one zero
   "delta" per lookup, added to the looked-up rows
   (`keras_mtl.layers._tables.gather_rows`); the tables themselves are
   constants of the differentiated function, so no table-sized gradient exists.
   The gradient of a delta is the gradient of its rows.
3. `RowWiseOptimizer` gets each table's gradient as a `RowGradient` (ids and
   rows, over all its lookups), sums it per distinct id and updates those rows
   and their slots with the same rule as on TensorFlow, written with
   `scatter_update`. Keras's JAX trainer donates the state to the jitted step,
   so XLA writes the rows in place.

The layers stay backend-neutral (they call `gather_rows`, which is
`ops.take` outside this step); the JAX-specific part is this module.
"""

from __future__ import annotations

import keras
from keras import ops


def uses_row_wise_step(model) -> bool:
    """Whether `model`'s JAX train step should be `row_wise_train_step`: its
    optimizer is a built `RowWiseOptimizer` with row-wise tables."""
    from keras_mtl.optimizers.row_wise import RowWiseOptimizer

    optimizer = getattr(model, "optimizer", None)
    return (
        keras.backend.backend() in ("jax", "torch")
        and isinstance(optimizer, RowWiseOptimizer)
        and optimizer.built
        and bool(optimizer.row_wise_tables())
    )


def row_wise_train_step(model, data, state=None):
    """Keras's train step, with row gradients for the tables `model.optimizer`
    (a `RowWiseOptimizer`) updates row-wise.

    On JAX, `state` is the tuple Keras passes and the step returns
    `(logs, new_state)`; on torch it returns the logs.
    """
    if keras.backend.backend() == "torch":
        return _torch_step(model, data)
    return _jax_step(model, state, data)


def _row_gradients(variables, tables, lookups, ids, row_grads) -> dict:
    """`{index in variables: RowGradient}` of each looked-up table: its ids and
    rows' gradients over all its lookups (`lookups`: `(table, shape)` each)."""
    from keras_mtl.optimizers.row_wise import RowGradient

    keys = {id(t) for t in tables}
    out = {}
    for i, v in enumerate(variables):
        mine = [k for k, (t, _) in enumerate(lookups) if t is v]
        if id(v) in keys and mine:
            out[i] = RowGradient(
                ops.concatenate([ids[k] for k in mine]),
                ops.concatenate([row_grads[k] for k in mine]),
            )
    return out


def _torch_step(model, data):
    """Keras's torch step (forward, `backward`, `apply` without a graph), the
    tables' lookups read through detached tables plus deltas that require a
    gradient: autograd fills the deltas' gradients, never a table-sized one."""
    import torch

    from keras_mtl.layers._tables import RowCapture

    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    optimizer = model.optimizer
    variables = list(model.trainable_variables)

    def delta(n, dim, dtype):
        # (On Keras's device: a GPU table plus a CPU delta would not add.)
        return torch.zeros(
            (n, dim),
            dtype=getattr(torch, dtype),
            device=keras.ops.zeros(()).device,
            requires_grad=True,
        )

    with RowCapture(optimizer.row_wise_tables(), delta) as capture:
        y_pred = model(x, training=True)
    model.zero_grad()
    loss = model.compute_loss(x, y, y_pred, sample_weight, training=True)
    loss_metric = next(m for m in model.metrics if m.name == "loss")
    loss_metric.update_state(loss, sample_weight=keras.tree.flatten(x)[0].shape[0])
    optimizer.scale_loss(loss).backward()
    grads = [v.value.grad for v in variables]
    rows = _row_gradients(
        variables,
        optimizer.row_wise_tables(),
        capture.shapes,
        capture.ids,
        [d.grad if d.grad is not None else torch.zeros_like(d) for d in capture.made],
    )
    for i, g in rows.items():
        grads[i] = g
    with torch.no_grad():
        optimizer.apply(grads, variables)
    return model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)


def _jax_step(model, state, data):
    import jax

    from keras_mtl.layers._tables import RowCapture

    trainable, non_trainable, optimizer_values, metrics = state
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    optimizer = model.optimizer
    variables = list(model.trainable_variables)

    def loss_fn(dense_at, dense_values, deltas, capture):
        capture.deltas = deltas  # (the traced ones, differentiated)
        values = list(trainable)  # (the others: constants, not differentiated)
        for i, value in zip(dense_at, dense_values):
            values[i] = value
        with capture:
            loss, aux = model.compute_loss_and_updates(
                values,
                non_trainable,
                metrics,
                x,
                y,
                sample_weight,
                training=True,
                optimizer_variables=optimizer_values,
            )
        return loss, (aux, capture.ids)

    # 1. The lookups' shapes (an abstract trace: nothing is computed).
    every = list(range(len(variables)))
    shapes = RowCapture(optimizer.row_wise_tables())
    jax.eval_shape(lambda d: loss_fn(every, d, None, shapes)[0], list(trainable))
    # Only tables read through `gather_rows` get row gradients; a table read
    # some other way (a layer of one's own) keeps its dense gradient, which
    # the optimizer takes as touching every row.
    keys = {id(t) for t, _ in shapes.shapes}
    tables = [t for t in optimizer.row_wise_tables() if id(t) in keys]
    dense_at = [i for i, v in enumerate(variables) if id(v) not in keys]
    dense_values = [trainable[i] for i in dense_at]
    deltas = [
        ops.zeros((_count(rows), table.shape[1]), table.dtype)
        for table, rows in shapes.shapes
    ]
    # 2. Gradients at the dense weights and at the looked-up rows.
    capture = RowCapture(tables)
    grad_fn = jax.value_and_grad(
        lambda d, r: loss_fn(dense_at, d, r, capture), argnums=(0, 1), has_aux=True
    )
    (_, (aux, ids)), (dense_grads, row_grads) = grad_fn(dense_values, deltas)
    unscaled_loss, y_pred, non_trainable, metrics = aux
    # 3. Each table's rows over all its lookups, then the optimizer's update.
    grads = [None] * len(variables)
    for i, g in zip(dense_at, dense_grads):
        grads[i] = g
    for i, g in _row_gradients(
        variables, tables, shapes.shapes, ids, row_grads
    ).items():
        grads[i] = g  # (a table not looked up keeps None)
    grads = [
        ops.zeros_like(trainable[i]) if g is None and i in dense_at else g
        for i, g in enumerate(grads)
    ]
    mapping = list(zip(variables, trainable)) + list(
        zip(optimizer.variables, optimizer_values)
    )
    with keras.StatelessScope(state_mapping=mapping) as scope:
        optimizer.apply(grads, variables)
    trainable = [scope.get_current_value(v) for v in variables]
    optimizer_values = [scope.get_current_value(v) for v in optimizer.variables]
    # The loss metric and the compiled metrics, as Keras's own step.
    mapping = list(zip(model.metrics_variables, metrics))
    with keras.StatelessScope(state_mapping=mapping) as scope:
        loss_metric = next(m for m in model.metrics if m.name == "loss")
        batch = ops.shape(keras.tree.flatten(x)[0])[0]
        loss_metric.update_state(unscaled_loss, sample_weight=batch)
        logs = model.compute_metrics(x, y, y_pred, sample_weight)
    metrics = [
        scope.get_current_value(v) if scope.get_current_value(v) is not None else value
        for v, value in zip(model.metrics_variables, metrics)
    ]
    return logs, (trainable, non_trainable, optimizer_values, metrics)


def _count(shape) -> int:
    count = 1
    for n in shape:
        count *= int(n)
    return count
