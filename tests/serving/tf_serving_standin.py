"""A loopback stand-in for ``tensorflow_model_server``, for tests only.

The real TF Serving binary (and Docker) cannot be installed where our tests
run, so this script serves exported SavedModels on 127.0.0.1 following TF
Serving's documented contract, closely enough to test clients end to end:

* REST (https://www.tensorflow.org/tfx/serving/api_rest):
  ``POST /v1/models/<name>[/versions/<v>|/labels/<l>]:predict`` with the row
  (``instances``) or columnar (``inputs``) body, ``{"b64": ...}`` binary
  values, JSON numbers converted to the signature's dtypes, responses
  ``{"predictions": ...}`` / ``{"outputs": ...}`` (a single output is not
  wrapped in an object), errors as ``{"error": "<message>"}`` with the HTTP
  status TF Serving gives the error code (INVALID_ARGUMENT -> 400,
  NOT_FOUND -> 404, ...); ``GET /v1/models/<name>[/versions/<v>|/labels/<l>]``
  (model status) and ``.../metadata`` (the signature_def map, in the JSON form
  TF Serving prints).
* gRPC: ``tensorflow.serving.PredictionService`` ``Predict`` and
  ``GetModelMetadata`` (and ``ModelService.GetModelStatus``), with the
  request tensors fed as sent (no dtype coercion: a tensor whose dtype differs
  from the signature's fails with INVALID_ARGUMENT) and output tensors written
  in the typed ``*_val`` fields, as TF Serving does.

The rules (and error messages) follow TF Serving's source where the docs are
silent: ``model_servers/http_rest_api_handler.cc``, ``http_rest_api_util.cc``,
``http_server.cc``, ``util/json_tensor.cc``,
``servables/tensorflow/predict_util.cc``, ``get_model_metadata_impl.cc`` and
``model_servers/get_model_status_impl.cc``.

Usage::

    python tests/serving/tf_serving_standin.py --model_base_path=DIR \
        --model_name=NAME [--model_config_file=FILE] --rest_api_port=0 \
        --port=0 --port_file=FILE [--report_file=FILE] --max_seconds=120

Port 0 picks a free port (the real server would disable REST on
``--rest_api_port=0``); the chosen ports are written as JSON to
``--port_file`` once both servers listen. The process exits by itself after
``--max_seconds`` of serving and on SIGTERM; on SIGUSR1 and at exit it writes
``--report_file`` (the keras / keras_mtl modules it has imported, which must
be none: it makes them unimportable before importing TensorFlow, and the
number of requests served). Unknown TF Serving flags are
accepted and ignored (logged). This file must not import keras or keras_mtl.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import logging
import math
import os
import re
import signal
import sys
import threading
import time
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
#: A deployer's server has no Keras (TF Serving runs the graph in C++): keras,
#: tf_keras and keras_mtl are made unimportable before TensorFlow is imported
#: (`import tensorflow` would otherwise import keras._tf_keras, as
#: tensorflow/__init__.py looks the package up), so a SavedModel that needs
#: Python Keras code to load or run fails here as it would there.
BLOCKED_MODULES = ("keras", "tf_keras", "keras_mtl")
for _name in BLOCKED_MODULES:
    sys.modules.setdefault(_name, None)

import grpc  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from google.protobuf import json_format, text_format  # noqa: E402
from tensorflow.core.framework import tensor_pb2  # noqa: E402
from tensorflow.core.protobuf import saved_model_pb2  # noqa: E402
from tensorflow_serving.apis import (  # noqa: E402
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from tensorflow_serving.config import model_server_config_pb2  # noqa: E402

LOG = logging.getLogger("tf_serving_standin")

DEFAULT_SIGNATURE = "serving_default"
PREDICT_METHODS = (
    "tensorflow/serving/predict",
    "tensorflow/serving/classify",
    "tensorflow/serving/regress",
)
SIGNATURE_DEF_FIELD = "signature_def"

# http_rest_api_util.cc (RE2 "(?i)" patterns, matched in full).
PREDICTION_API_RE = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?"
    r":(classify|regress|predict)",
    re.IGNORECASE,
)
MODEL_STATUS_API_RE = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?"
    r"(?:/(metadata))?",
    re.IGNORECASE,
)
REST_PATH_RE = re.compile(r"/v1/.*", re.IGNORECASE)

# http_server.cc ToHTTPStatusCode.
HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}
CODE_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class ServingError(Exception):
    """An error with the status code TF Serving would return."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def invalid(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def status_string(error: ServingError) -> str:
    """absl::Status::ToString(): ``INVALID_ARGUMENT: message``."""
    return f"{error.code.name}: {error.message}"


