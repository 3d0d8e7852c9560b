"""A client of the exported models on TF Serving's gRPC `PredictionService`.

Needs `tensorflow-serving-api` (the `serving` extra; it brings TensorFlow).
Values are coerced to the signature's dtypes and checked against its shapes
as in `keras_mtl.serving.client` (`coerce_inputs`; a Python int list becomes
int64, not the int32 `tf.make_tensor_proto([3])` would send, which TF Serving
refuses with an error naming no feature). `predict_request` also builds the
records of the warm-up file (`keras_mtl.serving.warmup`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import numpy as np

from keras_mtl.serving.client import ServingError, coerce_inputs


def predict_request(
    inputs: Mapping,
    dtypes: Mapping[str, str],
    *,
    model: str,
    signature_name: str = "serving_default",
    version: int | None = None,
    label: str | None = None,
    shapes: Mapping[str, tuple | None] | None = None,
    broadcast: Collection[str] = (),
):
    """A `PredictRequest` for `inputs`, each coerced to `dtypes[input]` (and
    checked against `shapes[input]`: `keras_mtl.serving.client.coerce_inputs`).

    Args:
        inputs: `{input name: values}`, the first axis the batch.
        dtypes: `{input name: "DT_INT64" | "DT_FLOAT" | "DT_STRING" ...}`
            (`GrpcClient.signature_dtypes`).
        model: str. The served model's name.
        signature_name: str. Defaults to "serving_default".
        version: int or None. Defaults to None (the server's choice).
        label: str or None. A version label. Defaults to None.
        shapes: `{input name: (dim, ...)}`, the signature's
            (`GrpcClient.signature_shapes`), or None to check no shapes or
            batch sizes. Defaults to None.
        broadcast: inputs that may have one row for the whole batch. Defaults
            to none.

    Raises:
        ValueError: from `coerce_inputs`, naming the input.
    """
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = int(version)
    elif label is not None:
        request.model_spec.version_label = label
    arrays = coerce_inputs(inputs, dtypes, shapes, broadcast=broadcast)
    for name, array in arrays.items():
        dtype = tf.dtypes.as_dtype(dtypes[name].removeprefix("DT_").lower())
        if dtype == tf.string:
            array = np.vectorize(
                lambda v: v.encode() if isinstance(v, str) else v, otypes=[object]
            )(array)
        request.inputs[name].CopyFrom(tf.make_tensor_proto(array, dtype=dtype))
    return request


def grpc_outputs(response) -> dict[str, np.ndarray]:
    """`{output: np.ndarray}` of a `PredictResponse`."""
    import tensorflow as tf

    return {name: tf.make_ndarray(t) for name, t in response.outputs.items()}


class GrpcClient:
    """A model on TF Serving's gRPC API.

    Args:
        target: str. "host:port" of the server's gRPC port (8500 by default).
        model: str. The model name.
        version: int or None. Defaults to None.
        label: str or None. Defaults to None.
        timeout: float. Seconds per call. Defaults to 30.

    Example (against a running server, so not run here):

        client = GrpcClient("localhost:8500", "mmoe")
        client.predict({"age": [41.0], "education": ["Bachelors degree(BA AB BS)"]})
    """

    def __init__(
        self,
        target: str,
        model: str,
        *,
        version: int | None = None,
        label: str | None = None,
        timeout: float = 30.0,
    ):
        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        if version is not None and label is not None:
            raise ValueError("GrpcClient: give version or label, not both.")
        self.model = model
        self.version = version
        self.label = label
        self.timeout = timeout
        self.channel = grpc.insecure_channel(target)
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self._signatures = None

    def _rpc(self, method, request):
        import grpc

        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as error:
            raise ServingError(error.details(), error.code()) from None

    def _signature(self, signature_name: str):
        """The `SignatureDef` of a signature (metadata fetched once)."""
        from tensorflow_serving.apis import get_model_metadata_pb2

        if self._signatures is None:
            request = get_model_metadata_pb2.GetModelMetadataRequest()
            request.model_spec.name = self.model
            if self.version is not None:
                request.model_spec.version.value = int(self.version)
            elif self.label is not None:
                request.model_spec.version_label = self.label
            request.metadata_field.append("signature_def")
            response = self._rpc(self.stub.GetModelMetadata, request)
            signatures = get_model_metadata_pb2.SignatureDefMap()
            response.metadata["signature_def"].Unpack(signatures)
            self._signatures = signatures.signature_def
        if signature_name not in self._signatures:
            raise ValueError(
                f"The model has no signature {signature_name!r}; it has "
                f"{sorted(k for k in self._signatures if not k.startswith('__'))}."
            )
        return self._signatures[signature_name]

    def signature_dtypes(self, signature_name: str) -> dict[str, str]:
        """`{input: "DT_INT64" ...}` of a signature (metadata fetched once)."""
        from tensorflow.core.framework import types_pb2

        inputs = self._signature(signature_name).inputs
        return {name: types_pb2.DataType.Name(t.dtype) for name, t in inputs.items()}

    def signature_shapes(self, signature_name: str) -> dict[str, tuple | None]:
        """`{input: (dim, ...)}` of a signature, -1 for a dimension of any
        size, None for a shape of any rank (metadata fetched once)."""
        inputs = self._signature(signature_name).inputs
        return {
            name: None
            if t.tensor_shape.unknown_rank
            else tuple(d.size for d in t.tensor_shape.dim)
            for name, t in inputs.items()
        }

    def predict(
        self,
        inputs: Mapping,
        signature_name: str = "serving_default",
        *,
        broadcast: Collection[str] = (),
    ) -> dict[str, np.ndarray]:
        """`{output: np.ndarray}` for a batch of raw inputs (checked against
        the signature's dtypes and shapes; `broadcast`: inputs that may have
        one row for the whole batch)."""
        request = predict_request(
            inputs,
            self.signature_dtypes(signature_name),
            model=self.model,
            signature_name=signature_name,
            version=self.version,
            label=self.label,
            shapes=self.signature_shapes(signature_name),
            broadcast=broadcast,
        )
        return grpc_outputs(self._rpc(self.stub.Predict, request))

    def close(self) -> None:
        self.channel.close()
