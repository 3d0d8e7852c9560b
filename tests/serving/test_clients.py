"""The clients end to end: exported models served by the TF Serving stand-in
(a fresh process on 127.0.0.1 that never imports keras_mtl) from one
models.config, called over REST and gRPC, equal `model.predict`."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import keras_mtl as km
from keras_mtl.serving.client import (
    DupnClient,
    RestClient,
    ServingError,
    coerce,
    coerce_inputs,
    rest_body,
    rest_outputs,
    signature_shapes,
)
from keras_mtl.serving.grpc_client import GrpcClient
from tests.serving.test_signatures import small_dupn

FIXTURES = Path(__file__).parent / "fixtures" / "tf_serving_rest"

pytestmark = pytest.mark.slow  # exports and a server process

FEATURES = [
    km.SparseFeature("city", vocabulary=["paris", "rome", "oslo"], embedding_dim=2),
    km.SparseFeature("item", vocabulary_size=10, embedding_dim=2),
    km.SparseFeature("tags", hash_bins=16, embedding_dim=2, max_len=3),
    km.DenseFeature("price", dim=2),
    km.DenseFeature("age", allow_missing=True, mean=40, std=10),
]
TASKS = [km.Task("click"), km.Task("buy")]
#: Raw values as a service has them: Python lists, ints, strings, None-free.
RAW = {
    "city": ["rome", "berlin", "paris"],  # berlin: OOV row
    "item": [3, 99, -1],
    "tags": [["red", "", ""], ["blue", "red", "green"], ["", "", ""]],
    "price": [[1.0, 2.0], [0.5, 0.0], [3, -1]],
    "age": [31.0, float("nan"), 58],  # NaN: missing, allowed
}


def as_model_input(raw):
    return {
        "city": np.array(raw["city"]),
        "item": np.array(raw["item"], np.int64),
        "tags": np.array(raw["tags"]),
        "price": np.array(raw["price"], np.float32),
        "age": np.array(raw["age"], np.float32),
    }


@pytest.fixture(scope="module")
def models():
    return {
        "mmoe": km.build_mmoe(FEATURES, TASKS, num_experts=2, expert_units=(4,)),
        "dupn": small_dupn(),
    }


@pytest.fixture(scope="module")
def server(models, tmp_path_factory, tf_serving_standin):
    base = tmp_path_factory.mktemp("models")
    km.export_saved_model(
        models["mmoe"],
        base / "mmoe",
        ranking_score=km.serving.RankingScore({"click": 1, "buy": 1}),
    )
    km.export_dupn(models["dupn"], base / "dupn")
    config = km.serving.write_models_config(
        base / "models.config",
        [
            km.serving.ServedModel("mmoe", base / "mmoe"),
            *km.serving.dupn_models(base / "dupn", parts=("user_encoder", "scorer")),
        ],
    )
    return tf_serving_standin(model_config_file=config)


def assert_close(got, want):
    assert sorted(got) == sorted(want)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], atol=1e-5, rtol=0)


@pytest.mark.parametrize("form", ["columnar", "rows"])
def test_rest_client_matches_predict(models, server, form):
    client = RestClient(server.rest_url, "mmoe")
    want = models["mmoe"].predict(as_model_input(RAW), verbose=0)
    want["ranking_score"] = want["click"] * want["buy"]
    assert_close(client.predict(RAW, form=form), want)
    score = client.predict(RAW, "ranking_score", form=form)
    assert_close(score, {"ranking_score": want["ranking_score"]})


def test_grpc_client_matches_predict_with_python_ints(models, server):
    """Python int lists would go as int32 (TF Serving refuses them); the client
    sends the signature's int64."""
    client = GrpcClient(server.grpc_target, "mmoe")
    try:
        want = models["mmoe"].predict(as_model_input(RAW), verbose=0)
        out = client.predict(RAW)
        assert out["click"].dtype == np.float32
        for task in want:
            np.testing.assert_allclose(out[task], want[task], atol=1e-5, rtol=0)
        bad = dict(RAW, price=[[np.nan, 1.0]] * 3)
        with pytest.raises(ServingError, match="`price`: finite values"):
            client.predict(bad)
    finally:
        client.close()


def test_server_errors_name_the_input(server):
    client = RestClient(server.rest_url, "mmoe")
    with pytest.raises(ServingError, match="`price`: finite values") as caught:
        client.predict(dict(RAW, price=[[1.0, 2.0], [np.nan, 0.0], [0, 0]]))
    assert caught.value.status == 400
    with pytest.raises(ServingError, match="`tags`: lists of at most"):
        client.predict(dict(RAW, tags=[["a", "b", "c", "d"]] * 3))