def dtype_string(dtype: tf.DType) -> str:
    """tensorflow::DataTypeString (``float``, not ``float32``)."""
    return {tf.float32: "float", tf.float64: "double", tf.float16: "half"}.get(
        dtype, dtype.name
    )


# --------------------------------------------------------------------------
# Models and versions
# --------------------------------------------------------------------------


def read_signature_defs(path: str) -> dict:
    """The SignatureDef protos of the ``serve`` MetaGraph of a SavedModel."""
    saved_model = saved_model_pb2.SavedModel()
    pb = os.path.join(path, "saved_model.pb")
    if os.path.exists(pb):
        with open(pb, "rb") as f:
            saved_model.ParseFromString(f.read())
    else:
        with open(os.path.join(path, "saved_model.pbtxt")) as f:
            text_format.Parse(f.read(), saved_model)
    for meta_graph in saved_model.meta_graphs:
        if "serve" in meta_graph.meta_info_def.tags:
            return dict(meta_graph.signature_def)
    raise RuntimeError(f"{path}: no MetaGraph tagged 'serve'")


class Servable:
    """One loaded version of one model."""

    def __init__(self, name: str, version: int, path: str):
        self.name = name
        self.version = version
        self.path = path
        self.signature_defs = read_signature_defs(path)
        self.loaded = tf.saved_model.load(path, tags=["serve"])

    def function(self, signature_name: str):
        return self.loaded.signatures[signature_name]


class Model:
    def __init__(self, name: str, base_path: str, servables: dict, labels: dict):
        self.name = name
        self.base_path = base_path
        self.servables = servables  # version -> Servable
        self.labels = labels  # label -> version


def version_dirs(base_path: str) -> dict:
    """Integer subdirectories of a model's base path: version -> path."""
    found = {}
    for entry in os.listdir(base_path):
        full = os.path.join(base_path, entry)
        if entry.isdigit() and os.path.isdir(full):
            found[int(entry)] = full
    return found


def versions_to_serve(config, available: list) -> list:
    policy = config.model_version_policy
    which = policy.WhichOneof("policy_choice")
    if which == "all":
        return sorted(available)
    if which == "specific":
        wanted = sorted(set(policy.specific.versions))
        missing = [v for v in wanted if v not in available]
        if missing:
            raise RuntimeError(
                f"model {config.name}: versions {missing} of the specific policy "
                f"are not under {config.base_path} (found {sorted(available)})"
            )
        return wanted
    count = policy.latest.num_versions if which == "latest" else 1
    return sorted(available)[-max(count, 1) :]


def load_model(config) -> Model:
    if config.model_platform not in ("", "tensorflow"):
        raise RuntimeError(
            f"model {config.name}: platform {config.model_platform!r} is not served"
        )
    base_path = os.path.abspath(config.base_path)
    available = version_dirs(base_path)
    if not available:
        raise RuntimeError(
            f"No versions of servable {config.name} found under base path {base_path}"
        )
    servables = {}
    for version in versions_to_serve(config, list(available)):
        started = time.monotonic()
        servables[version] = Servable(config.name, version, available[version])
        LOG.info(
            "Successfully loaded servable version {name: %s version: %d} in %.2fs",
            config.name,
            version,
            time.monotonic() - started,
        )
    labels = {}
    for label, version in config.version_labels.items():
        if version not in servables:
            raise RuntimeError(
                f"Request to assign label to version {version} of model "
                f"{config.name}, which is not currently available for inference"
            )
        labels[label] = version
    return Model(config.name, base_path, servables, labels)


def model_server_config(args) -> model_server_config_pb2.ModelServerConfig:
    config = model_server_config_pb2.ModelServerConfig()
    if args.model_config_file:
        with open(args.model_config_file) as f:
            text_format.Parse(f.read(), config)
        if config.WhichOneof("config") != "model_config_list":
            raise RuntimeError("--model_config_file must hold a model_config_list")
        return config
    if not args.model_base_path or not args.model_name:
        raise RuntimeError(
            "give --model_base_path and --model_name, or --model_config_file"
        )
    model = config.model_config_list.config.add()
    model.name = args.model_name
    model.base_path = args.model_base_path
    model.model_platform = "tensorflow"
    return config


# --------------------------------------------------------------------------
# The server core: servable lookup, Predict, metadata, status
# --------------------------------------------------------------------------


