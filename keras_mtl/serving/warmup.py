"""TF Serving warm-up requests: `assets.extra/tf_serving_warmup_requests`.

TF Serving's "SavedModel Warmup" guide: the TensorFlow runtime initialises
some components lazily, so the first requests after a model loads can be
orders of magnitude slower than the rest; sample requests shipped with the
SavedModel are run at load time instead ("warming up" the model; TF Serving
does so with `--enable_model_warmup`, on by default). The requirements it
lists: the file is `assets.extra/tf_serving_warmup_requests` in the version
directory, a TFRecord file whose records are `PredictionLog` protos
(`tensorflow_serving.apis.prediction_log_pb2`), at most 1000 of them, and
representative of the requests served.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Mapping, Sequence

import numpy as np

from keras_mtl.serving._files import write_atomically

#: Where TF Serving looks for warm-up requests, relative to a version directory.
WARMUP_FILE = pathlib.Path("assets.extra") / "tf_serving_warmup_requests"

#: TF Serving reads at most this many warm-up records.
MAX_WARMUP_REQUESTS = 1000


def write_warmup_requests(
    version_dir: str | os.PathLike,
    requests: Sequence[Mapping[str, np.ndarray]],
    *,
    signature_name: str | Sequence[str] = "serving_default",
    model_name: str | None = None,
) -> pathlib.Path:
    """Write `requests` as the warm-up file of the SavedModel in `version_dir`.

    Each request becomes a `PredictionLog` whose `predict_log.request` is a
    `PredictRequest` for `signature_name`, one `TensorProto` per input, built
    as the gRPC client builds its requests
    (`keras_mtl.serving.grpc_client.predict_request`): values are coerced to
    the dtype the signature declares (read from the SavedModel's
    `saved_model.pb`, the `SignatureDef` TF Serving itself checks requests
    against) by `keras_mtl.serving.client.coerce`: int ids (and whole floats)
    go as int64, numbers as float32, strings (`str` encoded as UTF-8, or
    `bytes`) as DT_STRING. A value that does not convert safely (3.5 for an
    int64 input, a string for a number), a rank (or fixed dimension) other than
    the signature's, a missing or unknown input, or inputs of different batch
    sizes is an error naming the request and the input ("warm-up request 3:
    Input 'item' ..."), raised before anything is written. The file is written
    to a temporary name and renamed into place.

    Args:
        version_dir: a SavedModel version directory, e.g. `saved_models/ctr/3`
            (or an export's staging directory before it is renamed).
        requests: 1 to 1000 dicts `{input name: array}`, each a batch (the
            leading dimension) of representative rows.
        signature_name: the signature the requests call, or a list of them:
            then every request is written once per signature, with the inputs
            that signature takes (its rows as tf.Examples for
            `serving_examples`), so each signature's graph is warm. At most
            1000 records in all. Defaults to "serving_default".
        model_name: the requests' `model_spec.name`, or None (the default) for
            the name of `version_dir`'s parent (the model's base path, whose
            name is usually the served model's name).

    Returns:
        The path of the written file.

    Example:
    >>> import shutil, tempfile
    >>> inputs = km.make_inputs([km.DenseFeature("x", dim=3)])
    >>> ctr = km.layers.TaskTower((), "binary", name="ctr")(inputs["x"])
    >>> base = tempfile.mkdtemp()
    >>> path = km.export_saved_model(keras.Model(inputs, {"ctr": ctr}), base)
    >>> write_warmup_requests(path, [{"x": [[0.5, 1.0, 2.0]]}]).name
    'tf_serving_warmup_requests'
    >>> [(name, x.dtype, x.shape) for name, request in read_warmup_requests(path)
    ...  for x in request.values()]
    [('serving_default', dtype('float32'), (1, 3))]
    >>> shutil.rmtree(base)
    """
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    from keras_mtl.serving.grpc_client import predict_request

    version_dir = pathlib.Path(version_dir)
    if isinstance(requests, Mapping):
        raise ValueError(
            "write_warmup_requests: requests must be a list of dicts of arrays, "
            "got one dict; pass [request]."
        )
    requests = list(requests)
    names = [signature_name] if isinstance(signature_name, str) else signature_name
    count = len(requests) * len(names)
    if not requests or count > MAX_WARMUP_REQUESTS:
        raise ValueError(
            f"write_warmup_requests: requests must hold 1 to {MAX_WARMUP_REQUESTS} "
            f"requests (TF Serving reads at most {MAX_WARMUP_REQUESTS} warm-up "
            f"records), got {len(requests)} for {len(names)} signature(s)."
        )
    if model_name is None:
        model_name = version_dir.resolve().parent.name
    records = []
    for name in names:
        specs = signature_inputs(version_dir, name)
        dtypes = {key: _dtype_name(dtype) for key, (dtype, _) in specs.items()}
        shapes = {key: shape for key, (_, shape) in specs.items()}
        for index, request in enumerate(requests):
            where = f"warm-up request {index}"
            if not isinstance(request, Mapping):
                raise ValueError(
                    f"{where} must be a dict {{input name: array}}, got "
                    f"{type(request).__name__}."
                )
            try:
                request = _for_signature(version_dir, request, name, specs, names)
                predict = predict_request(
                    request,
                    dtypes,
                    shapes=shapes,
                    model=model_name,
                    signature_name=name,
                )
            except ValueError as error:
                raise ValueError(f"{where}: {error}") from None
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=predict)
            )
            records.append(log.SerializeToString())

    def write(tmp: str) -> None:
        with tf.io.TFRecordWriter(tmp) as writer:
            for record in records:
                writer.write(record)

    return write_atomically(version_dir / WARMUP_FILE, write)


def read_warmup_requests(
    version_dir: str | os.PathLike,
) -> list[tuple[str, dict[str, np.ndarray]]]:
    """The warm-up requests of the SavedModel in `version_dir`, decoded.

    Args:
        version_dir: a SavedModel version directory with a warm-up file (see
            `write_warmup_requests`).

    Returns:
        One `(signature_name, {input name: np.ndarray})` per record, in file
        order; strings come back as object arrays of `bytes`.

    Example:
    >>> import pathlib, tempfile
    >>> read_warmup_requests(tempfile.gettempdir() + "/no_such_model/1")
    Traceback (most recent call last):
    ...
    FileNotFoundError: read_warmup_requests: no warm-up file .../no_such_model/1/assets.extra/tf_serving_warmup_requests.
    """
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    path = pathlib.Path(version_dir) / WARMUP_FILE
    if not path.is_file():
        raise FileNotFoundError(f"read_warmup_requests: no warm-up file {path}.")
    decoded = []
    for index, record in enumerate(tf.data.TFRecordDataset(str(path))):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        kind = log.WhichOneof("log_type")
        if kind != "predict_log":
            raise ValueError(
                f"read_warmup_requests: record {index} of {path} is a {kind}; only "
                "predict_log records are decoded."
            )
        request = log.predict_log.request
        decoded.append(
            (
                request.model_spec.signature_name,
                {name: tf.make_ndarray(t) for name, t in request.inputs.items()},
            )
        )
    return decoded


def signature_inputs(
    version_dir: str | os.PathLike, signature_name: str = "serving_default"
) -> dict[str, tuple]:
    """`{input name: (tf.DType, shape)}` of a signature of the SavedModel in
    `version_dir` (the `serve` meta graph), read from its `saved_model.pb`
    without loading the model; a dimension of None is any size and a shape of
    None any rank."""
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    path = pathlib.Path(version_dir) / "saved_model.pb"
    if not path.is_file():
        raise FileNotFoundError(f"{path.parent} holds no SavedModel ({path.name}).")
    saved = saved_model_pb2.SavedModel.FromString(path.read_bytes())
    graphs = [g for g in saved.meta_graphs if "serve" in g.meta_info_def.tags]
    signatures = graphs[0].signature_def if graphs else {}
    if signature_name not in signatures:
        raise ValueError(
            f"signature_name {signature_name!r} is not a signature of the "
            f"SavedModel in {path.parent}; it has {sorted(signatures)}."
        )
    specs = {}
    for name, info in signatures[signature_name].inputs.items():
        shape = info.tensor_shape
        dims = None
        if not shape.unknown_rank:
            dims = tuple(d.size if d.size >= 0 else None for d in shape.dim)
        specs[name] = (tf.as_dtype(info.dtype), dims)
    return dict(sorted(specs.items()))


def _for_signature(version_dir, request: Mapping, name: str, specs, names) -> dict:
    """`request` as signature `name` takes it: for `serving_examples`, its rows
    as serialized tf.Examples (values typed by `serving_default`'s dtypes, so a
    Python int for a float feature goes as a float); with several signatures,
    only the inputs `name` takes."""
    from keras_mtl.serving.client import coerce_inputs
    from keras_mtl.serving.signatures import (
        EXAMPLES_INPUT,
        SERVING_DEFAULT,
        SERVING_EXAMPLES,
        serialize_examples,
    )

    if name == SERVING_EXAMPLES and EXAMPLES_INPUT not in request:
        raw = signature_inputs(version_dir, SERVING_DEFAULT)
        dtypes = {
            k: _dtype_name(dtype) for k, (dtype, _) in raw.items() if k in request
        }
        rows = coerce_inputs({k: request[k] for k in dtypes}, dtypes)
        return {EXAMPLES_INPUT: np.array(serialize_examples(rows), dtype=object)}
    if len(names) == 1:
        return dict(request)
    return {key: value for key, value in request.items() if key in specs}


def _dtype_name(dtype) -> str:
    """ "DT_INT64" for `tf.int64`: the form of TF Serving's metadata."""
    from tensorflow.core.framework import types_pb2

    return types_pb2.DataType.Name(dtype.as_datatype_enum)