def test_bad_values_are_refused_before_sending(server):
    client = RestClient(server.rest_url, "mmoe")
    with pytest.raises(ValueError, match="'item' takes DT_INT64.*3.5"):
        client.predict(dict(RAW, item=[3.5, 1, 2]))
    with pytest.raises(ValueError, match="'price' takes DT_FLOAT"):
        client.predict(dict(RAW, price=[["a", "b"]] * 3))
    with pytest.raises(ValueError, match="'city' takes DT_STRING; got 7"):
        client.predict(dict(RAW, city=[7, 8, 9]))
    with pytest.raises(ValueError, match=r"missing: \['age'\]"):
        client.predict({k: v for k, v in RAW.items() if k != "age"})


def test_rest_bodies_follow_tf_servings_forms():
    dtypes = {"city": "DT_STRING", "blob": "DT_STRING", "item": "DT_INT64"}
    values = {"city": ["rome"], "blob": [b"\xff\x00"], "item": np.int32([4])}
    assert rest_body(values, dtypes) == {
        "signature_name": "serving_default",
        "inputs": {"city": ["rome"], "blob": [{"b64": "/wA="}], "item": [4]},
    }
    rows = rest_body(values, dtypes, form="rows")["instances"]
    assert rows == [{"city": "rome", "blob": {"b64": "/wA="}, "item": 4}]
    assert coerce("age", [1, np.nan], "DT_FLOAT").dtype == np.float32
    # No silent wrap-around: out of the signature dtype's range is an error.
    with pytest.raises(ValueError, match="'item' takes DT_INT64.*out of its range"):
        coerce("item", np.array([2**63], np.uint64), "DT_INT64")
    with pytest.raises(ValueError, match="'item' takes DT_INT32.*out of its range"):
        coerce("item", [2**40], "DT_INT32")
    # One output comes back unwrapped, in either form.
    assert rest_outputs({"outputs": [0.5]}, ["p"])["p"].tolist() == [0.5]
    assert rest_outputs({"predictions": [0.5, 0.2]}, ["p"])["p"].tolist() == [0.5, 0.2]
    got = rest_outputs({"predictions": [{"a": 1, "b": [2, 3]}]}, ["a", "b"])
    assert got["b"].tolist() == [[2, 3]]


def test_shapes_and_batch_sizes_are_checked_before_sending(server):
    """Both clients read the signature's shapes from the server's metadata:
    a wrong rank, or inputs of different batch sizes, fail naming the input."""
    rest = RestClient(server.rest_url, "mmoe")
    grpc = GrpcClient(server.grpc_target, "mmoe")
    try:
        assert signature_shapes(rest.metadata(), "serving_default") == {
            "age": (-1,),
            "city": (-1,),
            "item": (-1,),
            "price": (-1, -1),
            "tags": (-1, -1),
        }
        assert grpc.signature_shapes("ranking_score") == signature_shapes(
            rest.metadata(), "ranking_score"
        )
        for client in (rest, grpc):
            with pytest.raises(
                ValueError,
                match=r"Input 'tags' has shape \(3,\); the signature takes \(-1, -1\)",
            ):
                client.predict(dict(RAW, tags=["red", "blue", ""]))
            with pytest.raises(ValueError, match=r"Input 'item' has shape \(3, 1\)"):
                client.predict(dict(RAW, item=[[3], [99], [-1]]))
            with pytest.raises(
                ValueError, match=r"different batch sizes \(first axis\): .*'item': 2"
            ):
                client.predict(dict(RAW, item=[3, 99]))
            with pytest.raises(ValueError, match=r"\['city'\] may have one row"):
                client.predict(dict(RAW, item=[3, 99]), broadcast=["city"])
    finally:
        grpc.close()