class Core:
    def __init__(self, models: dict):
        self.models = models
        self._lock = threading.Lock()
        self.requests = 0

    def count_request(self) -> None:
        with self._lock:
            self.requests += 1

    def servable(self, name: str, version=None, label=None) -> Servable:
        """ServerCore::GetServableHandle."""
        if label:
            model = self.models.get(name)
            if model is None or label not in model.labels:
                raise invalid(f"Unrecognized servable version label: {label}")
            version = model.labels[label]
        model = self.models.get(name)
        if version is None:
            if model is not None and model.servables:
                return model.servables[max(model.servables)]
            raise ServingError(
                grpc.StatusCode.NOT_FOUND,
                f"Servable not found for request: Latest({name})",
            )
        if model is None or version not in model.servables:
            raise ServingError(
                grpc.StatusCode.NOT_FOUND,
                f"Servable not found for request: Specific({name}, {version})",
            )
        return model.servables[version]

    @staticmethod
    def signature_def(servable: Servable, signature_name: str):
        """predict_util.cc RunPredict: the signature and its method name."""
        name = signature_name or DEFAULT_SIGNATURE
        signature = servable.signature_defs.get(name)
        if signature is None:
            raise ServingError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f'Serving signature key "{name}" not found.',
            )
        if signature.method_name not in PREDICT_METHODS:
            raise ServingError(
                grpc.StatusCode.INTERNAL,
                "Expected prediction signature method_name to be one of {"
                + ", ".join(PREDICT_METHODS)
                + "}. Was: "
                + signature.method_name,
            )
        return name, signature

    def predict(self, servable, signature_name, inputs: dict, output_filter=()):
        """Runs a signature on request tensors (fed as given, no dtype
        coercion) and returns ``(signature name, {alias: numpy array},
        {alias: tf.DType})``. Mirrors predict_util.cc PreProcessPrediction."""
        name, signature = self.signature_def(servable, signature_name)
        if len(inputs) != len(signature.inputs):
            sent, wanted = set(inputs), set(signature.inputs)
            raise invalid(
                f"input size does not match signature: {len(inputs)}!="
                f"{len(signature.inputs)} len({{{','.join(sorted(sent))}}}) != "
                f"len({{{','.join(sorted(wanted))}}}). Sent extra: "
                f"{{{','.join(sorted(sent - wanted))}}}. Missing but required: "
                f"{{{','.join(sorted(wanted - sent))}}}."
            )
        for alias in inputs:
            if alias not in signature.inputs:
                raise invalid(
                    f"input tensor alias not found in signature: {alias}. Inputs "
                    f"expected to be in the set {{{','.join(sorted(signature.inputs))}}}."
                )
        aliases = []
        for alias in output_filter:
            if alias not in signature.outputs:
                raise invalid(
                    f"output tensor alias not found in signature: {alias} Outputs "
                    f"expected to be in the set {{{','.join(sorted(signature.outputs))}}}."
                )
            if alias in aliases:
                raise invalid(f"duplicate output tensor alias: {alias}")
            aliases.append(alias)
        if not aliases:
            aliases = list(signature.outputs)
        try:
            function = servable.function(name)
        except KeyError:
            raise ServingError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f'Serving signature key "{name}" not found.',
            ) from None
        try:
            outputs = function(**inputs)
        except tf.errors.OpError as error:
            raise ServingError(
                CODE_BY_NUMBER.get(error.error_code, grpc.StatusCode.UNKNOWN),
                error.message,
            ) from None
        except (TypeError, ValueError) as error:
            raise invalid(str(error)) from None
        arrays, dtypes = {}, {}
        for alias in aliases:
            tensor = outputs[alias]
            arrays[alias] = tensor.numpy()
            dtypes[alias] = tensor.dtype
        return name, arrays, dtypes

    def metadata(self, servable: Servable):
        """GetModelMetadataResponse for the signature_def field."""
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, signature in servable.signature_defs.items():
            signature_map.signature_def[key].CopyFrom(signature)
        response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_map)
        return response, signature_map

    def status(self, name: str, version=None):
        """get_model_status_impl.cc: one version, or all (newest first)."""
        response = get_model_status_pb2.GetModelStatusResponse()
        model = self.models.get(name)
        if version is not None:
            if model is None or version not in model.servables:
                raise ServingError(
                    grpc.StatusCode.NOT_FOUND,
                    f"Could not find version {version} of model {name}",
                )
            versions = [version]
        else:
            if model is None or not model.servables:
                raise ServingError(
                    grpc.StatusCode.NOT_FOUND,
                    f"Could not find any versions of model {name}",
                )
            versions = sorted(model.servables, reverse=True)
        for v in versions:
            entry = response.model_version_status.add()
            entry.version = v
            entry.state = get_model_status_pb2.ModelVersionStatus.AVAILABLE
            entry.status.error_code = 0
        return response


# --------------------------------------------------------------------------
# JSON <-> tensors (util/json_tensor.cc)
# --------------------------------------------------------------------------


def json_type_string(value) -> str:
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


def json_value_string(value) -> str:
    return json.dumps(value, ensure_ascii=False)


def type_error(value, dtype: tf.DType) -> ServingError:
    return invalid(
        f"JSON Value: {json_value_string(value)} Type: {json_type_string(value)} "
        f"is not of expected type: {dtype_string(dtype)}"
    )


