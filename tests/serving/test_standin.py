"""The TF Serving stand-in (tests/serving/tf_serving_standin.py) held to TF
Serving's documented contract: the request and response bodies printed in
the REST API doc (tests/serving/fixtures/tf_serving_rest/) on a small
SavedModel built with plain TensorFlow whose signatures match the doc's
examples, plus the rules of TF Serving's REST handler and gRPC
PredictionService (dtype conversion, errors, versions, labels, metadata)."""

from __future__ import annotations

import ast
import base64
import json
import math
import pathlib
import re
import sys
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

STANDIN_SCRIPT = pathlib.Path(__file__).resolve().with_name("tf_serving_standin.py")
FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures" / "tf_serving_rest"
DOC_URL = "https://www.tensorflow.org/tfx/serving/api_rest"

#: The doc's row-format example exactly as printed (a stray "]" after the
#: second "signal" makes it invalid JSON; the fixture file has it fixed).
DOC_ROW_EXAMPLE_AS_PRINTED = """{
 "instances": [
   {
     "tag": "foo",
     "signal": [1, 2, 3, 4, 5],
     "sensor": [[1, 2], [3, 4]]
   },
   {
     "tag": "bar",
     "signal": [3, 4, 1, 2, 5]],
     "sensor": [[4, 5], [6, 8]]
   }
 ]
}"""


def fixture(name: str):
    return json.loads((FIXTURES / name).read_text())


# --------------------------------------------------------------------------
# Small SavedModels, plain TensorFlow
# --------------------------------------------------------------------------


def spec(shape, dtype, name):
    return tf.TensorSpec(shape, dtype, name=name)


class DocModel(tf.Module):
    """Signatures shaped like the REST doc's examples."""

    @tf.function(
        input_signature=[
            spec([None], tf.string, "tag"),
            spec([None, 5], tf.float32, "signal"),
            spec([None, 2, 2], tf.float32, "sensor"),
        ]
    )
    def serving_default(self, tag, signal, sensor):
        return {
            "signal_sum": tf.reduce_sum(signal, axis=1),
            "sensor_trace": tf.linalg.trace(sensor),
            "tag_upper": tf.strings.upper(tag),
        }

    @tf.function(input_signature=[spec([None], tf.string, "tag")])
    def single_string(self, tag):
        return {"tag_upper": tf.strings.upper(tag)}

    @tf.function(input_signature=[spec([None, 1, 2], tf.float32, "x")])
    def pairs(self, x):
        return {"sum": tf.reduce_sum(x, axis=[1, 2])}

    @tf.function(
        input_signature=[
            spec([None], tf.string, "image"),
            spec([None], tf.string, "caption"),
        ]
    )
    def classify_objects(self, image, caption):
        return {"image_bytes": image, "caption_length": tf.strings.length(caption)}

    @tf.function(
        input_signature=[
            spec([None], tf.int64, "count"),
            spec([None], tf.float32, "weight"),
        ]
    )
    def checked(self, count, weight):
        tf.debugging.assert_non_negative(count, message="count must be non-negative")
        return {"score": weight * tf.cast(count, tf.float32)}

    @tf.function(input_signature=[spec([None], tf.float64, "x")])
    def numbers(self, x):
        return {
            "half": x / 2,
            "doubled": tf.cast(x, tf.float32) * 2,
            "is_positive": x > 0,
        }


class Linear(tf.Module):
    def __init__(self, scale, offset):
        super().__init__()
        self.scale = tf.constant(scale, tf.float32)
        self.offset = tf.constant(offset, tf.float32)

    @tf.function(input_signature=[spec([None], tf.float32, "x")])
    def serve(self, x):
        return {"y": self.scale * x + self.offset}


