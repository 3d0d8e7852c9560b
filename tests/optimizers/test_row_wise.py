"""RowWiseOptimizer: touched rows follow each optimizer's formula, others stay put."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_mtl as km
from keras_mtl.optimizers import RowWiseOptimizer, is_table, mark_table

ROWS, DIM = 6, 2
# Two steps; row 1 appears twice in the first (its gradients add up), rows 0,
# 3 and 5 are never touched.
STEPS = [
    ([1, 4, 1], [[0.5, -1.0], [2.0, 0.25], [0.25, 0.5]]),
    ([2, 4], [[-1.5, 1.0], [0.5, 0.5]]),
]
UNTOUCHED = [0, 3, 5]


def _table():
    start = np.arange(ROWS * DIM, dtype="float32").reshape(ROWS, DIM) / 10 - 0.3
    table = keras.Variable(start, name="table")
    mark_table(table)
    return table, start


def _run(inner, jit: bool, dense_grad=None):
    """Apply STEPS with `RowWiseOptimizer(inner)` to a table (and, with
    `dense_grad`, a dense variable); returns (optimizer, table, dense var)."""
    table, _ = _table()
    dense = keras.Variable(np.ones(3, "float32"), name="dense")
    opt = RowWiseOptimizer(inner)
    opt.build([table, dense])

    @tf.function(jit_compile=jit)
    def step(ids, values):
        grads = [tf.IndexedSlices(values, ids, tf.constant((ROWS, DIM)))]
        variables = [table]
        if dense_grad is not None:
            grads.append(tf.constant(dense_grad, "float32"))
            variables.append(dense)
        opt.apply(grads, variables)

    for ids, values in STEPS:
        step(tf.constant(ids), tf.constant(values, "float32"))
    return opt, table, dense


def _summed_steps():
    """Per step, {row: summed gradient} (numpy), as the formulas see them."""
    out = []
    for ids, values in STEPS:
        rows = {}
        for i, v in zip(ids, np.asarray(values, "float64")):
            rows[i] = rows.get(i, 0.0) + v
        out.append(rows)
    return out


def _untouched_bits_equal(table, start):
    got = keras.ops.convert_to_numpy(table)[UNTOUCHED]
    return got.tobytes() == start[UNTOUCHED].tobytes()


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("weight_decay", [None, 0.1])
def test_lazy_adam_follows_the_formula_on_touched_rows(jit, weight_decay):
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-7
    cls = keras.optimizers.AdamW if weight_decay else keras.optimizers.Adam
    kwargs = {"weight_decay": weight_decay} if weight_decay else {}
    opt, table, _ = _run(cls(learning_rate=lr, **kwargs), jit)

    _, start = _table()
    var = start.astype("float64")
    m, v = np.zeros_like(var), np.zeros_like(var)
    for t, rows in enumerate(_summed_steps(), start=1):
        alpha = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
        for r, g in rows.items():
            if weight_decay:
                var[r] -= var[r] * weight_decay * lr
            m[r] = b1 * m[r] + (1 - b1) * g
            v[r] = b2 * v[r] + (1 - b2) * g**2
            var[r] -= alpha * m[r] / (np.sqrt(v[r]) + eps)
    got_m, got_v = (keras.ops.convert_to_numpy(s) for s in opt.slots(table))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(table), var, rtol=1e-5)
    np.testing.assert_allclose(got_m, m, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got_v, v, rtol=1e-4)  # float32 (1 - b2)
    assert _untouched_bits_equal(table, start)
    assert not got_m[UNTOUCHED].any() and not got_v[UNTOUCHED].any()
    assert int(opt.iterations) == 2


@pytest.mark.parametrize("jit", [False, True])
def test_row_wise_adagrad_keeps_one_accumulator_per_row(jit):
    lr, init, eps = 0.5, 0.1, 1e-7
    opt, table, _ = _run(keras.optimizers.Adagrad(learning_rate=lr), jit)
    (acc_var,) = opt.slots(table)
    assert tuple(acc_var.shape) == (ROWS,)  # one float per row, not per element

    _, start = _table()
    var = start.astype("float64")
    acc = np.full(ROWS, init)
    for rows in _summed_steps():
        for r, g in rows.items():
            acc[r] += np.mean(g**2)
            var[r] -= lr * g / np.sqrt(acc[r] + eps)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(acc_var), acc, rtol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(table), var, rtol=1e-5)
    assert _untouched_bits_equal(table, start)


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum_per_touched_row(nesterov):
    lr, mom = 0.1, 0.9
    inner = keras.optimizers.SGD(learning_rate=lr, momentum=mom, nesterov=nesterov)
    opt, table, _ = _run(inner, jit=True)
    _, start = _table()
    var = start.astype("float64")
    m = np.zeros_like(var)
    for rows in _summed_steps():
        for r, g in rows.items():
            m[r] = m[r] * mom - lr * g
            var[r] += m[r] * mom - lr * g if nesterov else m[r]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(table), var, rtol=1e-5)
    assert _untouched_bits_equal(table, start)


def test_plain_sgd_has_no_slots_and_subtracts_the_summed_gradient():
    opt, table, _ = _run(keras.optimizers.SGD(learning_rate=1.0), jit=False)
    assert opt.slots(table) == []
    _, start = _table()
    want = start.astype("float64")
    for rows in _summed_steps():
        for r, g in rows.items():
            want[r] -= g
    np.testing.assert_allclose(keras.ops.convert_to_numpy(table), want, rtol=1e-6)


def test_clipnorm_clips_the_summed_table_gradient():
    # Step 1's summed gradient: row 1 (0.75, -0.5), row 4 (2, 0.25); norm 2.21.
    opt, table, _ = _run(keras.optimizers.SGD(learning_rate=1.0, clipnorm=1.0), False)
    _, start = _table()
    want = start.astype("float64")
    for rows in _summed_steps():
        norm = np.sqrt(sum(np.sum(g**2) for g in rows.values()))
        for r, g in rows.items():
            want[r] -= g * min(1.0, 1.0 / norm)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(table), want, rtol=1e-5)


def test_global_clipnorm_spans_tables_and_dense_weights():
    dense_grad = [3.0, 0.0, 4.0]  # norm 5
    inner = keras.optimizers.SGD(learning_rate=1.0, global_clipnorm=1.0)
    opt, table, dense = _run(inner, jit=False, dense_grad=dense_grad)
    _, start = _table()
    want, want_dense = start.astype("float64"), np.ones(3)
    for rows in _summed_steps():
        norm = np.sqrt(sum(np.sum(g**2) for g in rows.values()) + 25.0)
        for r, g in rows.items():
            want[r] -= g / norm
        want_dense -= np.asarray(dense_grad) / norm
    np.testing.assert_allclose(keras.ops.convert_to_numpy(table), want, rtol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(dense), want_dense, rtol=1e-5)


def test_every_row_touched_every_step_equals_keras_adam():
    """Lazy Adam is Adam when no row is ever skipped."""
    rng = np.random.default_rng(0)
    grads = rng.normal(size=(3, ROWS, DIM)).astype("float32")
    lazy_table, _ = _table()
    plain_table = keras.Variable(keras.ops.convert_to_numpy(lazy_table))
    lazy = RowWiseOptimizer(keras.optimizers.Adam(learning_rate=0.05))
    plain = keras.optimizers.Adam(learning_rate=0.05)
    for g in grads:
        lazy.apply([tf.IndexedSlices(g, tf.range(ROWS), (ROWS, DIM))], [lazy_table])
        plain.apply([g], [plain_table])
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(lazy_table),
        keras.ops.convert_to_numpy(plain_table),
        rtol=1e-6,
    )


def test_dense_weights_get_the_inner_optimizer_unchanged():
    dense_grad = [0.5, -1.0, 2.0]
    _, _, dense = _run(keras.optimizers.Adam(learning_rate=0.1), False, dense_grad)
    ref = keras.Variable(np.ones(3, "float32"))
    adam = keras.optimizers.Adam(learning_rate=0.1)
    for _ in STEPS:
        adam.apply([tf.constant(dense_grad)], [ref])
    assert keras.ops.convert_to_numpy(dense).tobytes() == (
        keras.ops.convert_to_numpy(ref).tobytes()
    )


def test_other_optimizers_fall_back_to_dense_updates_with_a_warning():
    with pytest.warns(UserWarning, match=r"RMSprop has no row-wise update.*'table'"):
        opt, table, _ = _run(keras.optimizers.RMSprop(learning_rate=0.1), False)
    ref, _ = _table()
    rms = keras.optimizers.RMSprop(learning_rate=0.1)
    for ids, values in STEPS:
        rms.apply(
            [
                tf.IndexedSlices(
                    tf.constant(values), tf.constant(ids), tf.constant((6, 2))
                )
            ],
            [ref],
        )
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(table), keras.ops.convert_to_numpy(ref), rtol=1e-6
    )
    with pytest.warns(UserWarning, match="amsgrad"):
        _run(keras.optimizers.Adam(amsgrad=True), False)


class _MyAdam(keras.optimizers.Adam):
    """A user's subclass: row-wise like Adam, recognised by isinstance."""