def is_base64_object(value) -> bool:
    return (
        isinstance(value, dict)
        and len(value) == 1
        and isinstance(value.get("b64"), str)
    )


def decode_base64_object(value) -> bytes:
    if not is_base64_object(value):
        raise invalid(
            f"JSON Value: {json_value_string(value)} not formatted correctly for "
            "base64 data"
        )
    try:
        return base64.b64decode(value["b64"], validate=True)
    except (binascii.Error, ValueError):
        raise invalid("Unable to base64 decode") from None


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value, low: int, high: int) -> bool:
    return (
        isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
    )


def convert_value(value, dtype: tf.DType):
    """AddValueToTensor: one JSON scalar converted to the signature dtype."""
    if dtype in (tf.float32, tf.float64):
        # The REST doc: whole and decimal numbers are both accepted for
        # floats (any precision loss is silent); NaN/Infinity tokens too.
        if not _is_number(value):
            raise type_error(value, dtype)
        return float(value)
    if dtype in (tf.int32, tf.int16, tf.int8, tf.uint8):
        if not _is_int(value, -(2**31), 2**31 - 1):
            raise type_error(value, dtype)
        return value
    if dtype == tf.int64:
        if not _is_int(value, INT64_MIN, INT64_MAX):
            raise type_error(value, dtype)
        return value
    if dtype == tf.uint32:
        if not _is_int(value, 0, 2**32 - 1):
            raise type_error(value, dtype)
        return value
    if dtype == tf.uint64:
        if not _is_int(value, 0, 2**64 - 1):
            raise type_error(value, dtype)
        return value
    if dtype == tf.bool:
        if not isinstance(value, bool):
            raise type_error(value, dtype)
        return value
    if dtype == tf.string:
        if not isinstance(value, str):
            raise type_error(value, dtype)
        return value.encode("utf-8")
    raise ServingError(
        grpc.StatusCode.UNIMPLEMENTED,
        f"Conversion of JSON Value: {json_value_string(value)} to type: "
        f"{dtype_string(dtype)}",
    )


def dense_shape(value) -> list:
    """GetDenseTensorShape: sizes along the first element of each level."""
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def fill_values(value, level: int, shape: list, dtype, out: list) -> None:
    """FillTensorProto: checks the nesting against ``shape``, appends values."""
    rank = len(shape)
    if not isinstance(value, list):
        if level != rank:
            raise invalid(
                f"JSON Value: {json_value_string(value)} found at incorrect level: "
                f"{level + 1} in the JSON DOM. Expected at level: {rank}"
            )
        if isinstance(value, dict):
            if dtype != tf.string:
                raise type_error(value, dtype)
            out.append(decode_base64_object(value))
        else:
            out.append(convert_value(value, dtype))
        return
    if level >= rank:
        raise invalid(
            f"Encountered list at unexpected level: {level} expected < {rank}"
        )
    if len(value) != shape[level]:
        raise invalid(
            f"Encountered list at unexpected size: {len(value)} at level: {level} "
            f"expected size: {shape[level]}"
        )
    for item in value:
        fill_values(item, level + 1, shape, dtype, out)


def make_tensor(values: list, shape: list, dtype: tf.DType) -> tf.Tensor:
    if dtype == tf.string:
        array = np.array(values, dtype=object).reshape(shape)
    elif dtype in (tf.int8, tf.int16, tf.int32, tf.uint8):
        # TensorProto int_val holds int32: narrower types wrap, as in TF.
        array = np.array(values, dtype=np.int64).astype(dtype.as_numpy_dtype)
        array = array.reshape(shape)
    else:
        array = np.array(values, dtype=dtype.as_numpy_dtype).reshape(shape)
    return tf.constant(array, dtype=dtype)


def tensor_from_json(value, dtype: tf.DType) -> tf.Tensor:
    shape = dense_shape(value)
    values = []
    fill_values(value, 0, shape, dtype, values)
    return make_tensor(values, shape, dtype)


