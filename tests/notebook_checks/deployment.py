# Checks of notebooks/deployment.ipynb, run in its kernel after its last cell
# (small mode): every signature answers like the Keras model over both
# transports, the warm-up file, the configs and the docker command agree.
import json
import pathlib
import shlex

import numpy as np
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.apis import prediction_log_pb2
from tensorflow_serving.config import model_server_config_pb2

# Every signature the project offers, each exported.
assert set(SIGNATURES) == {
    "serving_default",
    "serving_examples",
    "ranking_score",
    "score_ctr",
}, SIGNATURES
assert set(signature_table.index) == set(SIGNATURES)
assert set(contract["signatures"]) == set(SIGNATURES)
assert contract["inputs"]["user_history"]["shape"] == [HISTORY_LEN]

# Served outputs equal the Keras model's, for every signature and transport;
# the expectation is recomputed here from the model and the request rows.
expected = {
    k: np.asarray(v).reshape(-1)
    for k, v in model.predict(keras_rows, verbose=0).items()
}
expected["ranking_score"] = expected["ctr"] + 10.0 * expected["ctcvr"]
want = {
    "serving_default": {"ctr", "cvr", "ctcvr", "ranking_score"},
    "serving_examples": {"ctr", "cvr", "ctcvr", "ranking_score"},
    "ranking_score": {"ranking_score"},
    "score_ctr": {"ctr"},
}
assert {name for name, _ in served} == set(want)
for (name, transport), outputs in served.items():
    assert set(outputs) == want[name], (name, transport, sorted(outputs))
    for output, values in outputs.items():
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        assert values.shape == (8,), (name, transport, output, values.shape)
        np.testing.assert_allclose(
            values, expected[output], atol=1e-5, err_msg=f"{name} {transport} {output}"
        )
for name in want:
    assert {(name, "REST"), (name, "gRPC")} <= set(served), name
# The requests really were shorter than max_len (the graph padded them).
assert request["user_history"].shape[1] < HISTORY_LEN
assert keras_rows["user_history"].shape[1] == HISTORY_LEN
assert float(comparison["max |served - keras|"].max()) < 1e-5

# The REST body and the PredictRequest shown are what the clients send.
shown = json.loads(rest_json)
assert shown["signature_name"] == "serving_default"
assert set(shown["inputs"]) == set(FEATURES)
assert shown["inputs"]["user_history"][0][:1] == [example_request["user_history"][0][0]]
assert grpc_request.model_spec.name == MODEL_NAME
assert grpc_request.inputs["item_id"].dtype == tf.int64.as_datatype_enum
assert grpc_request.inputs["user_age"].dtype == tf.string.as_datatype_enum
np.testing.assert_array_equal(
    tf.make_ndarray(grpc_request.inputs["item_id"]), example_request["item_id"]
)

# Bad requests: refused by the client, and by the graph naming the input.
assert "item_id" in client_error and "3.5" in client_error, client_error
assert "item_price" in graph_error, graph_error

# The warm-up file parses into PredictionLog records: one per signature for
# the one warm-up request, each a predict_log for this model.
warmup_path = version_dir / "assets.extra" / "tf_serving_warmup_requests"
logs = [
    prediction_log_pb2.PredictionLog.FromString(record.numpy())
    for record in tf.data.TFRecordDataset(str(warmup_path))
]
assert len(logs) == len(SIGNATURES) == len(warmup_records)
assert all(log.WhichOneof("log_type") == "predict_log" for log in logs)
assert {log.predict_log.request.model_spec.name for log in logs} == {BASE_DIR.name}
assert sorted(
    log.predict_log.request.model_spec.signature_name for log in logs
) == sorted(SIGNATURES)
for log in logs:
    inputs = log.predict_log.request.inputs
    if log.predict_log.request.model_spec.signature_name == "serving_examples":
        assert tf.make_ndarray(inputs["examples"]).shape == (8,)
    else:
        np.testing.assert_array_equal(
            tf.make_ndarray(inputs["item_id"]), warmup_request["item_id"]
        )


# models.config names the export directory as the container sees it (the
# docker mount maps MODEL_ROOT there); local.config names it on this machine.
def parse_config(path):
    return text_format.Parse(
        pathlib.Path(path).read_text(), model_server_config_pb2.ModelServerConfig()
    )


(docker_model,) = parse_config(models_config).model_config_list.config
(local_model,) = parse_config(local_config).model_config_list.config
assert docker_model.name == local_model.name == MODEL_NAME
assert docker_model.base_path == "/models/funnel", docker_model.base_path
assert pathlib.Path(local_model.base_path) == BASE_DIR == version_dir.parent
assert version_dir.name == "1" and (version_dir / "saved_model.pb").is_file()
batching = text_format.Parse(
    batching_config.read_text(),
    km.serving.config.batching_parameters_class()(),
)
assert batching.max_batch_size.value == 1024
assert batching.batch_timeout_micros.value == 1000

# The docker command mounts MODEL_ROOT at the config's root and names the
# files written above; the ports are TF Serving's.
command = shlex.split(shlex.join(DOCKER_RUN))
assert command[:2] == ["docker", "run"] and "tensorflow/serving" in command
assert "8500:8500" in command and "8501:8501" in command
host, container = command[command.index("-v") + 1].split(":")
assert pathlib.Path(host) == MODEL_ROOT and container == "/models"
assert docker_model.base_path == f"{container}/{BASE_DIR.relative_to(MODEL_ROOT)}"
flags = dict(
    arg.split("=", 1) for arg in command if arg.startswith("--") and "=" in arg
)
assert flags["--model_config_file"] == f"{container}/{models_config.name}"
assert flags["--batching_parameters_file"] == f"{container}/{batching_config.name}"
assert (MODEL_ROOT / models_config.name).is_file()
assert (MODEL_ROOT / batching_config.name).is_file()
assert f"--model_config_file={local_config}" in LOCAL_RUN

# The latency plot's data: every caller, every batch size, positive times.
assert set(latency_ms) == {(label, n) for label in callers for n in LATENCY_BATCH_SIZES}
assert all(ms > 0 for ms in latency_ms.values())

# A server, if one was started, has been stopped by the last cell; without one
# (CI's first run), none ran.
assert server is None
if "stopped" in globals():
    assert stopped.poll() is not None