def test_subclasses_of_the_row_wise_optimizers_are_recognised():
    lr = 0.1
    opt, table, _ = _run(_MyAdam(learning_rate=lr), False)
    _, ref, _ = _run(keras.optimizers.Adam(learning_rate=lr), False)
    assert len(opt.slots(table)) == 2  # m and v: the lazy-Adam rule
    assert keras.ops.convert_to_numpy(table).tobytes() == (
        keras.ops.convert_to_numpy(ref).tobytes()
    )


@pytest.mark.parametrize("how", ["var_list", "var_names"])
def test_weight_decay_exclusions_hold_for_row_wise_tables(how):
    lr, decay = 0.1, 0.5
    table, start = _table()
    inner = keras.optimizers.AdamW(learning_rate=lr, weight_decay=decay)
    if how == "var_list":
        inner.exclude_from_weight_decay(var_list=[table])
    else:
        inner.exclude_from_weight_decay(var_names=["tab"])
    opt = RowWiseOptimizer(inner)
    opt.build([table])
    ids, values = STEPS[0]
    grad = tf.IndexedSlices(tf.constant(values), tf.constant(ids), (ROWS, DIM))
    opt.apply([grad], [table])
    # Excluded: the touched rows move by Adam's first step only, lr per element
    # (sign of the summed gradient); with decay they would also shrink by lr * decay.
    got = keras.ops.convert_to_numpy(table)
    for row, g in _summed_steps()[0].items():
        np.testing.assert_allclose(got[row], start[row] - lr * np.sign(g), atol=1e-5)