def test_coerce_inputs_checks_rank_fixed_dims_and_batch_sizes():
    dtypes = {"x": "DT_FLOAT", "ids": "DT_INT64", "blob": "DT_STRING"}
    shapes = {"x": (-1, 3), "ids": (None,), "blob": None}  # None: any rank
    ok = {"x": [[1, 2, 3], [4, 5, 6]], "ids": [1, 2], "blob": [[b"a"]]}
    got = coerce_inputs(ok, dtypes, shapes)
    assert got["x"].shape == (2, 3) and got["ids"].dtype == np.int64
    assert coerce_inputs(dict(ok, x=[[1, 2]]), dtypes)["x"].shape == (1, 2)
    with pytest.raises(
        ValueError, match=r"^Input 'x' has shape \(2, 2\); .* \(-1, 3\)"
    ):
        coerce_inputs(dict(ok, x=[[1, 2], [3, 4]]), dtypes, shapes)
    with pytest.raises(ValueError, match=r"^Input 'x' has shape \(3,\)"):
        coerce_inputs(dict(ok, x=[1, 2, 3]), dtypes, shapes)
    with pytest.raises(ValueError, match=r"^Input 'ids' has shape \(\); .* \(-1,\)"):
        coerce_inputs(dict(ok, ids=7), dtypes, shapes)
    with pytest.raises(
        ValueError,
        match=r"^Inputs have different batch sizes \(first axis\): "
        r"\{'x': 2, 'ids': 3\}\.$",
    ):
        coerce_inputs(dict(ok, ids=[1, 2, 3]), dtypes, shapes)
    # A broadcast input may have one row for the whole batch, not another count.
    one = dict(ok, x=[[1, 2, 3]], ids=[1, 2, 3])
    assert coerce_inputs(one, dtypes, shapes, broadcast=["x"])["x"].shape == (1, 3)
    with pytest.raises(ValueError, match=r"batch sizes .*; \['x'\] may have one row"):
        coerce_inputs(dict(ok, ids=[1, 2, 3]), dtypes, shapes, broadcast=["x"])
    with pytest.raises(ValueError, match=r"^Input 'ids': .*inhomogeneous"):
        coerce_inputs(dict(ok, ids=[[1], [2, 3]]), dtypes, shapes)
    body = rest_body(ok, dtypes, shapes=shapes)
    assert body["inputs"]["x"] == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    with pytest.raises(ValueError, match="Input 'x' has shape"):
        rest_body(dict(ok, x=[1, 2]), dtypes, shapes=shapes)
    # TF Serving's own metadata answer: sizes are strings, -1 any size.
    metadata = json.loads(
        (FIXTURES / "metadata_response_half_plus_two_2_versions.json").read_text()
    )
    assert signature_shapes(metadata, "regress_x2_to_y3") == {"inputs": (-1, 1)}
    with pytest.raises(ValueError, match="no signature 'nope'"):
        signature_shapes(metadata, "nope")


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_dupn_client_encodes_once_and_scores_any_number(models, server, transport):
    model = models["dupn"]
    if transport == "rest":
        encoder = RestClient(server.rest_url, "dupn_user_encoder")
        scorer = RestClient(server.rest_url, "dupn_scorer")
    else:
        encoder = GrpcClient(server.grpc_target, "dupn_user_encoder")
        scorer = GrpcClient(server.grpc_target, "dupn_scorer")
    user = {"history_item": [[5, 7, 2]], "history_action": [[0, 2, 1]]}
    targets = [3, 9, 11, 4]
    lists = [[3, 9, 11], [4, -1, -1]]
    dupn = DupnClient(encoder, scorer)
    ctr = dupn.score(user, {"item": targets}, "score_ctr")["ctr"]
    l2r = dupn.score(user, {"candidates_item": lists}, "score_l2r")["l2r"]
    history = {
        "history_item": np.array([[5, 7, 2, -1]] * 4),
        "history_action": np.array([[0, 2, 1, -1]] * 4),
    }
    want = model.predict(
        {**history, "item": np.array(targets), "candidates_item": np.array(lists * 2)},
        verbose=0,
    )
    np.testing.assert_allclose(ctr, want["ctr"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(l2r, want["l2r"][:2], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="one user's"):
        dupn.score({k: v * 2 for k, v in user.items()}, {"item": targets})


_NO_TENSORFLOW = textwrap.dedent(
    """
    import importlib.abc, json, sys

    class Absent(importlib.abc.MetaPathFinder):
        # A service without TensorFlow, Keras or the serving protos.
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"tensorflow", "keras", "tensorflow_serving",
                                      "jax", "torch", "tf_keras"}:
                raise ImportError(f"{name} is not installed here")

    sys.meta_path.insert(0, Absent())
    from keras_mtl.serving.client import RestClient
    import keras_mtl
    client = RestClient(sys.argv[1], "mmoe")
    out = client.predict(json.loads(sys.argv[2]), form="rows")
    heavy = [m for m in sys.modules if m.split(".")[0] in {"tensorflow", "keras"}]
    print(json.dumps({"click": out["click"].tolist(), "heavy": heavy,
                      "full": keras_mtl.FULL}))
    """
)


def test_rest_client_needs_neither_tensorflow_nor_keras(models, server):
    raw = {k: v for k, v in RAW.items()}
    raw["age"] = [31.0, 40.0, 58]
    proc = subprocess.run(
        [sys.executable, "-c", _NO_TENSORFLOW, server.rest_url, json.dumps(raw)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.splitlines()[-1])
    assert result["heavy"] == [] and result["full"] is False
    want = models["mmoe"].predict(as_model_input(raw), verbose=0)["click"]
    np.testing.assert_allclose(result["click"], want, atol=1e-5, rtol=0)