def inputs_from_instances(instances: list, input_dtypes: dict) -> dict:
    """FillTensorMapFromInstancesList (row format)."""

    def is_element_object(value) -> bool:
        return isinstance(value, dict) and not is_base64_object(value)

    if not isinstance(instances[0], dict) and len(input_dtypes) > 1:
        raise invalid(
            "instances is a plain list, but expecting list of objects as multiple "
            "input tensors required as per tensorinfo_map"
        )
    objects = is_element_object(instances[0])
    input_names = set(input_dtypes)
    values = {}  # name -> flat list over all instances
    shapes = {}  # name -> shape of one instance
    sizes = {}

    def add_item(item, name):
        if name not in input_dtypes:
            raise invalid(f"JSON object: does not have named input: {name}")
        shape = dense_shape(item)
        item_values = []
        fill_values(item, 0, shape, input_dtypes[name], item_values)
        if name not in sizes:
            sizes[name] = len(item_values)
            shapes[name] = shape
        elif sizes[name] != len(item_values):
            raise invalid(
                f"Expecting tensor size: {sizes[name]} but got: {len(item_values)}"
            )
        elif shapes[name] != shape:
            raise invalid(
                f"Expecting shape [{','.join(map(str, shapes[name]))}] but got: "
                f"[{','.join(map(str, shape))}]"
            )
        values.setdefault(name, []).extend(item_values)

    for count, element in enumerate(instances):
        if objects:
            if not is_element_object(element):
                raise invalid(
                    f"Expecting object but got list at item {count} of input list"
                )
            for name, item in element.items():
                try:
                    add_item(item, name)
                except ServingError as error:
                    raise invalid(
                        f"Failed to process element: {count} key: {name} of "
                        f"'instances' list. Error: {status_string(error)}"
                    ) from None
            if set(element) != input_names:
                raise invalid(
                    f"Failed to process element: {count} of 'instances' list. JSON "
                    f"object: {json_value_string(element)} must only have keys: "
                    f"{','.join(sorted(input_names))}"
                )
        else:
            if is_element_object(element):
                raise invalid(
                    f"Expecting value/list but got object at item {count} of input list"
                )
            name = sorted(input_dtypes)[0]
            try:
                add_item(element, name)
            except ServingError as error:
                raise invalid(
                    f"Failed to process element: {count} of 'instances' list. "
                    f"Error: {status_string(error)}"
                ) from None
    return {
        name: make_tensor(
            values[name], [len(instances)] + shapes[name], input_dtypes[name]
        )
        for name in values
    }


def inputs_from_columns(inputs, input_dtypes: dict) -> dict:
    """FillTensorMapFromInputsMap (columnar format)."""
    if not isinstance(inputs, dict) or is_base64_object(inputs):
        if len(input_dtypes) > 1:
            raise invalid(
                "inputs is a plain value/list, but expecting an object as multiple "
                "input tensors required as per tensorinfo_map"
            )
        ((name, dtype),) = input_dtypes.items()
        return {name: tensor_from_json(inputs, dtype)}
    tensors = {}
    for name in sorted(input_dtypes):
        if name not in inputs:
            raise invalid(f"Missing named input: {name} in 'inputs' object.")
        tensors[name] = tensor_from_json(inputs[name], input_dtypes[name])
    return tensors