def test_rejects_its_own_arguments_and_a_nested_wrapper():
    with pytest.raises(ValueError, match="inner optimizer; got \\['clipnorm'\\]"):
        RowWiseOptimizer("adam", clipnorm=1.0)
    with pytest.raises(ValueError, match="row-wise too"):
        RowWiseOptimizer(RowWiseOptimizer("adam"))


def test_learning_rate_and_iterations_are_the_inner_optimizers():
    opt = RowWiseOptimizer(keras.optimizers.Adam(learning_rate=0.01))
    opt.learning_rate = 0.5  # what ReduceLROnPlateau does
    assert float(opt.inner_optimizer.learning_rate) == 0.5
    assert opt.iterations is opt.inner_optimizer.iterations


# ------------------------------------------------------------ in a model


FEATURES = [
    km.SparseFeature("item", vocabulary_size=50, embedding_dim=4),
    km.DenseFeature("x"),
]


def _model_and_data(**compile):
    compile = {"row_wise_updates": True, **compile}  # a small table: opt in
    model = km.build_mmoe(
        FEATURES,
        [km.Task("a")],
        num_experts=2,
        expert_units=[4],
        compile=compile or True,
    )
    x = {"item": np.array([1, 2, 2, 7] * 8), "x": np.linspace(-1, 1, 32)}
    y = {"a": np.array([0.0, 1.0] * 16)}
    return model, tf.data.Dataset.from_tensor_slices((x, y)).batch(16)


def _table_of(model):
    (table,) = [v for v in model.trainable_variables if is_table(v)]
    return table


@pytest.mark.parametrize("jit", [False, True])
def test_builders_train_only_the_looked_up_rows(jit):
    model, ds = _model_and_data(jit_compile=jit)
    assert isinstance(model.optimizer, RowWiseOptimizer)
    assert isinstance(model.optimizer.inner_optimizer, keras.optimizers.Adam)
    before = keras.ops.convert_to_numpy(_table_of(model)).copy()
    model.fit(ds, epochs=2, verbose=0)
    after = keras.ops.convert_to_numpy(_table_of(model))
    touched = [1, 2, 7]
    untouched = [r for r in range(51) if r not in touched]
    assert after[untouched].tobytes() == before[untouched].tobytes()
    assert (np.abs(after[touched] - before[touched]) > 1e-4).all()
    m, _ = model.optimizer.slots(_table_of(model))
    assert not keras.ops.convert_to_numpy(m)[untouched].any()


