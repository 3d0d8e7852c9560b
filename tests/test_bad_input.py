"""The issue's bad-input list, end to end: each case is a clear error naming the
feature, or handled by design (OOV row, learned fill, masked label)."""

import numpy as np
import pytest

import keras_mtl as km
from keras_mtl.data import make_dataset

FEATURES = [
    km.SparseFeature("occupation", vocabulary_size=5, embedding_dim=2),
    km.DenseFeature("age"),
    km.DenseFeature("gains", allow_missing=True),
]
TASKS = [km.Task("income")]


def rows(**overrides):
    data = {
        "occupation": np.array([0, 4, 2]),
        "age": np.array([30.0, 41.0, 52.0], "float32"),
        "gains": np.array([0.0, np.nan, 3.0], "float32"),
        "income": np.array([0.0, 1.0, np.nan], "float32"),
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


@pytest.mark.parametrize(
    "overrides, error, match",
    [
        ({"age": None}, ValueError, "'age'.*Available columns"),
        ({"income": None}, ValueError, "'income'"),
        ({"age": np.array(["30", "41", "x"], dtype=object)}, TypeError, "'age'"),
        ({"occupation": np.array([0.5, 1.0, 2.0])}, TypeError, "'occupation'"),
        ({"occupation": np.array([0, 5, 9])}, ValueError, "'occupation'.*5"),
        ({"age": np.array([30.0, np.nan, 1.0])}, ValueError, "'age'.*allow_missing"),
        ({"income": np.array([0.0, 2.0, 1.0])}, ValueError, "'income'"),
    ],
)
def test_make_dataset_names_the_feature(overrides, error, match):
    with pytest.raises(error, match=match):
        make_dataset(rows(**overrides), FEATURES, TASKS)


def test_empty_dataset():
    empty = {k: v[:0] for k, v in rows().items()}
    with pytest.raises(ValueError, match="no rows"):
        make_dataset(empty, FEATURES, TASKS)


def test_handled_by_design_in_the_model():
    """Out-of-range ids hit the OOV row, NaN in an allow_missing feature gets the
    learned fill, a missing label is masked: finite predictions and loss."""
    model = km.build_shared_bottom(FEATURES, TASKS)
    x = {
        "occupation": np.array([99, -7, 3]),
        "age": np.array([1.0, 2.0, 3.0], "float32"),
        "gains": np.array([np.nan, np.nan, 1.0], "float32"),
    }
    out = model.predict(x, verbose=0)["income"]
    assert np.isfinite(out).all()
    # Both out-of-range ids use the same OOV row: same output for same dense input.
    twin = dict(x, occupation=np.array([99, 12345, 3]), age=np.array([1.0, 1.0, 3.0]))
    out = model.predict(twin, verbose=0)["income"]
    assert out[0] == pytest.approx(out[1])
    logs = model.fit(make_dataset(rows(), FEATURES, TASKS), verbose=0).history
    assert np.isfinite(logs["loss"][0])


def test_unknown_names_in_specs_and_compile():
    with pytest.raises(ValueError, match="'nope'"):
        km.build_mmoe(
            FEATURES
            + [km.SparseFeature("x", vocabulary_size=5, share_embedding_with="nope")],
            TASKS,
        )
    model = km.build_mmoe(FEATURES, TASKS, compile=False)
    with pytest.raises(ValueError, match=r"tasks \['ctr'\] are not outputs"):
        km.MultiTaskModel(model.input, model.output, tasks=[km.Task("ctr")])
    with pytest.raises(ValueError, match=r"loss for \['ctr'\], which are not tasks"):
        model.compile(loss={"ctr": "mse"})
    with pytest.raises(TypeError, match="loss_weights must be a dict keyed by task"):
        model.compile(loss_weights=[1.0, 2.0])
