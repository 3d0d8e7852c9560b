"""Exports from a JAX or torch process, run on the TensorFlow backend in a child Python.

A TF Serving SavedModel is a TensorFlow graph: the serving signatures check,
pad and parse requests with TensorFlow ops, and string features are looked up
inside the graph. Keras's own export on JAX (jax2tf) traces the endpoint with
JAX values, which neither those ops nor string tensors accept; on torch it
cannot track a model at all. A process's Keras backend is fixed when Keras is
first imported, so the model goes to TensorFlow the way a user would move it:
the parent saves it as `.keras`, and a child Python with
`KERAS_BACKEND=tensorflow` loads it (the same weights, to the bit) and runs
the same export function with the same arguments, passed as JSON. The child's
error comes back as an exception of the same type with its message.

Run as `python -m keras_mtl.serving._in_tensorflow <request.json>` (the child).
"""

from __future__ import annotations

import builtins
import importlib
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import traceback

import numpy as np

#: What the child is allowed to run: `keras_mtl.<name>`.
FUNCTIONS = ("export_saved_model", "export_dupn")


#: The longest an export's TensorFlow child may run (a large model's export
#: takes minutes, not hours).
CHILD_TIMEOUT_SECONDS = 3600


def run_in_tensorflow(function: str, model, **kwargs):
    """`keras_mtl.<function>(model, **kwargs)`, run on the TensorFlow backend
    in a child Python; returns its result (paths as `pathlib.Path`)."""
    import keras

    if function not in FUNCTIONS:
        raise ValueError(f"run_in_tensorflow: {function!r} is not one of {FUNCTIONS}.")
    backend = keras.backend.backend()
    arguments = _encode_arguments(function, kwargs, backend)
    modules = _custom_modules(function, model, backend)
    with tempfile.TemporaryDirectory(prefix="keras_mtl_export_") as tmp:
        tmp = pathlib.Path(tmp)
        saved = tmp / "model.keras"
        try:
            model.save(saved)
        except Exception as error:
            raise ValueError(
                f"{function}: on the {backend} backend the model is exported by "
                "the TensorFlow backend from a .keras copy, and saving "
                f"{getattr(model, 'name', model)!r} as .keras failed: {error}"
            ) from error
        request = tmp / "request.json"
        result = tmp / "result.json"
        request.write_text(
            json.dumps(
                {
                    "function": function,
                    "model": str(saved),
                    "modules": modules,
                    "kwargs": arguments,
                    "result": str(result),
                }
            )
        )
        # The child imports the keras_mtl this process runs (a checkout on
        # sys.path included), and the modules on this process's path.
        package_root = str(pathlib.Path(__file__).resolve().parents[2])
        path = [package_root] + [p for p in sys.path if p and p != package_root]
        env = {
            **os.environ,
            "KERAS_BACKEND": "tensorflow",
            "PYTHONPATH": os.pathsep.join(path),
            "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3"),
            # (An export needs no GPU; the parent's backend may hold it.)
            "CUDA_VISIBLE_DEVICES": "",
        }
        try:
            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "keras_mtl.serving._in_tensorflow",
                    str(request),
                ],
                env=env,
                capture_output=True,
                text=True,
                check=False,
                timeout=CHILD_TIMEOUT_SECONDS,
            )
        except subprocess.TimeoutExpired as error:
            raise RuntimeError(
                f"{function}: the TensorFlow child process that exports for the "
                f"{backend} backend did not finish in {CHILD_TIMEOUT_SECONDS} s "
                "and was stopped."
            ) from error
        if not result.exists():
            raise RuntimeError(
                f"{function}: the TensorFlow child process that exports for the "
                f"{backend} backend ended with status {proc.returncode} and no "
                f"result; its standard error ends:\n{proc.stderr[-3000:]}"
            )
        answer = json.loads(result.read_text())
    if "error" in answer:
        raise _rebuilt_error(function, backend, answer["error"])
    value = answer["value"]
    if isinstance(value, dict):
        return {k: pathlib.Path(v) for k, v in value.items()}
    return pathlib.Path(value)


def _custom_modules(function: str, model, backend: str) -> list[str]:
    """The modules defining the model's layer classes other than Keras's and
    keras_mtl's: the child imports them, so that classes registered there
    (`keras.saving.register_keras_serializable`) load. A class defined in
    `__main__` cannot be imported: refused, naming it."""
    from keras_mtl._keras_compat import nested_layers

    modules = {}
    for layer in [model, *nested_layers(model)]:
        module = type(layer).__module__
        if module.split(".")[0] in ("keras", "keras_mtl"):
            continue
        if module == "__main__":
            raise ValueError(
                f"{function}: on the {backend} backend the TensorFlow backend "
                "writes the export from a .keras copy, in a child Python that "
                f"cannot import layer class {type(layer).__name__!r}, defined in "
                "__main__; define (and register) it in an importable module."
            )
        modules.setdefault(module, None)
    return list(modules)


