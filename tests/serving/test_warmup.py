"""TF Serving warm-up files: PredictionLog records in
`assets.extra/tf_serving_warmup_requests`, typed from the exported signature."""

import os
import stat

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

import keras_mtl as km
from keras_mtl.serving.warmup import WARMUP_FILE, signature_inputs
from tests.serving.test_export import FEATURES, TASKS


@pytest.fixture(scope="module")
def model():
    return km.build_mmoe(FEATURES, TASKS, num_experts=2, expert_units=(4,))


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    """One export (version 1 of a model named "ranker"), shared: each test that
    reads the warm-up file writes it first."""
    return km.export_saved_model(model, tmp_path_factory.mktemp("m") / "ranker")


@pytest.fixture(scope="module")
def tiny():
    inputs = km.make_inputs([km.DenseFeature("x", dim=3)])
    ctr = km.layers.TaskTower((), "binary", name="ctr")(inputs["x"])
    return keras.Model(inputs, {"ctr": ctr})


def rows(n=2):
    """A request of `n` raw rows in the types a caller has at hand: Python ints,
    Python strings, float64."""
    return {
        "item": [3, 99][:n],  # 99: out of vocabulary, still a valid request
        "tags": [["red", "", ""], ["blue", "red", ""]][:n],
        "price": np.array([[1.0, 2.0], [0.5, 0.0]])[:n],
    }


def records(version_dir):
    return [
        prediction_log_pb2.PredictionLog.FromString(r.numpy())
        for r in tf.data.TFRecordDataset(str(version_dir / WARMUP_FILE))
    ]


def test_the_signature_declares_the_dtypes(exported):
    dtypes = {k: dtype for k, (dtype, _) in signature_inputs(exported).items()}
    assert dtypes == {"item": tf.int64, "price": tf.float32, "tags": tf.string}


def test_requests_round_trip_with_the_signatures_dtypes(exported):
    second = {
        "item": np.array([7], "int32"),
        "tags": np.array([[b"green", b"", b""]], dtype=object),
        "price": [[3.0, 4.0]],
    }
    path = km.serving.write_warmup_requests(exported, [rows(), second])
    assert path == exported / "assets.extra" / "tf_serving_warmup_requests"
    decoded = km.serving.read_warmup_requests(exported)
    assert [name for name, _ in decoded] == ["serving_default"] * 2
    for (_, got), want in zip(decoded, [rows(), second]):
        assert sorted(got) == ["item", "price", "tags"]
        assert got["item"].dtype == np.int64
        assert got["price"].dtype == np.float32
        assert got["tags"].dtype == object
        np.testing.assert_array_equal(got["item"], np.asarray(want["item"]))
        np.testing.assert_array_equal(got["price"], np.float32(want["price"]))
        tags = np.vectorize(
            lambda t: t if isinstance(t, bytes) else t.encode(), otypes=[object]
        )(np.asarray(want["tags"], dtype=object))
        np.testing.assert_array_equal(got["tags"], tags)


def test_records_are_prediction_logs_for_the_model(exported):
    km.serving.write_warmup_requests(exported, [rows(2), rows(1)])
    logs = records(exported)
    assert len(logs) == 2
    for log, n in zip(logs, (2, 1)):
        assert log.WhichOneof("log_type") == "predict_log"
        request = log.predict_log.request
        assert request.model_spec.name == "ranker"  # the base directory's name
        assert request.model_spec.signature_name == "serving_default"
        dtypes = {k: tf.as_dtype(v.dtype) for k, v in request.inputs.items()}
        assert dtypes == {"item": tf.int64, "price": tf.float32, "tags": tf.string}
        shape = [d.size for d in request.inputs["price"].tensor_shape.dim]
        assert shape == [n, 2]


def test_decoded_requests_run_through_the_signature(model, exported):
    """What TF Serving does at load: every warm-up request runs, and gives
    model.predict's outputs."""
    km.serving.write_warmup_requests(exported, [rows(2), rows(1)])
    serve = tf.saved_model.load(str(exported)).signatures["serving_default"]
    for _, inputs in km.serving.read_warmup_requests(exported):
        out = serve(**{k: tf.constant(v) for k, v in inputs.items()})
        expected = model.predict(
            {k: tf.constant(v) for k, v in inputs.items()}, verbose=0
        )
        for task in ("click", "gmv"):
            np.testing.assert_allclose(out[task].numpy(), expected[task], atol=1e-6)


def test_values_are_coerced_as_the_clients_coerce_them(exported):
    """One coercion (keras_mtl.serving.client.coerce): whole floats are ids."""
    km.serving.write_warmup_requests(exported, [dict(rows(), item=[3.0, 99.0])])
    [(_, got)] = km.serving.read_warmup_requests(exported)
    assert got["item"].dtype == np.int64 and got["item"].tolist() == [3, 99]


def test_at_most_1000_requests(tiny, tmp_path):
    version = km.export_saved_model(tiny, tmp_path)
    one = {"x": np.zeros((1, 3), "float32")}
    with pytest.raises(ValueError, match=r"1 to 1000 requests .* got 1001"):
        km.serving.write_warmup_requests(version, [one] * 1001)
    with pytest.raises(ValueError, match=r"1 to 1000 requests .* got 0"):
        km.serving.write_warmup_requests(version, [])
    assert not (version / WARMUP_FILE).exists()
    km.serving.write_warmup_requests(version, [one] * 1000)
    assert len(records(version)) == 1000