def save(module, path, signatures):
    tf.saved_model.save(
        module, str(path), signatures={k: getattr(module, v) for k, v in signatures}
    )


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("standin_models")
    doc = DocModel()
    save(
        doc,
        root / "doc_model" / "1",
        [
            (name, name)
            for name in (
                "serving_default",
                "single_string",
                "pairs",
                "classify_objects",
                "checked",
                "numbers",
            )
        ],
    )
    # The doc's example model: y = 0.5 x + 3, version directory 00000123.
    save(
        Linear(0.5, 3.0),
        root / "saved_model_half_plus_three" / "00000123",
        [("serving_default", "serve")],
    )
    # Version v multiplies by v.
    for version in (1, 2, 3):
        save(
            Linear(float(version), 0.0),
            root / "versioned" / str(version),
            [("serving_default", "serve")],
        )
    config = root / "models.config"
    config.write_text(
        f"""model_config_list {{
  config {{
    name: "doc_model"
    base_path: "{root / "doc_model"}"
    model_platform: "tensorflow"
  }}
  config {{
    name: "saved_model_half_plus_three"
    base_path: "{root / "saved_model_half_plus_three"}"
    model_platform: "tensorflow"
  }}
  config {{
    name: "versioned"
    base_path: "{root / "versioned"}"
    model_platform: "tensorflow"
    model_version_policy {{ specific {{ versions: 1 versions: 2 }} }}
    version_labels {{ key: "stable" value: 1 }}
    version_labels {{ key: "canary" value: 2 }}
  }}
}}
"""
    )
    return root


@pytest.fixture(scope="module")
def servers(tf_serving_standin, model_dirs):
    """Started side by side: one stand-in serving the config file, one serving
    a single model (``--model_base_path``/``--model_name``), one that exits by
    itself a second after it listens (``--max_seconds=1``)."""
    configured = tf_serving_standin(
        model_config_file=model_dirs / "models.config", wait=False
    )
    single = tf_serving_standin(model_dirs / "versioned", "versioned", wait=False)
    timed = tf_serving_standin(
        model_dirs / "saved_model_half_plus_three", "half", max_seconds=1, wait=False
    )
    return {
        "configured": configured.wait_ready(),
        "single": single.wait_ready(),
        "timed": timed,
    }


@pytest.fixture(scope="module")
def server(servers):
    return servers["configured"]


@pytest.fixture(scope="module")
def single_server(servers):
    return servers["single"]


@pytest.fixture(scope="module")
def stub(server):
    channel = grpc.insecure_channel(
        server.grpc_target, options=[("grpc.enable_http_proxy", 0)]
    )
    yield prediction_service_pb2_grpc.PredictionServiceStub(channel)
    channel.close()