def test_a_named_optimizer_and_an_instance_are_both_wrapped():
    model, _ = _model_and_data(optimizer="adagrad", learning_rate=0.2)
    assert type(model.optimizer.inner_optimizer).__name__ == "Adagrad"
    assert float(model.optimizer.learning_rate) == pytest.approx(0.2)
    sgd = keras.optimizers.SGD(0.3)
    model.compile(
        optimizer=sgd, loss={"a": "binary_crossentropy"}, row_wise_updates=True
    )
    assert model.optimizer.inner_optimizer is sgd
    model.compile(optimizer="sgd", loss={"a": "bce"}, row_wise_updates=False)
    assert isinstance(model.optimizer, keras.optimizers.SGD)
    with pytest.raises(ValueError, match="row_wise_updates must be 'auto'"):
        model.compile(optimizer="sgd", row_wise_updates="yes")


def test_auto_keeps_small_tables_on_the_exact_dense_update(monkeypatch):
    # Default ("auto"): this 51 x 4 table is far below AUTO_MIN_TABLE_SIZE.
    model = km.build_mmoe(FEATURES, [km.Task("a")], num_experts=2, expert_units=[4])
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    # With a threshold between two tables' sizes, only the big one is row-wise.
    monkeypatch.setattr(km.optimizers.row_wise, "AUTO_MIN_TABLE_SIZE", 100)
    features = [*FEATURES, km.SparseFeature("shop", vocabulary_size=9, embedding_dim=2)]
    model = km.build_mmoe(features, [km.Task("a")], num_experts=2, expert_units=[4])
    assert isinstance(model.optimizer, RowWiseOptimizer)
    assert model.optimizer.min_table_size == 100
    x = {"item": np.arange(32) % 5, "shop": np.arange(32) % 3, "x": np.zeros(32)}
    model.fit(x, {"a": np.ones(32)}, batch_size=16, epochs=1, verbose=0)
    big, small = sorted(
        (v for v in model.trainable_variables if is_table(v)), key=lambda v: -v.shape[0]
    )
    assert [tuple(s.shape) for s in model.optimizer.slots(big)] == [(51, 4)] * 2
    with pytest.raises(KeyError):
        model.optimizer.slots(small)  # the inner Adam's own, dense
    assert model.optimizer.get_config()["min_table_size"] == 100


def test_keras_file_and_checkpoint_keep_the_slots(tmp_path):
    model, ds = _model_and_data()
    model.fit(ds, epochs=1, verbose=0)
    saved = [keras.ops.convert_to_numpy(v) for v in model.optimizer.variables]
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.optimizer, RowWiseOptimizer)
    got = [keras.ops.convert_to_numpy(v) for v in loaded.optimizer.variables]
    assert len(got) == len(saved)
    for a, b in zip(saved, got):
        np.testing.assert_array_equal(a, b)
    # ... and training goes on from there exactly as in the original.
    model.fit(ds, epochs=1, verbose=0)
    loaded.fit(ds, epochs=1, verbose=0)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(_table_of(loaded)),
        keras.ops.convert_to_numpy(_table_of(model)),
        rtol=1e-6,
    )

    checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
    path = checkpoint.save(str(tmp_path / "ckpt"))
    m, _ = model.optimizer.slots(_table_of(model))
    want = keras.ops.convert_to_numpy(m).copy()
    m.assign(np.zeros(m.shape, "float32"))
    checkpoint.restore(path).assert_existing_objects_matched()
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(m), want)


@pytest.mark.parametrize("setting", [False, True])
def test_the_row_wise_setting_survives_a_keras_file(tmp_path, setting):
    model, ds = _model_and_data(row_wise_updates=setting)
    want = RowWiseOptimizer if setting else keras.optimizers.Adam
    assert type(model.optimizer) is want
    model.fit(ds, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert type(loaded.optimizer) is want