def format_decimal(value: float, single: bool) -> str:
    """WriteDecimal: six significant digits when they round-trip, else full
    precision; ``.0`` appended to whole numbers; NaN / Infinity tokens."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
    text = f"{value:g}"
    back = float(np.float32(text)) if single else float(text)
    if back != value:
        text = f"{value:.9g}" if single else f"{value:.17g}"
    if "." not in text and "e" not in text:
        text += ".0"
    return text


def json_scalar(value, dtype: tf.DType, as_bytes: bool) -> str:
    if dtype in (tf.float32, tf.float64):
        return format_decimal(float(value), dtype == tf.float32)
    if dtype == tf.bool:
        return "true" if value else "false"
    if dtype == tf.string:
        if as_bytes:
            return json.dumps({"b64": base64.b64encode(value).decode("ascii")})
        return json.dumps(value.decode("utf-8", errors="replace"), ensure_ascii=False)
    if dtype.is_integer:
        return str(int(value))
    raise invalid(f"Failed to write JSON value for tensor type: {dtype_string(dtype)}")


def json_tensor(array, dtype: tf.DType, as_bytes: bool) -> str:
    if not isinstance(array, np.ndarray) or array.ndim == 0:
        return json_scalar(array, dtype, as_bytes)
    return "[" + ", ".join(json_tensor(a, dtype, as_bytes) for a in array) + "]"


def is_bytes_output(name: str, dtype: tf.DType) -> bool:
    return dtype == tf.string and name.endswith("_bytes")


def row_format_json(arrays: dict, dtypes: dict) -> str:
    """MakeRowFormatJsonFromTensors."""
    batch = 0
    for name in sorted(arrays):
        array = arrays[name]
        if array.ndim == 0:
            raise invalid(f"Tensor name: {name} has no shape information ")
        if array.shape[0] < 1:
            raise invalid(
                f"Tensor name: {name} has invalid batch size: {array.shape[0]}"
            )
        if batch and batch != array.shape[0]:
            raise invalid(
                f"Tensor name: {name} has inconsistent batch size: "
                f"{array.shape[0]} expecting: {batch}"
            )
        batch = array.shape[0]
    names = sorted(arrays)
    rows = []
    for i in range(batch):
        if len(names) > 1:
            items = ", ".join(
                json.dumps(name)
                + ": "
                + json_tensor(
                    arrays[name][i], dtypes[name], is_bytes_output(name, dtypes[name])
                )
                for name in names
            )
            rows.append("{" + items + "}")
        else:
            (name,) = names
            rows.append(
                json_tensor(
                    arrays[name][i], dtypes[name], is_bytes_output(name, dtypes[name])
                )
            )
    return '{\n    "predictions": [\n        ' + ",\n        ".join(rows) + "\n    ]\n}"


def columnar_format_json(arrays: dict, dtypes: dict) -> str:
    """MakeColumnarFormatJsonFromTensors."""
    names = sorted(arrays)
    if len(names) > 1:
        body = (
            "{\n"
            + ",\n".join(
                f"        {json.dumps(name)}: "
                + json_tensor(
                    arrays[name], dtypes[name], is_bytes_output(name, dtypes[name])
                )
                for name in names
            )
            + "\n    }"
        )
    else:
        (name,) = names
        body = json_tensor(
            arrays[name], dtypes[name], is_bytes_output(name, dtypes[name])
        )
    return '{\n    "outputs": ' + body + "\n}"


# --------------------------------------------------------------------------
# REST
# --------------------------------------------------------------------------


def json_options() -> dict:
    return {
        "always_print_fields_with_no_presence": True,
        "preserving_proto_field_name": True,
    }


class RestApi:
    def __init__(self, core: Core):
        self.core = core

    def handle(self, method: str, path: str, body: bytes) -> tuple:
        """Returns (HTTP status, JSON text)."""
        try:
            return 200, self._dispatch(method, path, body)
        except ServingError as error:
            return HTTP_STATUS.get(error.code, 500), json.dumps(
                {"error": error.message}, ensure_ascii=False
            )

    def _dispatch(self, method: str, path: str, body: bytes) -> str:
        malformed = invalid(f"Malformed request: {method} {path}")
        if method == "POST":
            match = PREDICTION_API_RE.fullmatch(path)
            if not match:
                raise malformed
            name, version, label, verb = match.groups()
            version = self._version(version)
            name = unquote(name)
            label = unquote(label) if label else None
            if verb.lower() != "predict":
                raise ServingError(
                    grpc.StatusCode.UNIMPLEMENTED,
                    f"the TF Serving stand-in serves :predict only, not :{verb}",
                )
            return self.predict(name, version, label, body)
        if method == "GET":
            match = MODEL_STATUS_API_RE.fullmatch(path)
            if not match:
                raise malformed
            name, version, label, subresource = match.groups()
            version = self._version(version)
            if not name:
                raise invalid("Missing model name in request.")
            name = unquote(name)
            label = unquote(label) if label else None
            if subresource and subresource.lower() == "metadata":
                return self.metadata(name, version, label)
            return self.status(name, version)
        raise malformed

    @staticmethod
    def _version(text):
        if text is None:
            return None
        version = int(text)
        if version > INT64_MAX:
            raise invalid(f"Failed to convert version: {text} to numeric.")
        return version

    def predict(self, name, version, label, body: bytes) -> str:
        # FillPredictRequestFromJson
        if not body:
            raise invalid("JSON Parse error: The document is empty")
        try:
            doc = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise invalid(f"JSON Parse error: {error}") from None
        if not isinstance(doc, dict):
            raise invalid(f"JSON Value: {json_value_string(doc)} Is not object")
        signature_name = doc.get("signature_name", "")
        if not isinstance(signature_name, str):
            raise invalid(
                f"JSON Value: {json_value_string(doc)} not formatted correctly. "
                "'signature_name' key must be a string value."
            )
        servable = self.core.servable(name, version, label)
        # HttpRestApiHandler::GetInfoMap
        signame = signature_name or DEFAULT_SIGNATURE
        signature = servable.signature_defs.get(signame)
        if signature is None:
            raise invalid(
                f'Serving signature name: "{signame}" not found in signature def'
            )
        input_dtypes = {
            key: tf.dtypes.as_dtype(info.dtype)
            for key, info in signature.inputs.items()
        }
        if not input_dtypes:
            raise invalid(
                "Failed to get input map for signature: "
                + (signature_name or "DEFAULT")
            )
        if "instances" in doc:
            if "inputs" in doc:
                raise invalid(
                    f"JSON Value: {json_value_string(doc)} Not formatted correctly "
                    "expecting only one of 'inputs' or 'instances' keys to exist "
                )
            instances = doc["instances"]
            if not isinstance(instances, list):
                raise invalid(
                    f"JSON Value: {json_value_string(doc)} Excepting 'instances' to "
                    "be an list/array"
                )
            if not instances:
                raise invalid(
                    f"JSON Value: {json_value_string(doc)} No values in 'instances' "
                    "array"
                )
            tensors = inputs_from_instances(instances, input_dtypes)
            row = True
        elif "inputs" in doc:
            tensors = inputs_from_columns(doc["inputs"], input_dtypes)
            row = False
        else:
            raise invalid("Missing 'inputs' or 'instances' key")
        _, arrays, dtypes = self.core.predict(servable, signature_name, tensors)
        if not arrays:
            raise invalid("Cannot convert empty tensor map to JSON")
        return (
            row_format_json(arrays, dtypes)
            if row
            else columnar_format_json(arrays, dtypes)
        )

    def metadata(self, name, version, label) -> str:
        servable = self.core.servable(name, version, label)
        response, signature_map = self.core.metadata(servable)
        # http_rest_api_util.cc ToJsonString(GetModelMetadataResponse): the
        # Any is unpacked, fields keep their proto names, defaults printed.
        out = {
            "model_spec": json_format.MessageToDict(
                response.model_spec, **json_options()
            ),
            "metadata": {
                SIGNATURE_DEF_FIELD: json_format.MessageToDict(
                    signature_map, **json_options()
                )
            },
        }
        return json.dumps(out, indent=1)

    def status(self, name, version) -> str:
        # A label is ignored here, as in get_model_status_impl.cc (only an
        # explicit version narrows the answer).
        response = self.core.status(name, version)
        return json_format.MessageToJson(
            response, always_print_fields_with_no_presence=True, indent=1
        )


def make_http_handler(rest: RestApi):
    class Handler(BaseHTTPRequestHandler):
        server_version = "tf_serving_standin"

        def _serve(self, method: str) -> None:
            rest.core.count_request()
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length > 0 else b""
            path = self.path.split("?", 1)[0]
            if not REST_PATH_RE.fullmatch(path):
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status, text = rest.handle(method, path, body)
            data = text.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            LOG.info("%s %s -> %d", method, path, status)

        def do_GET(self):  # noqa: N802
            self._serve("GET")

        def do_POST(self):  # noqa: N802
            self._serve("POST")

        def do_PUT(self):  # noqa: N802
            self._serve("PUT")

        def do_DELETE(self):  # noqa: N802
            self._serve("DELETE")

        def log_message(self, format, *args):  # noqa: A002
            LOG.debug(format, *args)

    return Handler


# --------------------------------------------------------------------------
# gRPC
# --------------------------------------------------------------------------


def tensor_proto_field(array: np.ndarray, dtype: tf.DType) -> tensor_pb2.TensorProto:
    """Tensor::AsProtoField: values in the typed ``*_val`` fields."""
    proto = tensor_pb2.TensorProto(dtype=dtype.as_datatype_enum)
    proto.tensor_shape.CopyFrom(tf.TensorShape(array.shape).as_proto())
    flat = np.asarray(array).ravel()
    if dtype == tf.float32:
        proto.float_val.extend(flat.tolist())
    elif dtype == tf.float64:
        proto.double_val.extend(flat.tolist())
    elif dtype in (tf.int32, tf.int16, tf.int8, tf.uint8, tf.uint16):
        proto.int_val.extend(int(v) for v in flat)
    elif dtype == tf.int64:
        proto.int64_val.extend(int(v) for v in flat)
    elif dtype == tf.bool:
        proto.bool_val.extend(bool(v) for v in flat)
    elif dtype == tf.string:
        proto.string_val.extend(bytes(v) for v in flat)
    elif dtype == tf.uint32:
        proto.uint32_val.extend(int(v) for v in flat)
    elif dtype == tf.uint64:
        proto.uint64_val.extend(int(v) for v in flat)
    elif dtype in (tf.float16, tf.bfloat16):
        proto.half_val.extend(int(v) for v in flat.view(np.uint16))
    else:
        proto.CopyFrom(tf.make_tensor_proto(array, dtype=dtype))
    return proto


def tensor_from_proto(alias: str, proto) -> tf.Tensor:
    try:
        dtype = tf.dtypes.as_dtype(proto.dtype)
        return tf.constant(tf.make_ndarray(proto), dtype=dtype)
    except Exception:  # noqa: BLE001 - Tensor::FromProto failing
        raise invalid(f"tensor parsing error: {alias}") from None


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, core: Core):
        self.core = core

    def Predict(self, request, context):  # noqa: N802
        self.core.count_request()
        try:
            spec = request.model_spec
            servable = self.core.servable(
                spec.name,
                spec.version.value if spec.HasField("version") else None,
                spec.version_label or None,
            )
            # Validate the signature before parsing tensors, as RunPredict.
            self.core.signature_def(servable, spec.signature_name)
            inputs = {
                alias: tensor_from_proto(alias, proto)
                for alias, proto in request.inputs.items()
            }
            name, arrays, dtypes = self.core.predict(
                servable, spec.signature_name, inputs, list(request.output_filter)
            )
        except ServingError as error:
            LOG.info("Predict %s -> %s: %s", spec.name, error.code.name, error.message)
            context.abort(error.code, error.message)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = spec.name
        response.model_spec.version.value = servable.version
        response.model_spec.signature_name = name
        for alias, array in arrays.items():
            response.outputs[alias].CopyFrom(tensor_proto_field(array, dtypes[alias]))
        LOG.info("Predict %s version %d -> OK", spec.name, servable.version)
        return response

    def GetModelMetadata(self, request, context):  # noqa: N802
        self.core.count_request()
        try:
            if not request.HasField("model_spec"):
                raise invalid("Missing ModelSpec")
            if not request.metadata_field:
                raise invalid(
                    "GetModelMetadataRequest must specify at least one metadata_field"
                )
            for field in request.metadata_field:
                if field != SIGNATURE_DEF_FIELD:
                    raise invalid(f"Metadata field {field} is not supported")
            spec = request.model_spec
            servable = self.core.servable(
                spec.name,
                spec.version.value if spec.HasField("version") else None,
                spec.version_label or None,
            )
        except ServingError as error:
            context.abort(error.code, error.message)
        response, _ = self.core.metadata(servable)
        return response


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, core: Core):
        self.core = core

    def GetModelStatus(self, request, context):  # noqa: N802
        self.core.count_request()
        try:
            if not request.HasField("model_spec"):
                raise invalid("Missing ModelSpec")
            spec = request.model_spec
            return self.core.status(
                spec.name, spec.version.value if spec.HasField("version") else None
            )
        except ServingError as error:
            context.abort(error.code, error.message)


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_base_path", default="")
    parser.add_argument("--model_name", default="default")
    parser.add_argument("--model_config_file", default="")
    parser.add_argument("--rest_api_port", type=int, default=0)
    parser.add_argument("--port", type=int, default=0, help="gRPC port")
    parser.add_argument("--port_file", required=True)
    parser.add_argument("--report_file", default="")
    parser.add_argument("--max_seconds", type=float, default=120.0)
    args, unknown = parser.parse_known_args(argv)
    return args, unknown


def write_json_atomically(path: str, data: dict) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def report(core: Core) -> dict:
    pattern = re.compile(r"^(keras|keras_mtl|tf_keras)(\.|$)")
    imported = sorted(
        name
        for name, module in list(sys.modules.items())
        if pattern.match(name) and module is not None
    )
    return {
        "pid": os.getpid(),
        "requests": core.requests,
        "keras_modules": [m for m in imported if not m.startswith("keras_mtl")],
        "keras_mtl_modules": [m for m in imported if m.startswith("keras_mtl")],
    }


def main(argv=None) -> int:
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s tf_serving_standin %(levelname)s %(message)s",
    )
    args, unknown = parse_args(sys.argv[1:] if argv is None else argv)
    if unknown:
        LOG.warning("ignoring flags the stand-in does not implement: %s", unknown)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    config = model_server_config(args)
    models = {}
    for model_config in config.model_config_list.config:
        models[model_config.name] = load_model(model_config)
    core = Core(models)

    if args.report_file:
        signal.signal(
            signal.SIGUSR1,
            lambda *_: write_json_atomically(args.report_file, report(core)),
        )

    grpc_server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4),
        options=[
            ("grpc.max_receive_message_length", -1),
            ("grpc.max_send_message_length", -1),
        ],
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(core), grpc_server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(
        ModelService(core), grpc_server
    )
    grpc_port = grpc_server.add_insecure_port(f"127.0.0.1:{args.port}")
    grpc_server.start()

    http_server = ThreadingHTTPServer(
        ("127.0.0.1", args.rest_api_port), make_http_handler(RestApi(core))
    )
    http_server.daemon_threads = True
    http_thread = threading.Thread(
        target=http_server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
    )
    http_thread.start()
    rest_port = http_server.server_address[1]

    write_json_atomically(
        args.port_file,
        {"rest_api_port": rest_port, "port": grpc_port, "pid": os.getpid()},
    )
    LOG.info("Running gRPC ModelServer at 127.0.0.1:%d ...", grpc_port)
    LOG.info("Exporting HTTP/REST API at:127.0.0.1:%d ...", rest_port)

    if not stop.wait(timeout=args.max_seconds):
        LOG.info("--max_seconds=%s reached, exiting", args.max_seconds)
    else:
        LOG.info("signalled, exiting")
    http_server.shutdown()
    http_server.server_close()
    grpc_server.stop(grace=1).wait(timeout=5)
    if args.report_file:
        write_json_atomically(args.report_file, report(core))
    return 0


if __name__ == "__main__":
    sys.exit(main())