# --------------------------------------------------------------------------
# Clients
# --------------------------------------------------------------------------

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http(server, path, body=None, method=None):
    """(HTTP status, response text, content type); ``body`` a dict, str or bytes."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode("utf-8")
    request = urllib.request.Request(
        server.rest_url + path,
        data=body,
        method=method or ("GET" if body is None else "POST"),
        headers={"Content-Type": "application/json"},
    )
    try:
        with _OPENER.open(request, timeout=30) as response:
            return (
                response.status,
                response.read().decode("utf-8"),
                response.headers["Content-Type"],
            )
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8"), error.headers["Content-Type"]


def rest(server, path, body=None, method=None):
    status, text, _ = http(server, path, body, method)
    return status, json.loads(text)


def predict_request(name, inputs, signature_name="", version=None, label=None):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(value)
    return request


def grpc_error(call, *args):
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, timeout=30)
    return caught.value.code(), caught.value.details()


# --------------------------------------------------------------------------
# The doc's bodies
# --------------------------------------------------------------------------


def test_fixtures_are_the_doc_bodies():
    readme = (FIXTURES / "README.md").read_text()
    assert DOC_URL in readme
    for path in FIXTURES.glob("*.json"):
        assert path.name in readme, f"{path.name} is not described in README.md"
    # The fixed row example carries the values of the doc's columnar example.
    row = fixture("predict_request_row_named_inputs.json")["instances"]
    columns = fixture("predict_request_columnar_named_inputs.json")["inputs"]
    assert {k: [r[k] for r in row] for k in columns} == columns
    with pytest.raises(json.JSONDecodeError):
        json.loads(DOC_ROW_EXAMPLE_AS_PRINTED)
    assert DOC_ROW_EXAMPLE_AS_PRINTED.replace("5]],", "5],") == (
        FIXTURES / "predict_request_row_named_inputs.json"
    ).read_text().rstrip("\n")


def test_row_format_doc_example(server):
    status, text, content_type = http(
        server,
        "/v1/models/doc_model:predict",
        fixture("predict_request_row_named_inputs.json"),
    )
    assert (status, content_type) == (200, "application/json")
    # Several outputs: a list of objects, one per instance (JSON whole
    # numbers became the signature's float32 inputs).
    assert json.loads(text) == {
        "predictions": [
            {"signal_sum": 15.0, "sensor_trace": 5.0, "tag_upper": "FOO"},
            {"signal_sum": 15.0, "sensor_trace": 12.0, "tag_upper": "BAR"},
        ]
    }
    # Floats are written as decimals (TF Serving appends ".0" to whole numbers).
    assert re.search(r'"signal_sum": 15\.0\b', text)


def test_doc_row_example_as_printed_is_a_json_parse_error(server):
    status, body = rest(
        server, "/v1/models/doc_model:predict", DOC_ROW_EXAMPLE_AS_PRINTED
    )
    assert status == 400
    assert list(body) == ["error"]
    assert body["error"].startswith("JSON Parse error: ")


def test_columnar_format_doc_example(server):
    status, body = rest(
        server,
        "/v1/models/doc_model:predict",
        fixture("predict_request_columnar_named_inputs.json"),
    )
    assert status == 200
    # Several outputs: an object keyed by output name.
    assert body == {
        "outputs": {
            "signal_sum": [15.0, 15.0],
            "sensor_trace": [5.0, 12.0],
            "tag_upper": ["FOO", "BAR"],
        }
    }


def test_single_named_input_given_unnamed_and_single_output_unwrapped(server):
    scalars = fixture("predict_request_row_single_input_scalars.json")
    status, body = rest(
        server,
        "/v1/models/doc_model:predict",
        {"signature_name": "single_string", **scalars},
    )
    assert (status, body) == (200, {"predictions": ["FOO", "BAR", "BAZ"]})
    # ... or named, as objects.
    status, body = rest(
        server,
        "/v1/models/doc_model:predict",
        {"signature_name": "single_string", "instances": [{"tag": "foo"}]},
    )
    assert (status, body) == (200, {"predictions": ["FOO"]})

    tensors = fixture("predict_request_row_single_input_tensors.json")
    status, body = rest(
        server, "/v1/models/doc_model:predict", {"signature_name": "pairs", **tensors}
    )
    assert (status, body) == (200, {"predictions": [3.0, 7.0]})

    # Columnar: the single input unnamed, or named; the output unwrapped.
    for inputs in (tensors["instances"], {"x": tensors["instances"]}):
        status, body = rest(
            server,
            "/v1/models/doc_model:predict",
            {"signature_name": "pairs", "inputs": inputs},
        )
        assert (status, body) == (200, {"outputs": [3.0, 7.0]})


def test_half_plus_three_doc_example(server):
    status, text, content_type = http(server, "/v1/models/saved_model_half_plus_three")
    assert (status, content_type) == (200, "application/json")
    assert json.loads(text) == fixture("status_response_half_plus_three.json")

    status, body = rest(
        server,
        "/v1/models/saved_model_half_plus_three:predict",
        fixture("predict_request_half_plus_three.json"),
    )
    assert status == 200
    assert body == fixture("predict_response_half_plus_three.json")

    status, text, content_type = http(
        server,
        "/v1/models/half:predict",
        fixture("predict_request_model_not_found.json"),
    )
    assert (status, content_type) == (404, "application/json")
    assert json.loads(text) == fixture("error_response_model_not_found.json")


def test_regress_is_not_served(server):
    # The doc's regress call; the stand-in serves :predict only (the real
    # server would answer {"results": [3.5, 4.0]}).
    assert fixture("regress_response_half_plus_three.json") == {"results": [3.5, 4.0]}
    status, body = rest(
        server,
        "/v1/models/saved_model_half_plus_three:regress",
        fixture("regress_request_half_plus_three.json"),
    )
    assert status == 501
    assert "serves :predict only" in body["error"]


def test_b64_values_of_the_doc(server):
    doc = fixture("classify_request_b64.json")
    assert base64.b64decode(doc["examples"][0]["image"]["b64"]) == b"image bytes"
    # The doc's instances, sent to a predict signature of the same name.
    status, body = rest(
        server,
        "/v1/models/doc_model:predict",
        {"signature_name": doc["signature_name"], "instances": doc["examples"]},
    )
    assert status == 200
    # "image_bytes" ends in "_bytes": its values are written as b64 objects.
    assert body == {
        "predictions": [
            {"caption_length": 7, "image_bytes": {"b64": "aW1hZ2UgYnl0ZXM="}},
            {
                "caption_length": 9,
                "image_bytes": {"b64": "YXdlc29tZSBpbWFnZSBieXRlcw=="},
            },
        ]
    }
    status, body = rest(
        server,
        "/v1/models/doc_model:predict",
        {
            "signature_name": "classify_objects",
            "inputs": {
                "image": [e["image"] for e in doc["examples"]],
                "caption": [e["caption"] for e in doc["examples"]],
            },
        },
    )
    assert status == 200
    assert body["outputs"]["image_bytes"] == [e["image"] for e in doc["examples"]]

    # A single string input given as one b64 object per instance.
    status, body = rest(
        server,
        "/v1/models/doc_model:predict",
        {"signature_name": "single_string", "instances": [{"b64": "Zm9v"}]},
    )
    assert (status, body) == (200, {"predictions": ["FOO"]})


@pytest.mark.parametrize(
    "instance, message",
    [
        (
            {"count": 3.0, "weight": 1},
            "JSON Value: 3.0 Type: Number is not of expected type: int64",
        ),
        (
            {"count": True, "weight": 1},
            "JSON Value: true Type: True is not of expected type: int64",
        ),
        (
            {"count": 1, "weight": "2"},
            'JSON Value: "2" Type: String is not of expected type: float',
        ),
        (
            {"count": 1, "weight": {"b64": "AA=="}},
            "Type: Object is not of expected type: float",
        ),
        ({"count": 2**63, "weight": 1}, "is not of expected type: int64"),
    ],
)
def test_json_values_that_do_not_convert(server, instance, message):
    status, body = rest(
        server,
        "/v1/models/doc_model:predict",
        {"signature_name": "checked", "instances": [instance]},
    )
    assert status == 400
    assert body["error"].startswith("Failed to process element: 0 key: ")
    assert message in body["error"]


def test_json_numbers_convert_to_the_signature_dtypes(server):
    # Whole numbers to float32 (weight) and int64 (count).
    status, body = rest(
        server,
        "/v1/models/doc_model:predict",
        {"signature_name": "checked", "instances": [{"count": 3, "weight": 2}]},
    )
    assert (status, body) == (200, {"predictions": [6.0]})
    # float64 in and out, NaN / Infinity tokens both ways, bool output;
    # decimals written with six digits when they round-trip, else in full.
    status, text, _ = http(
        server,
        "/v1/models/doc_model:predict",
        '{"signature_name": "numbers", "inputs": [0.1, NaN, -Infinity, 3, 0.3333333333333333]}',
    )
    assert status == 200
    outputs = json.loads(text)["outputs"]
    assert outputs["is_positive"] == [True, False, False, True, True]
    assert outputs["half"][0] == 0.05 and math.isnan(outputs["half"][1])
    assert outputs["half"][2:] == [-math.inf, 1.5, 1 / 6]
    assert math.isnan(outputs["doubled"][1])
    # float32 0.2 is written "0.2" (its shortest form that round-trips).
    assert [outputs["doubled"][i] for i in (0, 2, 3)] == [0.2, -math.inf, 6.0]
    compact = re.sub(r"\s+", "", text)
    assert '"half":[0.05,NaN,-Infinity,1.5,0.16666666666666666]' in compact
    assert '"doubled":[0.2,NaN,-Infinity,6.0,0.666666687]' in compact


def test_graph_error_passes_through_as_400(server):
    status, body = rest(
        server,
        "/v1/models/doc_model:predict",
        {"signature_name": "checked", "inputs": {"count": [1, -1], "weight": [1, 1]}},
    )
    assert status == 400
    assert list(body) == ["error"]
    assert "assertion failed" in body["error"]
    assert "count must be non-negative" in body["error"]


@pytest.mark.parametrize(
    "method, path, body, status, message",
    [
        (
            "POST",
            "doc_model:predict",
            b"",
            400,
            "JSON Parse error: The document is empty",
        ),
        ("POST", "doc_model:predict", "instances = [1, 2]", 400, "JSON Parse error: "),
        ("POST", "doc_model:predict", "[1]", 400, "JSON Value: [1] Is not object"),
        (
            "POST",
            "doc_model:predict",
            {"signature_name": 100, "instances": [1]},
            400,
            "'signature_name' key must be a string value.",
        ),
        (
            "POST",
            "doc_model:predict",
            {"instances": ["a"], "inputs": ["a"]},
            400,
            "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist",
        ),
        (
            "POST",
            "doc_model:predict",
            {"signature_name": "pairs"},
            400,
            "Missing 'inputs' or 'instances' key",
        ),
        (
            "POST",
            "doc_model:predict",
            {"instances": {"tag": "a"}},
            400,
            "Excepting 'instances' to be an list/array",
        ),
        (
            "POST",
            "doc_model:predict",
            {"instances": []},
            400,
            "No values in 'instances' array",
        ),
        (
            "POST",
            "doc_model:predict",
            {"instances": ["foo"]},
            400,
            "instances is a plain list, but expecting list of objects as multiple input "
            "tensors required as per tensorinfo_map",
        ),
        (
            "POST",
            "doc_model:predict",
            {"inputs": ["foo"]},
            400,
            "inputs is a plain value/list, but expecting an object as multiple input "
            "tensors required as per tensorinfo_map",
        ),
        (
            "POST",
            "doc_model:predict",
            {"instances": [{"tag": "foo", "signal": [1, 2, 3, 4, 5]}]},
            400,
            "must only have keys: sensor,signal,tag",
        ),
        (
            "POST",
            "doc_model:predict",
            {
                "instances": [
                    {
                        "tag": "a",
                        "signal": [1, 2, 3, 4, 5],
                        "sensor": [[1, 2], [3, 4]],
                        "x": 1,
                    }
                ]
            },
            400,
            "JSON object: does not have named input: x",
        ),
        (
            "POST",
            "doc_model:predict",
            {"inputs": {"tag": ["a"], "signal": [[1, 2, 3, 4, 5]]}},
            400,
            "Missing named input: sensor in 'inputs' object.",
        ),
        (
            "POST",
            "doc_model:predict",
            {"signature_name": "pairs", "inputs": [[[1, 2]], [[3]]]},
            400,
            "Encountered list at unexpected size: 1 at level: 2 expected size: 2",
        ),
        (
            "POST",
            "doc_model:predict",
            {"signature_name": "pairs", "inputs": [[[1, 2]], [3]]},
            400,
            "JSON Value: 3 found at incorrect level: 3 in the JSON DOM. Expected at level: 3",
        ),
        (
            "POST",
            "doc_model:predict",
            {"signature_name": "single_string", "instances": ["a", ["b"]]},
            400,
            "Expecting shape [] but got: [1]",
        ),
        (
            "POST",
            "doc_model:predict",
            {"signature_name": "single_string", "instances": [{"b64": "not base64!"}]},
            400,
            "Unable to base64 decode",
        ),
        (
            "POST",
            "doc_model:predict",
            {"signature_name": "nope", "instances": [1]},
            400,
            'Serving signature name: "nope" not found in signature def',
        ),
        (
            "POST",
            "nope:predict",
            {"instances": [1]},
            404,
            "Servable not found for request: Latest(nope)",
        ),
        (
            "POST",
            "doc_model/versions/9:predict",
            {"instances": [1]},
            404,
            "Servable not found for request: Specific(doc_model, 9)",
        ),
        (
            "POST",
            "versioned/labels/nope:predict",
            {"instances": [1]},
            400,
            "Unrecognized servable version label: nope",
        ),
        (
            "POST",
            "doc_model/versions/HELLO:predict",
            {"instances": [1]},
            400,
            "Malformed request: POST /v1/models/doc_model/versions/HELLO:predict",
        ),
        (
            "GET",
            "doc_model:predict",
            None,
            400,
            "Malformed request: GET /v1/models/doc_model:predict",
        ),
        (
            "POST",
            "doc_model/metadata",
            {},
            400,
            "Malformed request: POST /v1/models/doc_model/metadata",
        ),
        ("GET", "", None, 400, "Missing model name in request."),
        ("GET", "nope", None, 404, "Could not find any versions of model nope"),
        (
            "GET",
            "versioned/versions/3",
            None,
            404,
            "Could not find version 3 of model versioned",
        ),
        (
            "GET",
            "nope/metadata",
            None,
            404,
            "Servable not found for request: Latest(nope)",
        ),
    ],
)
def test_rest_errors(server, method, path, body, status, message):
    got_status, text, content_type = http(
        server, "/v1/models" + ("/" + path if path else ""), body, method
    )
    assert (got_status, content_type) == (status, "application/json")
    got = json.loads(text)
    assert list(got) == ["error"]
    assert message in got["error"]


def _structure(tensor_info):
    """Key structure of a metadata TensorInfo in TF Serving's JSON."""
    shape = tensor_info["tensor_shape"]
    return (
        sorted(tensor_info),
        sorted(shape),
        [sorted(d) for d in shape["dim"]],
        [type(d["size"]) for d in shape["dim"]],
    )