def _encode_arguments(function: str, kwargs: dict, backend: str) -> dict:
    """`kwargs` as JSON values (paths as text, arrays as dtype + values, the
    ranking score and preprocessor by their configs)."""
    import keras

    encoded = {}
    for name, value in kwargs.items():
        if value is None:
            encoded[name] = None
        elif name in ("base_dir", "models_config"):
            encoded[name] = str(pathlib.Path(value).absolute())
        elif name == "warmup_requests":
            encoded[name] = [
                {k: _encode_array(v) for k, v in dict(request).items()}
                for request in value
            ]
        elif name == "ranking_score":
            encoded[name] = value.to_json()
        elif name == "output_signatures":
            parts = {}
            for signature, part in dict(value).items():
                if isinstance(part, keras.Model):
                    raise ValueError(
                        f"{function}: on the {backend} backend, output signature "
                        f"{signature!r} must list task names: a keras.Model part "
                        "cannot follow the model to the TensorFlow backend that "
                        "writes the SavedModel (export_dupn builds DUPN's scorers "
                        "there itself; or export from TensorFlow)."
                    )
                parts[signature] = [str(task) for task in part]
            encoded[name] = parts
        elif name == "preprocessor":
            if value.weights:  # (its config would rebuild it untrained)
                raise ValueError(
                    f"{function}: on the {backend} backend the preprocessor "
                    "crosses to the TensorFlow backend by its config, and "
                    f"{type(value).__name__} has weights, which it would lose; "
                    "use a preprocessor without weights (e.g. TimeFeatures) or "
                    "export from TensorFlow."
                )
            encoded[name] = keras.saving.serialize_keras_object(value)
        elif name == "broadcast_inputs":
            encoded[name] = [str(n) for n in value]
        else:  # version, keep_versions
            encoded[name] = value
    return encoded


def _decode_arguments(encoded: dict) -> dict:
    import keras

    from keras_mtl.serving.signatures import RankingScore

    kwargs = dict(encoded)
    if kwargs.get("warmup_requests") is not None:
        kwargs["warmup_requests"] = [
            {k: _decode_array(v) for k, v in request.items()}
            for request in kwargs["warmup_requests"]
        ]
    if kwargs.get("ranking_score") is not None:
        kwargs["ranking_score"] = RankingScore.from_json(kwargs["ranking_score"])
    if kwargs.get("preprocessor") is not None:
        kwargs["preprocessor"] = keras.saving.deserialize_keras_object(
            kwargs["preprocessor"]
        )
    if "broadcast_inputs" in kwargs:
        kwargs["broadcast_inputs"] = tuple(kwargs["broadcast_inputs"])
    return kwargs


def _encode_array(value) -> dict:
    """An array (numpy, a tensor of any backend, a list) as JSON: its dtype,
    shape and values (strings as text; NaN as JSON's NaN)."""
    if not isinstance(value, (np.ndarray, list, tuple)) and hasattr(value, "shape"):
        import keras

        value = keras.ops.convert_to_numpy(value)
    array = np.asarray(value)
    if array.dtype.kind in "OSU":
        values = (
            np.vectorize(
                lambda v: v.decode() if isinstance(v, bytes) else str(v),
                otypes=[object],
            )(array)
            if array.size
            else array.astype(object)
        )
        return {
            "dtype": "object",
            "shape": list(array.shape),
            "values": values.tolist(),
        }
    return {
        "dtype": array.dtype.str,
        "shape": list(array.shape),
        "values": array.tolist(),
    }


def _decode_array(record: dict) -> np.ndarray:
    dtype = object if record["dtype"] == "object" else np.dtype(record["dtype"])
    array = np.array(record["values"], dtype=dtype)
    return array.reshape(record["shape"])


def _rebuilt_error(function: str, backend: str, error: dict) -> Exception:
    """The child's exception as one of the same built-in type (else a
    RuntimeError), its message first, then where it was raised."""
    kind = getattr(builtins, error["type"], None)
    message = (
        f"{error['message']}\n({function} ran on the TensorFlow backend in a child "
        f"Python, as the {backend} backend cannot write a TF Serving SavedModel; "
        f"the child raised {error['type']}.)"
    )
    if isinstance(kind, type) and issubclass(kind, Exception):
        try:
            rebuilt = kind(message)
        except Exception:  # (a built-in error taking other arguments)
            pass
        else:
            rebuilt.add_note(f"The child's traceback:\n{error['traceback']}")
            return rebuilt
    return RuntimeError(f"{error['type']}: {message}\n{error['traceback']}")


def _child(request_path: str) -> int:
    request = json.loads(pathlib.Path(request_path).read_text())
    result = pathlib.Path(request["result"])
    try:
        import keras

        if keras.backend.backend() != "tensorflow":
            raise RuntimeError(
                "the export child needs KERAS_BACKEND=tensorflow; it runs "
                f"{keras.backend.backend()!r}."
            )
        # (`python -m` has imported the package, which registers its classes.)
        from keras_mtl.serving.dupn import export_dupn
        from keras_mtl.serving.export import export_saved_model

        functions = {
            "export_saved_model": export_saved_model,
            "export_dupn": export_dupn,
        }
        for module in request["modules"]:  # (their registered classes)
            importlib.import_module(module)
        model = keras.saving.load_model(request["model"], compile=False)
        kwargs = _decode_arguments(request["kwargs"])
        value = functions[request["function"]](model, **kwargs)
        if isinstance(value, dict):
            value = {k: str(v) for k, v in value.items()}
        else:
            value = str(value)
        result.write_text(json.dumps({"value": value}))
        return 0
    except BaseException as error:
        result.write_text(
            json.dumps(
                {
                    "error": {
                        "type": type(error).__name__,
                        "message": str(error),
                        "traceback": "".join(traceback.format_exception(error)[-6:]),
                    }
                }
            )
        )
        return 1


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1]))
