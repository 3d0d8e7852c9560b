"""Raw values in, for every built-in data set: the exported model takes a log's values.

For each data set a small model is built from its specs, trained a few steps
(so that its outputs depend on the inputs), and exported; a handful of raw rows
(the data set's columns as loaded: census strings, MovieLens genders, ages in
years, ratings in stars, request and step times in Unix seconds, ...) go through `serving_default` in
one fresh process that never imports keras_mtl, and must give the predictions
of the Python pipeline (`make_dataset` batches, or Ali-CCP's own reader).
"""

import keras
import numpy as np
import pytest

import keras_mtl as km
from keras_mtl.data import make_dataset
from keras_mtl.datasets import load_census, load_movielens, make_funnel, make_synthetic
from keras_mtl.datasets.aliccp import aliccp_features, load_aliccp
from tests.datasets.test_aliccp import write_split
from tests.datasets.test_census import write_raw
from tests.helpers import input_names, serve_in_fresh_process, xla_off
from tests.movielens_fixture import write_movielens

ROWS = 6


def _trained(model, data, features, tasks, epochs=2, drop_remainder=False):
    # Batches of one size (whole ones, or the one batch of a tiny data set):
    # one trace of the training step.
    model.fit(
        make_dataset(data, features, tasks, 32, seed=0, drop_remainder=drop_remainder),
        epochs=epochs,
        verbose=0,
    )
    return model


def _pipeline_predictions(model, rows, features):
    ds = make_dataset(rows, features, batch_size=ROWS, shuffle=False)  # one trace
    return model.predict(ds, verbose=0)


def _synthetic(tmp_path):
    syn = make_synthetic(num_examples=256, dim=6, seed=0)
    model = km.build_mmoe(syn.features, syn.tasks, num_experts=2, expert_units=[4])
    _trained(model, syn.data, syn.features, syn.tasks)
    rows = {"x": syn.data["x"][:ROWS]}
    return model, rows, _pipeline_predictions(model, rows, syn.features)


def _census(tmp_path):
    data = load_census(write_raw(tmp_path / "census.test"))
    model = km.build_mmoe(
        data.features, data.tasks, num_experts=2, expert_units=[4], tower_units=[4]
    )
    _trained(model, data.frame, data.features, data.tasks, epochs=4)
    frame = data.frame.iloc[:ROWS]
    rows = {
        f.name: frame[f.name].to_numpy(
            dtype=object if isinstance(f, km.SparseFeature) else np.float32
        )
        for f in data.features
    }
    assert "?" in rows["country_of_birth_self"].tolist()  # a raw unknown
    return model, rows, _pipeline_predictions(model, frame, data.features)


def _funnel(tmp_path):
    funnel = make_funnel(
        num_impressions=512, num_users=40, num_items=30, num_categories=5, seed=0
    )
    model = km.build_esmm(funnel.features, funnel.tasks, tower_units=[4])
    _trained(model, funnel.frame, funnel.features, funnel.tasks)
    frame = funnel.frame.iloc[:ROWS]
    rows = {name: frame[name].to_numpy() for name in input_names(funnel.features)}
    # Lists of any length up to the model's: a request pads its batch with -1.
    lists = [list(v) for v in rows["user_history"]]
    width = max(len(v) for v in lists)
    rows["user_history"] = np.array([v + [-1] * (width - len(v)) for v in lists])
    return model, rows, _pipeline_predictions(model, frame, funnel.features)


def _aliccp(tmp_path):
    features = aliccp_features(embedding_dim=3, hash_bins=1000)
    root = write_split(tmp_path)
    model = km.build_esmm(features, tower_units=[4])
    # One batch of the 5 lines per epoch: one trace of the training step.
    train = load_aliccp(root, features=features, batch_size=ROWS)
    model.fit(train, epochs=3, verbose=0)
    x, _ = next(iter(load_aliccp(root, features=features, batch_size=ROWS)))
    rows = {name: value.numpy() for name, value in x.items()}
    return model, rows, model.predict(rows, verbose=0)


def _movielens(tmp_path):
    path = write_movielens(tmp_path / "ml", num_users=20, num_items=60)
    ml = load_movielens(path, max_len=6, list_size=4, item_hash_bins=64)
    model = km.build_dupn(
        ml.features,
        ml.tasks,
        query=ml.query,
        units=8,
        attention_units=4,
        profile_units=4,
        tower_units=[4],
    )
    _trained(model, ml.train, ml.features, ml.tasks, epochs=1, drop_remainder=True)
    rows = {name: ml.test[name][:ROWS] for name in input_names(ml.features)}
    predicted = _pipeline_predictions(model, rows, ml.features)
    # What the log has: strings, years, stars, and Unix times instead of the
    # hour, weekday and gaps (derived in the graph).
    times = km.layers.TimeFeatures(**ml.time_features)
    for derived in times.sources:
        del rows[derived]
    rows.update({n: ml.test[n][:ROWS] for n in ("timestamp", "history_timestamp")})
    assert rows["timestamp"].min() > 8e8  # (1995 on)
    assert rows["gender"].dtype == object and set(rows["gender"]) <= {"F", "M"}
    assert rows["age"].min() >= 7
    assert set(rows["history_rating"][rows["history_item"] != -1]) <= {1, 2, 3, 4, 5}
    return model, rows, predicted, {"preprocessor": times}


DATA_SETS = {
    "synthetic": _synthetic,
    "census": _census,
    "funnel": _funnel,
    "aliccp": _aliccp,
    "movielens": _movielens,
}


@pytest.mark.slow
def test_every_data_set_serves_its_raw_rows(tmp_path):
    """One fresh process serves the raw rows of all five data sets (training,
    not XLA, is most of the ~60-100 s on 2 cores)."""
    keras.utils.set_random_seed(0)
    cases, calls = {}, []
    for name, make in DATA_SETS.items():
        (tmp_path / name).mkdir()
        with xla_off():  # compiling five models with XLA is most of the time
            model, rows, predicted, *options = make(tmp_path / name)
        export = km.export_saved_model(
            model, tmp_path / name / "export", **(options[0] if options else {})
        )
        cases[name] = predicted
        calls.append({"dir": export, "inputs": rows})
    served = serve_in_fresh_process(calls)
    for (name, predicted), result in zip(cases.items(), served):
        assert set(result["outputs"]) == set(predicted), name
        for task, value in predicted.items():
            got = result["outputs"][task]
            np.testing.assert_allclose(
                got, value, atol=1e-5, rtol=0, err_msg=f"{name}: {task}"
            )
            # The rows' scores differ: the outputs depend on the raw values.
            flat = np.asarray(value).reshape(len(value), -1)
            assert np.ptp(flat, axis=0).max() > 1e-6, f"{name}: {task}"