def test_metadata_rest(server):
    status, body = rest(server, "/v1/models/doc_model/metadata")
    assert status == 200
    assert body["model_spec"] == {
        "name": "doc_model",
        "signature_name": "",
        "version": "1",
    }
    signatures = body["metadata"]["signature_def"]["signature_def"]
    assert set(signatures) == {
        "serving_default",
        "single_string",
        "pairs",
        "classify_objects",
        "checked",
        "numbers",
        "__saved_model_init_op",  # listed by the real server too
    }

    def dtypes_and_dims(infos):
        return {
            key: (info["dtype"], [d["size"] for d in info["tensor_shape"]["dim"]])
            for key, info in infos.items()
        }

    default = signatures["serving_default"]
    assert default["method_name"] == "tensorflow/serving/predict"
    assert dtypes_and_dims(default["inputs"]) == {
        "tag": ("DT_STRING", ["-1"]),
        "signal": ("DT_FLOAT", ["-1", "5"]),
        "sensor": ("DT_FLOAT", ["-1", "2", "2"]),
    }
    assert dtypes_and_dims(default["outputs"]) == {
        "signal_sum": ("DT_FLOAT", ["-1"]),
        "sensor_trace": ("DT_FLOAT", ["-1"]),
        "tag_upper": ("DT_STRING", ["-1"]),
    }
    assert dtypes_and_dims(signatures["checked"]["inputs"]) == {
        "count": ("DT_INT64", ["-1"]),
        "weight": ("DT_FLOAT", ["-1"]),
    }
    assert dtypes_and_dims(signatures["numbers"]["outputs"]) == {
        "half": ("DT_DOUBLE", ["-1"]),
        "doubled": ("DT_FLOAT", ["-1"]),
        "is_positive": ("DT_BOOL", ["-1"]),
    }
    assert default["inputs"]["tag"]["name"] == "serving_default_tag:0"

    # The same JSON form as TF Serving's own expected metadata answer.
    reference = fixture("metadata_response_half_plus_two_2_versions.json")
    ref_default = reference["metadata"]["signature_def"]["signature_def"][
        "serving_default"
    ]
    assert sorted(body) == sorted(reference)
    assert sorted(body["metadata"]) == sorted(reference["metadata"])
    assert sorted(body["model_spec"]) == sorted(reference["model_spec"])
    assert sorted(default) == sorted(
        ref_default
    )  # inputs, outputs, method_name, defaults
    assert default["defaults"] == ref_default["defaults"] == {}
    ref_structure = _structure(ref_default["inputs"]["x"])
    for info in [*default["inputs"].values(), *default["outputs"].values()]:
        got = _structure(info)
        assert got[:2] == ref_structure[:2]
        assert all(keys == ["name", "size"] for keys in got[2])
        assert all(t is str for t in got[3])
        assert info["tensor_shape"]["unknown_rank"] is False