@pytest.mark.parametrize(
    "change, message",
    [
        (
            dict(item=[1.5, 2.0]),
            r"^warm-up request 0: Input 'item' takes DT_INT64 \(integer ids\); "
            r"got 1\.5, which is not a whole number",
        ),
        (
            dict(item=["3", "4"]),
            r"request 0: Input 'item' takes DT_INT64 .*got values of type <U1",
        ),
        (
            dict(tags=[[1, 2, 3], [4, 5, 6]]),
            r"request 0: Input 'tags' takes DT_STRING; got 1 \(int\)",
        ),
        (
            dict(tags=np.array([["a", 3, ""]] * 2, object)),
            r"request 0: Input 'tags' takes DT_STRING; got 3 \(int\)",
        ),
        (
            dict(price=[1.0, 2.0]),
            r"request 0: Input 'price' has shape \(2,\); the signature takes "
            r"\(-1, -1\)",
        ),
        (
            dict(item=[3]),
            r"request 0: Inputs have different batch sizes \(first axis\): "
            r"\{'item': 1, 'price': 2, 'tags': 2\}",
        ),
        (
            dict(price=None),
            r"request 0: The signature takes inputs \['item', 'price', 'tags'\]; "
            r"missing: \['price'\]\.$",
        ),
        (dict(colour=[1, 2]), r"request 0: .*\]; unknown: \['colour'\]\.$"),
    ],
)
def test_bad_requests_name_the_request_and_input(exported, change, message):
    request = {**rows(), **change}
    request = {k: v for k, v in request.items() if v is not None}
    with pytest.raises(ValueError, match=message):
        km.serving.write_warmup_requests(exported, [request])


def test_other_errors(exported, tmp_path):
    with pytest.raises(ValueError, match=r"'ranking' is not a signature .* has \["):
        km.serving.write_warmup_requests(exported, [rows()], signature_name="ranking")
    with pytest.raises(ValueError, match=r"a list of dicts of arrays, got one dict"):
        km.serving.write_warmup_requests(exported, rows())
    with pytest.raises(FileNotFoundError, match="holds no SavedModel"):
        km.serving.write_warmup_requests(tmp_path, [rows()])
    with pytest.raises(FileNotFoundError, match="no warm-up file"):
        km.serving.read_warmup_requests(tmp_path)
    (tmp_path / "assets.extra").mkdir()
    with tf.io.TFRecordWriter(str(tmp_path / WARMUP_FILE)) as writer:
        log = prediction_log_pb2.PredictionLog()
        log.classify_log.request.model_spec.name = "ranker"
        writer.write(log.SerializeToString())
    with pytest.raises(ValueError, match="record 0 .* is a classify_log"):
        km.serving.read_warmup_requests(tmp_path)


def test_export_writes_the_warm_up_file_before_the_version_appears(tiny, tmp_path):
    old = os.umask(0o022)
    try:
        version = km.export_saved_model(
            tiny, tmp_path / "ctr", warmup_requests=[{"x": np.ones((2, 3))}]
        )
    finally:
        os.umask(old)
    # Once per signature: the raw inputs, then the rows as tf.Examples.
    [(default, inputs), (examples, parsed)] = km.serving.read_warmup_requests(version)
    assert (default, examples) == ("serving_default", "serving_examples")
    np.testing.assert_array_equal(inputs["x"], np.ones((2, 3), "float32"))
    [first, second] = [tf.train.Example.FromString(e) for e in parsed["examples"]]
    assert list(first.features.feature["x"].float_list.value) == [1.0, 1.0, 1.0]
    assert second == first
    assert records(version)[0].predict_log.request.model_spec.name == "ctr"
    assert stat.S_IMODE((version / WARMUP_FILE).stat().st_mode) == 0o644
    assert sorted(p.name for p in (version / "assets.extra").iterdir()) == [
        "keras_mtl.json",
        "tf_serving_warmup_requests",
    ]

    # A bad warm-up request fails the export: no version, no debris.
    with pytest.raises(ValueError, match=r"request 0: Input 'x' has shape \(1,\)"):
        km.export_saved_model(tiny, tmp_path / "ctr", warmup_requests=[{"x": [1.0]}])
    assert [p.name for p in (tmp_path / "ctr").iterdir()] == ["1"]


def test_example_records_are_typed_by_the_signature(tiny, tmp_path):
    """Python ints for a float feature go as floats in the tf.Example records
    (as int64_list they would not parse), also when serving_examples is the
    only signature warmed."""
    version = km.export_saved_model(tiny, tmp_path / "ctr")
    km.serving.write_warmup_requests(
        version, [{"x": [[1, 2, 3]]}], signature_name="serving_examples"
    )
    [(name, inputs)] = km.serving.read_warmup_requests(version)
    assert name == "serving_examples"
    [record] = [tf.train.Example.FromString(e) for e in inputs["examples"]]
    assert list(record.features.feature["x"].float_list.value) == [1.0, 2.0, 3.0]
    served = tf.saved_model.load(str(version)).signatures["serving_examples"]
    assert served(examples=tf.constant(inputs["examples"]))["ctr"].shape == (1,)
