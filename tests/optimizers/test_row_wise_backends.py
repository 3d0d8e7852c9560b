"""Row-wise table updates inside `fit`, on the backend under test: lazy Adam by
hand (TensorFlow: `tf.IndexedSlices`; JAX and torch: the step that
differentiates the looked-up rows, `keras_mtl.optimizers.row_wise_step`)."""

import keras
import numpy as np

import keras_mtl as km
from keras_mtl.optimizers import RowWiseOptimizer

BACKEND = keras.backend.backend()
ROWS, DIM, BATCH, STEPS = 8, 2, 4, 3  # item ids 0..7, row 8 out of vocabulary
LR, B1, B2, EPS = 0.1, 0.9, 0.999, 1e-7
KERNEL = np.array([[0.5], [-1.0], [0.25], [2.0], [-0.5], [1.5]], "float32")


def _data():
    rng = np.random.default_rng(3)
    n = BATCH * STEPS
    # Ids 0..3 only (rows 4..7 never looked up); a padded history slot (-1)
    # looks up the out-of-vocabulary row 8 with a zero weight, as on TensorFlow.
    target = rng.integers(0, 4, n)
    history = rng.integers(0, 4, (n, 2))
    history[::3, 1] = -1
    y = rng.normal(size=n).astype("float32")
    return {"target": target, "history": history}, {"score": y}


def _model(row_wise=True):
    """pred = [e(target), e(history_0), e(history_1)] @ KERNEL: one table (a
    `FieldEmbedding` called twice), the only trainable weight."""
    item = km.SparseFeature("item", vocabulary_size=ROWS, embedding_dim=DIM)
    emb = km.layers.FieldEmbedding([item], embeddings_initializer="zeros")
    target = keras.Input((), dtype="int32", name="target")
    history = keras.Input((2,), dtype="int32", name="history")
    z = keras.layers.Concatenate()(
        [emb([target]), keras.layers.Flatten()(emb([history]))]
    )
    head = keras.layers.Dense(1, use_bias=False, trainable=False, name="score")
    model = km.MultiTaskModel(
        [target, history], {"score": head(z)}, tasks=[km.Task("score", "regression")]
    )
    head.set_weights([KERNEL])
    table = emb.tables[0]
    start = np.arange(table.shape[0] * DIM, dtype="float32").reshape(-1, DIM) / 10
    table.assign(start - 0.4)
    model.compile(
        keras.optimizers.Adam(LR, beta_1=B1, beta_2=B2, epsilon=EPS),
        metrics={"score": []},
        row_wise_updates=row_wise,
        jit_compile=BACKEND == "jax",  # (TF: tested with XLA in test_row_wise.py)
        steps_per_execution=1,
    )
    return model, table, start - 0.4


def _lazy_adam_by_hand(start, x, y):
    """NumPy: pred = rows @ KERNEL, MSE; lazy Adam on every looked-up row
    (padded slots' row 8 included, with a zero gradient)."""
    var = start.astype("float64")
    m, v = np.zeros_like(var), np.zeros_like(var)
    kernel = KERNEL[:, 0].astype("float64").reshape(3, DIM)
    for t in range(1, STEPS + 1):
        batch = slice((t - 1) * BATCH, t * BATCH)
        ids = np.concatenate([x["target"][batch, None], x["history"][batch]], axis=1)
        weight = (ids >= 0).astype("float64")  # padding embeds to zeros
        rows = np.where(ids >= 0, ids, ROWS)
        pred = np.einsum("bsd,sd,bs->b", var[rows], kernel, weight)
        dpred = 2 * (pred - y["score"][batch]) / BATCH
        grad = {}
        for b in range(BATCH):
            for s in range(3):
                g = dpred[b] * kernel[s] * weight[b, s]
                grad[rows[b, s]] = grad.get(rows[b, s], 0.0) + g
        alpha = LR * np.sqrt(1 - B2**t) / (1 - B1**t)
        for r, g in grad.items():
            m[r] += (g - m[r]) * (1 - B1)
            v[r] += (g * g - v[r]) * (1 - B2)
            var[r] -= alpha * m[r] / (np.sqrt(v[r]) + EPS)
    return var


def test_fit_updates_the_looked_up_rows_by_lazy_adam():
    x, y = _data()
    model, table, start = _model()
    assert isinstance(model.optimizer, RowWiseOptimizer)
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    got = keras.ops.convert_to_numpy(table)
    want = _lazy_adam_by_hand(start, x, y)
    # (float32 against float64: Adam divides by small moments.)
    np.testing.assert_allclose(got, want, atol=1e-5)
    # Rows 4..7 were never looked up: bit for bit as they started, slots zero.
    assert got[4:8].tobytes() == start[4:8].tobytes()
    m, v = (keras.ops.convert_to_numpy(s) for s in model.optimizer.slots(table))
    assert not m[4:8].any() and not v[4:8].any()
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == STEPS


def test_row_wise_and_dense_sgd_agree():
    # Plain SGD's update is the same row-wise: the rows' gradients (summed
    # over both lookups and over repeated ids) are the table's gradient.
    x, y = _data()
    tables = []
    for row_wise in (True, False):
        model, table, _ = _model(row_wise)
        model.compile(
            keras.optimizers.SGD(0.5),
            metrics={"score": []},
            row_wise_updates=row_wise,
            jit_compile=BACKEND == "jax",
            steps_per_execution=1,
        )
        assert isinstance(model.optimizer, RowWiseOptimizer) is row_wise
        model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
        tables.append(keras.ops.convert_to_numpy(table))
    np.testing.assert_allclose(tables[0], tables[1], atol=1e-6)
    assert np.abs(tables[1][:4] - _model()[2][:4]).max() > 1e-3  # (it trained)


def test_a_table_read_by_another_layer_still_trains():
    # A table marked by hand (read by `keras.layers.Embedding`, not through
    # keras-mtl's `gather_rows`) keeps its dense gradient on JAX and torch,
    # taken as touching every row: with SGD, the dense update.
    ids = keras.Input((), dtype="int32", name="item")
    embedding = keras.layers.Embedding(ROWS, DIM, embeddings_initializer="zeros")
    z = embedding(ids)
    model = km.MultiTaskModel(
        ids,
        {"score": keras.layers.Dense(1, use_bias=False, name="score")(z)},
        tasks=[km.Task("score", "regression")],
    )
    km.optimizers.mark_table(embedding.embeddings)
    model.compile(
        keras.optimizers.SGD(1.0),
        metrics={"score": []},
        row_wise_updates=True,
        jit_compile=BACKEND == "jax",
        steps_per_execution=1,
    )
    model.get_layer("score").set_weights([np.ones((DIM, 1), "float32")])
    assert isinstance(model.optimizer, RowWiseOptimizer)
    x, y = np.array([1, 1, 2, 5]), {"score": np.array([1, 2, 3, -4], "float32")}
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    # pred = 0, MSE's gradient at row r: sum over its ids of -2 y / 4.
    want = np.zeros((ROWS, DIM), "float32")
    want[1], want[2], want[5] = 1.5, 1.5, -2.0
    table = keras.ops.convert_to_numpy(embedding.embeddings)
    np.testing.assert_allclose(table, want, atol=1e-6)