def test_versions_and_labels_rest(server):
    status, body = rest(server, "/v1/models/versioned")
    assert status == 200
    assert [(s["version"], s["state"]) for s in body["model_version_status"]] == [
        ("2", "AVAILABLE"),
        ("1", "AVAILABLE"),
    ]
    status, body = rest(server, "/v1/models/versioned/versions/1")
    assert [s["version"] for s in body["model_version_status"]] == ["1"]

    x = {"instances": [1.5]}
    cases = {
        "versioned": [3.0],  # latest of the specific policy's {1, 2}
        "versioned/versions/1": [1.5],
        "versioned/versions/2": [3.0],
        "versioned/labels/stable": [1.5],
        "versioned/labels/canary": [3.0],
    }
    for path, expected in cases.items():
        assert rest(server, f"/v1/models/{path}:predict", x) == (
            200,
            {"predictions": expected},
        ), path
    # Version 3 is on disk but outside the specific policy.
    assert rest(server, "/v1/models/versioned/versions/3:predict", x)[0] == 404

    for path, version in [
        ("versioned", "2"),
        ("versioned/versions/1", "1"),
        ("versioned/labels/canary", "2"),
        ("versioned/LABELS/stable/METADATA", "1"),  # TF Serving's (?i) regex
    ]:
        if not path.endswith("METADATA"):
            path += "/metadata"
        status, body = rest(server, f"/v1/models/{path}")
        assert status == 200
        assert body["model_spec"]["version"] == version


