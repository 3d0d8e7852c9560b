"""Clients of the exported models on TF Serving: REST, and DUPN's two calls.

This module needs numpy and the standard library only: a deployer's service
may have neither TensorFlow nor Keras (then `import keras_mtl` loads nothing
else). `keras_mtl.serving.grpc_client` is the gRPC twin (it needs
`tensorflow-serving-api`, hence TensorFlow).

- `RestClient(url, model)`: `predict({feature: values})` builds TF Serving's
  REST body (columnar `inputs` or row `instances`), with every value coerced to
  the dtype the served signature declares and checked against its rank (both
  read once from the model's `/metadata`), and returns `{output: np.ndarray}`.
- `coerce_inputs` / `rest_body` / `rest_outputs`: the same steps, for callers
  with their own HTTP stack. `coerce_inputs` is also what the gRPC client and
  the warm-up file (`keras_mtl.serving.warmup`) type their requests with.
- `DupnClient(encoder, scorer)`: one call of DUPN's user encoder per request,
  one call of the scorer for any number of candidates (the exported scorer
  tiles the user's representation itself).

Errors: a value that cannot be safely cast to the signature's dtype (3.5 for
an int64 id, a string for a float), a value of the wrong rank (a flat list for
a list feature), or inputs of different batch sizes raise a ValueError naming
the input before anything is sent; an error of the server (e.g. NaN in a dense
feature that does not allow missing values, named by the exported graph)
raises `ServingError` with TF Serving's message.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Collection, Mapping

import numpy as np

#: numpy dtype of each TF dtype a signature of ours uses.
NUMPY_DTYPES = {
    "DT_INT64": np.int64,
    "DT_INT32": np.int32,
    "DT_FLOAT": np.float32,
    "DT_DOUBLE": np.float64,
    "DT_STRING": object,
}


class ServingError(RuntimeError):
    """An error answered by the model server (its message, and the HTTP status
    or gRPC status code)."""

    def __init__(self, message: str, status=None):
        super().__init__(message)
        self.status = status


def coerce(name: str, values, dtype: str) -> np.ndarray:
    """`values` as a numpy array of the signature's `dtype` ("DT_INT64", ...).

    Safe casts only: integers of any width (and integral floats) become int64
    ids, numbers become float32 (NaN stays NaN: a missing value where the
    feature allows it), str and bytes become strings.

    Raises:
        ValueError: naming the input, the dtype and an offending value.

    Example:
    >>> coerce("item", [3, 4.0], "DT_INT64")
    array([3, 4])
    >>> coerce("item", [3.5], "DT_INT64")
    Traceback (most recent call last):
    ...
    ValueError: Input 'item' takes DT_INT64 (integer ids); got 3.5, which is not ...
    """
    if dtype not in NUMPY_DTYPES:
        raise ValueError(f"Input {name!r}: unsupported signature dtype {dtype}.")
    try:
        array = np.asarray(values, dtype=object if dtype == "DT_STRING" else None)
    except ValueError as error:  # e.g. rows of different lengths
        raise ValueError(f"Input {name!r}: {error}") from None
    if dtype == "DT_STRING":
        flat = array.reshape(-1)
        bad = [v for v in flat if not isinstance(v, (str, bytes))]
        if bad:
            raise ValueError(
                f"Input {name!r} takes DT_STRING; got {bad[0]!r} "
                f"({type(bad[0]).__name__}). Send the raw string."
            )
        return array
    kind = array.dtype.kind
    if dtype in ("DT_INT64", "DT_INT32"):
        if kind in "iu":
            cast = array.astype(NUMPY_DTYPES[dtype])
            if not (cast == array).all():  # out of the dtype's range: no wrap
                bad = array[cast != array].reshape(-1)[0].item()
                raise ValueError(
                    f"Input {name!r} takes {dtype} (integer ids); got {bad!r}, "
                    "which is out of its range."
                )
            return cast
        if kind == "f":
            whole = np.isfinite(array) & (array == np.floor(array))
            if whole.all():
                return array.astype(NUMPY_DTYPES[dtype])
            bad = array[~whole].reshape(-1)[0].item()
            raise ValueError(
                f"Input {name!r} takes {dtype} (integer ids); got {bad!r}, which "
                "is not a whole number."
            )
        raise ValueError(
            f"Input {name!r} takes {dtype} (integer ids); got values of type "
            f"{array.dtype} (e.g. {array.reshape(-1)[:1].tolist()})."
        )
    if kind in "iuf":
        return array.astype(NUMPY_DTYPES[dtype])
    raise ValueError(
        f"Input {name!r} takes {dtype} (numbers; NaN for a missing value where "
        f"the feature allows it); got values of type {array.dtype} (e.g. "
        f"{array.reshape(-1)[:1].tolist()})."
    )


def coerce_inputs(
    inputs: Mapping,
    dtypes: Mapping[str, str],
    shapes: Mapping[str, tuple | None] | None = None,
    *,
    broadcast: Collection[str] = (),
) -> dict:
    """`{input: array}` with each value coerced (`coerce`) to `dtypes[input]`.

    Inputs the signature does not take, or does take but are absent, are
    errors that name them. With `shapes`, the signature's input shapes
    (`signature_shapes`, `GrpcClient.signature_shapes`), each value is also
    checked against its input's shape: its rank, and every dimension the
    signature fixes (None or -1: any size; a shape of None: any rank). The
    exported signatures of keras_mtl take any length on every per-example
    axis (the graph pads lists and checks their widths itself), so in
    practice the rank is what is checked. Then every input with a batch axis
    must have the same batch size (its first axis), except that an input
    named in `broadcast` may come with one row for the whole batch (DUPN's
    scorer tiles its `user_representation`).

    Args:
        inputs: `{input name: values}`, the first axis the batch.
        dtypes: `{input name: "DT_INT64" | "DT_FLOAT" | "DT_STRING" ...}`.
        shapes: `{input name: (dim, ...) or None}`, or None (the default) to
            check no shapes or batch sizes.
        broadcast: names of inputs that may have one row for a larger batch.
            Defaults to none.

    Raises:
        ValueError: naming the input (or, for batch sizes, every input's).

    Example:
    >>> dtypes = {"item": "DT_INT64", "tags": "DT_STRING"}
    >>> shapes = {"item": (-1,), "tags": (-1, -1)}
    >>> coerce_inputs({"item": [3, 4], "tags": [["a", ""], ["b", "c"]]},
    ...               dtypes, shapes)["tags"].shape
    (2, 2)
    >>> coerce_inputs({"item": [3, 4], "tags": ["a", "b"]}, dtypes, shapes)
    Traceback (most recent call last):
    ...
    ValueError: Input 'tags' has shape (2,); the signature takes (-1, -1) ...
    >>> coerce_inputs({"item": [3], "tags": [["a"], ["b"]]}, dtypes, shapes)
    Traceback (most recent call last):
    ...
    ValueError: Inputs have different batch sizes (first axis): {'item': 1, 'tags': 2}.
    """
    unknown = sorted(set(inputs) - set(dtypes))
    missing = sorted(set(dtypes) - set(inputs))
    if unknown or missing:
        wrong = [f"unknown: {unknown}"] * bool(unknown)
        wrong += [f"missing: {missing}"] * bool(missing)
        raise ValueError(
            f"The signature takes inputs {sorted(dtypes)}; {'; '.join(wrong)}."
        )
    arrays = {name: coerce(name, inputs[name], dtypes[name]) for name in dtypes}
    if shapes is None:
        return arrays
    sizes = {}
    for name, array in arrays.items():
        dims = shapes.get(name)
        if dims is None:  # any rank (or a shape not given): nothing to check
            continue
        want = tuple(-1 if d is None or d < 0 else int(d) for d in dims)
        if array.ndim != len(want) or any(
            d >= 0 and d != n for d, n in zip(want, array.shape)
        ):
            raise ValueError(
                f"Input {name!r} has shape {array.shape}; the signature takes "
                f"{want} (-1: any size)."
            )
        if want and not (name in broadcast and len(array) == 1):
            sizes[name] = len(array)
    if len(set(sizes.values())) > 1:
        shared = sorted(n for n in broadcast if n in arrays)
        raise ValueError(
            f"Inputs have different batch sizes (first axis): {sizes}"
            + (f"; {shared} may have one row for the whole batch" if shared else "")
            + "."
        )
    return arrays


def _json_value(value):
    """A coerced value as TF Serving's REST API reads it."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"b64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, (np.floating, float)):
        return float(value)  # NaN is written as NaN, which TF Serving reads
    if isinstance(value, np.integer):
        return int(value)
    return value


def _json_lists(array):
    if not isinstance(array, np.ndarray):  # a row of a 1-D array: one value
        return _json_value(array)
    if array.ndim == 0:
        return _json_value(array[()])
    return [_json_lists(row) for row in array]


def rest_body(
    inputs: Mapping,
    dtypes: Mapping[str, str],
    *,
    signature_name: str = "serving_default",
    form: str = "columnar",
    shapes: Mapping[str, tuple | None] | None = None,
    broadcast: Collection[str] = (),
) -> dict:
    """TF Serving's REST predict body for `inputs` (coerced to `dtypes`, and
    checked against `shapes`: `coerce_inputs`).

    Args:
        inputs: `{input name: values}`, the first axis the batch.
        dtypes: `{input name: "DT_INT64" | "DT_FLOAT" | "DT_STRING" ...}`, the
            signature's (`signature_dtypes`).
        signature_name: str. Defaults to "serving_default".
        form: "columnar" (`{"inputs": {name: [...]}}`) or "rows"
            (`{"instances": [{name: value, ...}, ...]}`; every input needs the
            same batch size). Defaults to "columnar".
        shapes: `{input name: (dim, ...)}`, the signature's
            (`signature_shapes`), or None to check no shapes. Defaults to None.
        broadcast: inputs that may have one row for the whole batch (columnar
            form). Defaults to none.

    Example:
    >>> rest_body({"item": [3], "price": [[1, 2]]},
    ...           {"item": "DT_INT64", "price": "DT_FLOAT"}, form="rows")
    {'signature_name': 'serving_default', 'instances': [{'item': 3, 'price': [1.0, 2.0]}]}
    """
    arrays = coerce_inputs(inputs, dtypes, shapes, broadcast=broadcast)
    body = {"signature_name": signature_name}
    if form == "columnar":
        body["inputs"] = {name: _json_lists(a) for name, a in arrays.items()}
    elif form == "rows":
        sizes = {name: len(a) for name, a in arrays.items()}
        if len(set(sizes.values())) > 1:
            raise ValueError(
                f"Row form needs one batch size for every input; got {sizes}."
            )
        count = next(iter(sizes.values()), 0)
        body["instances"] = [
            {name: _json_lists(a[i]) for name, a in arrays.items()}
            for i in range(count)
        ]
    else:
        raise ValueError(f"form must be 'columnar' or 'rows'; got {form!r}.")
    return body


def rest_outputs(response: Mapping, output_names) -> dict[str, np.ndarray]:
    """`{output: np.ndarray}` from a REST predict response (either form).

    TF Serving leaves a single output unwrapped (a list of values, not a
    dict); `output_names` (the signature's) names it.
    """
    names = sorted(output_names)
    if "outputs" in response:
        outputs = response["outputs"]
        if not isinstance(outputs, dict):
            outputs = {names[0]: outputs}
        return {k: np.asarray(v) for k, v in outputs.items()}
    if "predictions" in response:
        rows = response["predictions"]
        if rows and isinstance(rows[0], dict):
            return {k: np.asarray([row[k] for row in rows]) for k in rows[0]}
        return {names[0]: np.asarray(rows)}
    raise ServingError(f"Not a predict response: {str(response)[:200]}")


def signature_dtypes(metadata: Mapping, signature_name: str) -> tuple[dict, list]:
    """`({input: dtype}, [output names])` of a signature, from the JSON of TF
    Serving's `GET /v1/models/<name>/metadata`."""
    signatures = metadata["metadata"]["signature_def"]["signature_def"]
    if signature_name not in signatures:
        raise ValueError(
            f"The model has no signature {signature_name!r}; it has "
            f"{sorted(k for k in signatures if not k.startswith('__'))}."
        )
    signature = signatures[signature_name]
    dtypes = {name: t["dtype"] for name, t in signature.get("inputs", {}).items()}
    return dtypes, sorted(signature.get("outputs", {}))


def signature_shapes(metadata: Mapping, signature_name: str) -> dict:
    """`{input: (dim, ...)}` of a signature, from the JSON of TF Serving's
    `GET /v1/models/<name>/metadata` (`tensor_shape.dim[].size`); a dimension
    of -1 is any size, a shape of None any rank (`unknown_rank`, or no shape).

    Example:
    >>> x = {"dtype": "DT_FLOAT", "tensor_shape": {
    ...     "dim": [{"size": "-1", "name": ""}, {"size": "3", "name": ""}],
    ...     "unknown_rank": False}}
    >>> signature_shapes({"metadata": {"signature_def": {"signature_def": {
    ...     "serving_default": {"inputs": {"x": x}}}}}}, "serving_default")
    {'x': (-1, 3)}
    """
    signature_dtypes(metadata, signature_name)  # the error for an unknown name
    signatures = metadata["metadata"]["signature_def"]["signature_def"]
    shapes = {}
    for name, info in signatures[signature_name].get("inputs", {}).items():
        shape = info.get("tensor_shape")
        if shape is None or shape.get("unknown_rank"):
            shapes[name] = None
        else:
            shapes[name] = tuple(int(d.get("size", -1)) for d in shape.get("dim", []))
    return shapes


class RestClient:
    """A model on TF Serving's REST API.

    Args:
        url: str. The server, e.g. "http://localhost:8501".
        model: str. The model name (its `--model_name` or models.config name).
        version: int or None. A version to pin; None for what the server
            serves (its latest, or its policy). Defaults to None.
        label: str or None. A version label instead of `version`. Defaults to None.
        timeout: float. Seconds per request. Defaults to 30.

    Example (against a running server, so not run here):

        client = RestClient("http://localhost:8501", "mmoe")
        client.predict({"age": [41.0], "education": ["Bachelors degree(BA AB BS)"]})
        # {"income": array([0.31], dtype=float32), "marital": array([...])}
    """

    def __init__(
        self,
        url: str,
        model: str,
        *,
        version: int | None = None,
        label: str | None = None,
        timeout: float = 30.0,
    ):
        if version is not None and label is not None:
            raise ValueError("RestClient: give version or label, not both.")
        self.url = url.rstrip("/")
        self.model = model
        self.version = version
        self.label = label
        self.timeout = timeout
        self._metadata = None

    @property
    def model_url(self) -> str:
        url = f"{self.url}/v1/models/{self.model}"
        if self.version is not None:
            url += f"/versions/{int(self.version)}"
        elif self.label is not None:
            url += f"/labels/{self.label}"
        return url

    def _call(self, url: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            url, data=data, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            text = error.read().decode(errors="replace")
            try:
                message = json.loads(text)["error"]
            except (ValueError, KeyError, TypeError):
                message = text
            raise ServingError(message, error.code) from None

    def metadata(self) -> dict:
        """The model's signature metadata (fetched once)."""
        if self._metadata is None:
            self._metadata = self._call(f"{self.model_url}/metadata")
        return self._metadata

    def predict(
        self,
        inputs: Mapping,
        signature_name: str = "serving_default",
        form: str = "columnar",
        *,
        broadcast: Collection[str] = (),
    ) -> dict[str, np.ndarray]:
        """`{output: np.ndarray}` for a batch of raw inputs (see `rest_body`;
        values are checked against the signature's dtypes and shapes)."""
        metadata = self.metadata()
        dtypes, outputs = signature_dtypes(metadata, signature_name)
        body = rest_body(
            inputs,
            dtypes,
            signature_name=signature_name,
            form=form,
            shapes=signature_shapes(metadata, signature_name),
            broadcast=broadcast,
        )
        return rest_outputs(self._call(f"{self.model_url}:predict", body), outputs)


class DupnClient:
    """DUPN's serving split from the client side: the user encoder once per
    request, the scorer for any number of candidates.

    Args:
        encoder: a client (`RestClient` or `GrpcClient`) of the exported
            `user_encoder` model.
        scorer: a client of the exported `scorer` model.

    Example (against running servers, so not run here):

        dupn = DupnClient(RestClient(url, "dupn_user_encoder"),
                          RestClient(url, "dupn_scorer"))
        dupn.score(user_inputs, {"item": candidate_ids, ...}, "score_ctr")
    """

    REPRESENTATION = "user_representation"

    def __init__(self, encoder, scorer):
        self.encoder = encoder
        self.scorer = scorer

    def user_representation(self, user_inputs: Mapping) -> np.ndarray:
        """`(1, dim)`: one user's history, profile and request (batch of one)."""
        rows = {len(np.asarray(v, dtype=object)) for v in user_inputs.values()}
        if rows != {1}:
            raise ValueError(
                "DupnClient: user inputs are one user's (a batch of one row); "
                f"got batch sizes {sorted(rows)}."
            )
        return self.encoder.predict(user_inputs)[self.REPRESENTATION]

    def score(
        self,
        user_inputs: Mapping,
        candidates: Mapping,
        signature_name: str = "serving_default",
    ) -> dict[str, np.ndarray]:
        """The scorer's outputs for a batch of candidates (target items, or
        candidate lists) of one user: the encoder is called once, and its one
        representation row is sent with the batch (the scorer tiles it)."""
        user = self.user_representation(user_inputs)
        return self.scorer.predict(
            {**candidates, self.REPRESENTATION: user},
            signature_name,
            broadcast=(self.REPRESENTATION,),
        )