def test_single_model_serves_the_latest_version(single_server):
    status, body = rest(single_server, "/v1/models/versioned")
    assert status == 200
    assert [s["version"] for s in body["model_version_status"]] == ["3"]
    assert rest(
        single_server, "/v1/models/versioned:predict", {"instances": [1.5]}
    ) == (
        200,
        {"predictions": [4.5]},
    )
    assert (
        rest(
            single_server,
            "/v1/models/versioned/versions/2:predict",
            {"instances": [1.0]},
        )[0]
        == 404
    )


# --------------------------------------------------------------------------
# gRPC
# --------------------------------------------------------------------------


def test_grpc_predict(stub):
    request = predict_request(
        "doc_model",
        {
            "tag": tf.make_tensor_proto([b"foo", b"bar"]),
            "signal": tf.make_tensor_proto(
                np.array([[1, 2, 3, 4, 5], [3, 4, 1, 2, 5]], np.float32)
            ),
            "sensor": tf.make_tensor_proto(
                np.array([[[1, 2], [3, 4]], [[4, 5], [6, 8]]], np.float32)
            ),
        },
    )
    response = stub.Predict(request, timeout=30)
    assert response.model_spec.name == "doc_model"
    assert response.model_spec.version.value == 1
    assert response.model_spec.signature_name == "serving_default"
    assert sorted(response.outputs) == ["sensor_trace", "signal_sum", "tag_upper"]
    # Typed value fields, as TF Serving's AsProtoField writes them.
    signal_sum = response.outputs["signal_sum"]
    assert signal_sum.dtype == tf.float32.as_datatype_enum
    assert list(signal_sum.float_val) == [15.0, 15.0]
    assert signal_sum.tensor_content == b""
    assert [d.size for d in signal_sum.tensor_shape.dim] == [2]
    np.testing.assert_array_equal(
        tf.make_ndarray(response.outputs["sensor_trace"]), [5.0, 12.0]
    )
    assert list(response.outputs["tag_upper"].string_val) == [b"FOO", b"BAR"]

    request.output_filter.append("tag_upper")
    response = stub.Predict(request, timeout=30)
    assert list(response.outputs) == ["tag_upper"]


def test_grpc_versions_labels_and_signature_names(stub):
    x = {"x": tf.make_tensor_proto(np.array([1.5], np.float32))}
    for kwargs, version, y in [
        ({}, 2, 3.0),
        ({"version": 1}, 1, 1.5),
        ({"label": "stable"}, 1, 1.5),
        ({"label": "canary"}, 2, 3.0),
    ]:
        response = stub.Predict(predict_request("versioned", x, **kwargs), timeout=30)
        assert response.model_spec.version.value == version
        assert list(response.outputs["y"].float_val) == [y]

    pairs = {"x": tf.make_tensor_proto(np.array([[[1, 2]], [[3, 4]]], np.float32))}
    response = stub.Predict(
        predict_request("doc_model", pairs, signature_name="pairs"), timeout=30
    )
    assert response.model_spec.signature_name == "pairs"
    assert list(response.outputs["sum"].float_val) == [3.0, 7.0]


def test_grpc_int32_for_an_int64_input_is_rejected(stub):
    weight = tf.make_tensor_proto(np.array([2.0], np.float32))
    # tf.make_tensor_proto([3]) makes an int32 tensor: not coerced.
    count = tf.make_tensor_proto([3])
    assert count.dtype == tf.int32.as_datatype_enum
    code, details = grpc_error(
        stub.Predict,
        predict_request(
            "doc_model", {"count": count, "weight": weight}, signature_name="checked"
        ),
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert re.search(
        r"input #0\(zero-based\) was expected to be a int64 tensor but is a int32 "
        r"tensor",
        details,
    ), details

    count = tf.make_tensor_proto([3], dtype=tf.int64)
    response = stub.Predict(
        predict_request(
            "doc_model", {"count": count, "weight": weight}, signature_name="checked"
        ),
        timeout=30,
    )
    assert list(response.outputs["score"].float_val) == [6.0]


def test_grpc_errors(stub):
    weight = tf.make_tensor_proto(np.array([2.0], np.float32))
    count = tf.make_tensor_proto(np.array([-1], np.int64))
    cases = [
        (
            predict_request(
                "doc_model",
                {"count": count, "weight": weight},
                signature_name="checked",
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "count must be non-negative",
        ),
        (
            predict_request("doc_model", {"count": count}, signature_name="checked"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "input size does not match signature: 1!=2 len({count}) != "
            "len({count,weight}). Sent extra: {}. Missing but required: {weight}.",
        ),
        (
            predict_request(
                "doc_model", {"count": count, "nope": weight}, signature_name="checked"
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "input tensor alias not found in signature: nope. Inputs expected to be "
            "in the set {count,weight}.",
        ),
        (
            predict_request("doc_model", {"x": weight}, signature_name="nope"),
            grpc.StatusCode.FAILED_PRECONDITION,
            'Serving signature key "nope" not found.',
        ),
        (
            predict_request("nope", {"x": weight}),
            grpc.StatusCode.NOT_FOUND,
            "Servable not found for request: Latest(nope)",
        ),
        (
            predict_request("versioned", {"x": weight}, version=3),
            grpc.StatusCode.NOT_FOUND,
            "Servable not found for request: Specific(versioned, 3)",
        ),
        (
            predict_request("versioned", {"x": weight}, label="nope"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "Unrecognized servable version label: nope",
        ),
    ]
    for request, code, message in cases:
        got_code, details = grpc_error(stub.Predict, request)
        assert got_code == code, details
        assert message in details


def test_grpc_get_model_metadata(stub, server):
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "versioned"
    request.model_spec.version_label = "stable"
    code, details = grpc_error(stub.GetModelMetadata, request)
    assert (code, details) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "GetModelMetadataRequest must specify at least one metadata_field",
    )
    request.metadata_field.append("signature_def")
    response = stub.GetModelMetadata(request, timeout=30)
    assert response.model_spec.name == "versioned"
    assert response.model_spec.version.value == 1
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signature_map)
    default = signature_map.signature_def["serving_default"]
    assert default.inputs["x"].dtype == tf.float32.as_datatype_enum
    assert [d.size for d in default.inputs["x"].tensor_shape.dim] == [-1]

    request.metadata_field.append("foo")
    code, details = grpc_error(stub.GetModelMetadata, request)
    assert (code, details) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "Metadata field foo is not supported",
    )

    channel = grpc.insecure_channel(
        server.grpc_target, options=[("grpc.enable_http_proxy", 0)]
    )
    try:
        status_request = get_model_status_pb2.GetModelStatusRequest()
        status_request.model_spec.name = "versioned"
        status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
            status_request, timeout=30
        )
    finally:
        channel.close()
    assert [(s.version, s.state) for s in status.model_version_status] == [
        (2, get_model_status_pb2.ModelVersionStatus.AVAILABLE),
        (1, get_model_status_pb2.ModelVersionStatus.AVAILABLE),
    ]


# --------------------------------------------------------------------------
# The process
# --------------------------------------------------------------------------


def test_the_script_imports_neither_keras_nor_keras_mtl(server):
    tree = ast.parse(STANDIN_SCRIPT.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    third_party = {"grpc", "numpy", "tensorflow", "tensorflow_serving", "google"}
    assert imported - third_party <= set(sys.stdlib_module_names)
    # ... nor does anything it imports, after serving requests.
    assert (
        rest(
            server,
            "/v1/models/saved_model_half_plus_three:predict",
            {"instances": [1.0]},
        )[0]
        == 200
    )
    report = server.report()
    assert report["pid"] == server.pid
    assert report["requests"] > 0
    assert report["keras_modules"] == []
    assert report["keras_mtl_modules"] == []


def _listening_addresses(port: int) -> set:
    """Local addresses of the sockets listening on ``port`` (Linux /proc)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = pathlib.Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            address, port_hex = fields[1].split(":")
            if fields[3] == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


def test_listens_on_loopback_only(server):
    if not pathlib.Path("/proc/net/tcp").exists():
        pytest.skip("needs Linux /proc/net/tcp")
    for port in (server.rest_port, server.grpc_port):
        # 127.0.0.1, as an IPv4 socket or IPv4-mapped on an IPv6 one (gRPC).
        assert _listening_addresses(port) <= {
            "0100007F",
            "0000000000000000FFFF00000100007F",
        }
        assert _listening_addresses(port)


def test_exits_by_itself_after_max_seconds(servers):
    timed = servers["timed"].wait_ready()
    assert timed.process.wait(timeout=30) == 0
    assert "--max_seconds=1.0 reached, exiting" in timed.log()
    assert json.loads(timed.report_file.read_text())["keras_modules"] == []


def test_sigterm_stops_it_cleanly(single_server):
    """Stops the single-model stand-in: keep this test after its other users."""
    assert single_server.stop(timeout=20) == 0
    assert "signalled, exiting" in single_server.log()
    report = json.loads(single_server.report_file.read_text())  # written at exit
    assert report["pid"] == single_server.pid
    assert report["requests"] > 0
    assert report["keras_modules"] == report["keras_mtl_modules"] == []
