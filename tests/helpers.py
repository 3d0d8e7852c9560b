"""Shared checks every layer and builder goes through."""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import json
import math
import os
import pathlib
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

#: For tests that feed strings to layers: string tensors exist on TensorFlow
#: only. On JAX and torch a `MultiTaskModel` looks its string features up on
#: the host (models/_host_lookups.py) and its layers receive rows.
STRINGS_TF_ONLY = pytest.mark.backends(
    "tensorflow", reason="string tensors exist on TensorFlow only"
)


def _symbolic_like(data, name=None):
    if isinstance(data, dict):
        return {k: _symbolic_like(v, name=k) for k, v in data.items()}
    if isinstance(data, list):
        return [_symbolic_like(v) for v in data]
    data = np.asarray(data)
    dtype = "string" if data.dtype.kind in "OUS" else str(data.dtype)
    return keras.Input(shape=data.shape[1:], dtype=dtype, name=name)


def _to_model_input(data):
    if isinstance(data, dict):
        return {k: _to_model_input(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_to_model_input(v) for v in data]
    data = np.asarray(data)
    return tf.constant(data.astype(object) if data.dtype.kind == "U" else data)


def to_numpy(x, dtype=None):
    """`np.asarray(x, dtype)` for the tensors and variables of every backend
    (torch's need detaching), nested lists of them included."""
    if isinstance(x, (list, tuple)):
        return np.asarray([to_numpy(v) for v in x], dtype)
    if isinstance(x, keras.Variable) or keras.ops.is_tensor(x):
        x = keras.ops.convert_to_numpy(x)
    return np.asarray(x, dtype)


def _flat(outputs):
    return [to_numpy(o) for o in keras.tree.flatten(outputs)]


def assert_outputs_close(a, b, atol=1e-6):
    for x, y in zip(_flat(a), _flat(b), strict=True):
        np.testing.assert_allclose(x, y, atol=atol, rtol=0)


def run_layer_test(
    layer_cls,
    init_kwargs: dict,
    input_data,
    expected_output_shape,
    tmp_path,
    call_kwargs: dict | None = None,
    expected_output=None,
    fit: bool = True,
):
    """Shapes (symbolic and eager), optional exact values, config round trip,
    `.keras` save/load with equal outputs, and one `fit` step that moves weights."""
    call_kwargs = call_kwargs or {}
    layer = layer_cls(**init_kwargs)
    eager_in = _to_model_input(input_data)

    symbolic_in = _symbolic_like(input_data)
    symbolic_out = layer(symbolic_in, **call_kwargs)
    want = (
        list(expected_output_shape)
        if isinstance(expected_output_shape, list)
        else [expected_output_shape]
    )
    got = [tuple(t.shape) for t in keras.tree.flatten(symbolic_out)]
    assert got == [tuple(s) for s in want], (got, want)

    eager_out = layer(eager_in, **call_kwargs)
    batch = len(next(iter(keras.tree.flatten(input_data))))
    got = [tuple(np.shape(t)) for t in keras.tree.flatten(eager_out)]
    assert got == [(batch, *tuple(s)[1:]) for s in want], (got, want)
    if expected_output is not None:
        assert_outputs_close(eager_out, expected_output, atol=1e-5)

    config = layer.get_config()
    clone = layer_cls.from_config(config)
    assert clone.get_config() == config
    json.dumps(config)  # configs must be plain JSON

    model = keras.Model(symbolic_in, symbolic_out)
    before = model(eager_in)
    path = os.path.join(tmp_path, f"{layer_cls.__name__}.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)  # safe_mode: no Lambda anywhere
    assert_outputs_close(loaded(eager_in), before)

    if fit and model.trainable_weights:
        targets = keras.tree.map_structure(
            lambda t: np.ones(np.shape(t), "float32"), before
        )
        start = [to_numpy(w) for w in model.trainable_weights]
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        model.fit(eager_in, targets, epochs=1, batch_size=batch, verbose=0)
        moved = [
            not np.allclose(a, to_numpy(w))
            for a, w in zip(start, model.trainable_weights)
        ]
        assert any(moved), "one fit step changed no weight"

    # Shapes are checked above (Keras's check wants the output's own container).
    # Keras's harness runs on TensorFlow and JAX (issue 18); on CPU torch it
    # skips its own mixed-precision check, and the checks above already ran.
    if keras.backend.backend() != "torch":
        run_keras_layer_test(
            layer_cls,
            init_kwargs,
            input_data,
            call_kwargs,
            several_outputs=isinstance(expected_output_shape, list),
        )
    return layer


def _harness_class(layer_cls, call_kwargs: dict):
    """A test-only subclass of `layer_cls` adapted to three conventions of
    Keras's harness; nothing else changes (same weights, config, computation):

    - dict `input_data` is passed as keyword arguments (`layer(**data)`,
      `layer.build(**shapes)`): a layer that takes a dict of named tensors as its
      one input gets it as `{"inputs": dict}` (call and build take `inputs=`; the
      training step calls `layer({"inputs": dict})`, unwrapped here);
    - the training step calls the layer without `call_kwargs`: they are the
      defaults of every call here instead (so `return_weights=True` or a mask
      holds in the training step too);
    - the training step feeds `(inputs, outputs)` through `tf.data` on
      TensorFlow, whose structures treat a list as one tensor: several outputs
      come back as a tuple instead of a list.
    """

    def unwrap(value):
        if isinstance(value, dict) and set(value) == {"inputs"}:
            return value["inputs"]
        return value

    def as_tuple(value):
        return tuple(value) if isinstance(value, list) else value

    class Harnessed(layer_cls):
        def build(self, inputs):
            super().build(unwrap(inputs))

        def call(self, inputs, *args, **kwargs):
            kwargs = {**call_kwargs, **kwargs}
            return as_tuple(super().call(unwrap(inputs), *args, **kwargs))

        def compute_output_spec(self, inputs, *args, **kwargs):
            kwargs = {**call_kwargs, **kwargs}
            spec = super().compute_output_spec(unwrap(inputs), *args, **kwargs)
            return as_tuple(spec)

    Harnessed.__name__ = Harnessed.__qualname__ = f"Harnessed{layer_cls.__name__}"
    return Harnessed


def _harness_input(data):
    """Test data as Keras's harness takes it: arrays, strings as the backend's
    string tensors (TensorFlow only; the harness reads `x.dtype`)."""
    if isinstance(data, dict):
        return {k: _harness_input(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return tuple(_harness_input(v) for v in data)
    data = np.asarray(data)
    if data.dtype.kind in "OUS":
        return tf.constant(data.astype(object))
    return data


def run_keras_layer_test(
    layer_cls, init_kwargs, input_data, call_kwargs=None, several_outputs=False
):
    """Keras's own layer harness (`keras.src.testing.TestCase.run_layer_test`):
    config and serialization round trips, build, symbolic and eager calls, a
    compiled training step, and the mixed-precision check (`dtype=
    "mixed_float16"`: outputs in the compute dtype its `compute_output_spec`
    gives, every float weight float32; Keras skips it on torch without CUDA).

    `keras.src.testing` is private Keras API: imported here, in the tests only,
    never in the library."""
    from keras.src.testing import TestCase  # tests only (private Keras API)

    call_kwargs = call_kwargs or {}
    data = _harness_input(input_data)
    cls = layer_cls
    if isinstance(data, dict) or call_kwargs or several_outputs:
        cls = _harness_class(layer_cls, call_kwargs)
    if isinstance(data, dict):
        data = {"inputs": data}
    TestCase().run_layer_test(
        cls,
        init_kwargs,
        input_data=data,
        custom_objects={cls.__name__: cls},
        run_training_check=True,
        run_mixed_precision_check=True,
    )


def chance_auc(positives: int, negatives: int, z: float = 4.0) -> float:
    """0.5 + z standard errors of the AUC of scores with no signal (Hanley and
    McNeil): a random scorer stays below it with probability > 0.9999 at z = 4,
    a constant one gets 0.5."""
    se = math.sqrt((positives + negatives + 1) / (12 * positives * negatives))
    return 0.5 + z * se


@contextlib.contextmanager
def xla_off():
    """Models compiled inside run without XLA (`compile`'s "auto" says no)."""
    import pytest

    from keras_mtl import training

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(training, "supports_jit", lambda model: False)
        yield


# ----------------------------------------------------------------------------- builders


def input_names(features) -> list[str]:
    """The model inputs a list of specs declares (a sequence: one per field)."""
    return [
        name
        for f in features
        for name in (f.input_names if hasattr(f, "input_names") else [f.name])
    ]


def feature_batch(data: dict, features, n: int) -> dict:
    """The first `n` rows of `data` as model inputs (tensors), via `make_dataset`."""
    from keras_mtl.data import make_dataset

    rows = {k: v[:n] for k, v in data.items()}
    return next(iter(make_dataset(rows, features, None, n, shuffle=False)))


@dataclasses.dataclass
class BuiltModel:
    """A builder's model after `run_builder_test`, for further checks."""

    model: keras.Model
    history: dict  # fit logs, one value per epoch
    x: dict  # a batch of model inputs (tensors)
    predicted: dict  # model.predict(x)
    export: pathlib.Path  # its SavedModel


#: The rows of the example batch each warm-up request of a battery export holds.
WARMUP = ((0, 1), (1, 9))


def run_builder_test(
    build,
    features,
    tasks,
    data: dict,
    tmp_path,
    *,
    outputs: dict | None = None,
    epochs: int = 4,
    batch_size: int = 256,
    learning_rate: float = 0.01,
    min_loss_drop: float = 0.1,
    num_examples: int = 32,
) -> BuiltModel:
    """The builder battery: the contract every builder's model keeps.

    `build(compile=...)` returns the model. Checks: a `MultiTaskModel` whose
    inputs are named after `features`; a dict of outputs keyed by task with
    the tasks' shapes (probabilities in [0, 1], class distributions summing to
    1); `fit` on `make_dataset(data, features, tasks)` lowers the total loss by
    `min_loss_drop` and every trained task's loss, finite throughout; a `.keras`
    save/load gives identical outputs, the same losses and auxiliary terms; a
    SavedModel export lands in `<tmp_path>/serving/1`. The served outputs are
    compared with `predicted` in a fresh process by `BuilderBattery.check_serving`.

    `outputs` (task name -> per-example shape) defaults to the tasks' label
    shapes.
    """
    import keras_mtl as km
    from keras_mtl.data import make_dataset

    keras.utils.set_random_seed(0)
    model = build(compile={"learning_rate": learning_rate})
    assert isinstance(model, km.MultiTaskModel), type(model)
    want_inputs = sorted(input_names(features))
    assert isinstance(model.input, dict), type(model.input)
    assert sorted(model.input) == want_inputs, sorted(model.input)
    assert all(model.input[name].name == name for name in want_inputs)
    by_task = {t.name: t for t in tasks}
    if outputs is None:
        outputs = {t.name: t.label_shape for t in tasks}
    assert isinstance(model.output, dict) and sorted(model.output) == sorted(outputs)
    for name, shape in outputs.items():
        assert tuple(model.output[name].shape) == (None, *shape), name

    # Full batches only: one input shape, so the train step is traced (and
    # compiled) once.
    ds = make_dataset(
        data, features, tasks, batch_size=batch_size, seed=0, drop_remainder=True
    )
    history = model.fit(ds, epochs=epochs, verbose=0).history
    assert all(np.isfinite(history["loss"])), history["loss"]
    first, last = history["loss"][0], history["loss"][-1]
    assert last <= (1 - min_loss_drop) * first, history["loss"]
    for name in model.loss:
        curve = history[f"{name}_loss"]
        assert curve[-1] < curve[0], (name, curve)

    x = feature_batch(data, features, num_examples)
    predicted = model.predict(x, verbose=0)
    for name, shape in outputs.items():
        value = predicted[name]
        assert value.shape == (num_examples, *shape), (name, value.shape)
        kind = by_task[name].type if name in by_task else "binary"
        if kind == "binary":
            assert ((value >= 0) & (value <= 1)).all(), name
        if kind == "multiclass":
            np.testing.assert_allclose(value.sum(axis=-1), 1.0, atol=1e-5)

    path = pathlib.Path(tmp_path) / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)  # safe_mode: no Lambda anywhere
    assert type(loaded) is type(model)
    # The round trip is about weights and config; `predict` above already
    # compiled the predict step with XLA (where on), so the loaded copy skips
    # a second compilation (1-2 s per builder).
    loaded.jit_compile = False
    assert_outputs_close(loaded.predict(x, verbose=0), predicted)
    # The compile config (masked losses, metrics, loss weights) survives too.
    assert {k: type(v).__name__ for k, v in loaded.loss.items()} == {
        k: type(v).__name__ for k, v in model.loss.items()
    }
    # Auxiliary terms (`model.losses`, filled by a call) come back with the model.
    model(x)
    loaded(x)
    assert len(loaded.losses) == len(model.losses)

    if keras.backend.backend() != "tensorflow":
        # On JAX and torch, export_saved_model reloads the .keras file (its
        # round trip is checked above) in a TensorFlow child and exports there,
        # as this function does on TF for every builder: the route itself is
        # tested once, in tests/serving/test_in_tensorflow.py (a child costs
        # ~10 s of CPU, too much for every builder on every backend).
        return BuiltModel(model, history, x, predicted, None)
    rows = {k: np.asarray(v) for k, v in x.items()}
    warmup = [{k: v[start:stop] for k, v in rows.items()} for start, stop in WARMUP]
    export = km.export_saved_model(
        model, pathlib.Path(tmp_path) / "serving", warmup_requests=warmup
    )
    assert export == pathlib.Path(tmp_path) / "serving" / "1"
    assert (export / "saved_model.pb").is_file()
    return BuiltModel(model, history, x, predicted, export)


class BuilderBattery:
    """`run_builder_test` for each builder of a test module, once each, and one
    fresh process that serves every export.

    Args:
        cases: dict of name to `run_builder_test` keyword arguments.
        tmp_path: a directory for the module (one subdirectory per builder).
    """

    def __init__(self, cases: dict, tmp_path):
        self.cases = cases
        self.tmp_path = pathlib.Path(tmp_path)
        self._built = {}

    def run(self, name: str) -> BuiltModel:
        """The battery for `name` (run on the first call, then remembered)."""
        if name not in self._built:
            directory = self.tmp_path / name
            directory.mkdir(exist_ok=True)
            self._built[name] = run_builder_test(tmp_path=directory, **self.cases[name])
        return self._built[name]

    def check_serving(self, extra_calls=()) -> list[dict]:
        """The serving contract of every builder's export, checked as TF Serving
        would: in ONE new Python that never imports keras_mtl, every signature
        (`serving_default`, `serving_examples` on the rows as tf.Examples, the
        per-task-group ones) and the decoded warm-up records give
        `model.predict`'s outputs within 1e-5, and `saved_model_cli` shows each
        input and output with its dtype and shape; then the TF Serving stand-in
        serves all exports from one models.config, and the REST (both forms)
        and gRPC clients' requests give them too.

        Returns the results of `serve_in_fresh_process`, the builders' first.
        """
        from keras_mtl.serving.signatures import serialize_examples

        built = {name: self.run(name) for name in self.cases}
        calls = [
            {
                "dir": b.export,
                "inputs": b.x,
                "examples": serialize_examples(
                    {k: np.asarray(v) for k, v in b.x.items()}
                ),
            }
            for b in built.values()
        ]
        served = serve_in_fresh_process(calls + list(extra_calls))
        for (name, b), result in zip(built.items(), served):
            assert sorted(result["outputs"]) == sorted(b.predicted), name
            assert_outputs_close(result["outputs"], b.predicted, atol=1e-5)
            signatures = result["signatures"]
            assert "serving_examples" in signatures, (name, sorted(signatures))
            for outputs in signatures.values():
                want = {k: b.predicted[k] for k in outputs}
                assert_outputs_close(outputs, want, atol=1e-5)
            # Each warm-up request once per signature, so every graph is warm.
            warmed = [signature for signature, _ in result["warmup"]]
            assert sorted(warmed) == sorted(
                ["serving_default", *signatures] * len(WARMUP)
            ), (name, warmed)
            for index, (_, outputs) in enumerate(result["warmup"]):
                start, stop = WARMUP[index % len(WARMUP)]
                want = {k: b.predicted[k][start:stop] for k in outputs}
                assert_outputs_close(outputs, want, atol=1e-5)
            assert_signature_shows(result["signature"], b.model)
        self._check_clients(built)
        return served

    def _check_clients(self, built: dict) -> None:
        import keras_mtl as km
        from keras_mtl.serving.client import RestClient
        from keras_mtl.serving.grpc_client import GrpcClient
        from tests.serving.standin import start_standin

        config = km.serving.write_models_config(
            self.tmp_path / "models.config",
            [km.serving.ServedModel(n, b.export.parent) for n, b in built.items()],
        )
        workdir = self.tmp_path / "standin"
        workdir.mkdir(exist_ok=True)
        server = start_standin(workdir, model_config_file=config, max_seconds=300)
        try:
            for name, b in built.items():
                x = {k: np.asarray(v) for k, v in b.x.items()}
                grpc = GrpcClient(server.grpc_target, name)
                try:
                    answers = [
                        RestClient(server.rest_url, name).predict(x, form=form)
                        for form in ("columnar", "rows")
                    ] + [grpc.predict(x)]
                finally:
                    grpc.close()
                for answer in answers:
                    assert sorted(answer) == sorted(b.predicted), name
                    assert_outputs_close(answer, b.predicted, atol=1e-5)
        finally:
            server.stop()


def shown_tensor(kind: str, name: str, dtype, shape) -> str:
    """How `saved_model_cli show` prints one tensor of a signature."""
    dt = {"int64": "DT_INT64", "string": "DT_STRING", "float32": "DT_FLOAT"}
    dims = ", ".join("-1" if d is None else str(d) for d in shape)
    return (
        f"{kind}['{name}'] tensor_info:\n      dtype: {dt[str(dtype)]}\n"
        f"      shape: ({dims})"
    )


def assert_signature_shows(signature: str, model) -> None:
    """`signature` (saved_model_cli's text) lists every input and output of
    `model`, named as in the model, with the raw dtype and the shape (an input's
    per-example axes of any length: the graph pads lists, checks widths)."""
    inputs = model.input if isinstance(model.input, dict) else {}
    for name, tensor in inputs.items():
        shape = (None,) * len(tensor.shape)
        want = shown_tensor("inputs", name, tensor.dtype, shape)
        assert want in signature, (want, signature)
    for name, tensor in model.output.items():
        want = shown_tensor("outputs", name, "float32", tensor.shape)
        assert want in signature, (want, signature)


_SERVE_SCRIPT = textwrap.dedent(
    """
    import contextlib, io, json, os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import tensorflow as tf
    from tensorflow.python.tools import saved_model_cli
    from tensorflow_serving.apis import prediction_log_pb2

    def run(fn, values):
        args = {
            name: tf.constant(values[name], dtype=spec.dtype)
            for name, spec in fn.structured_input_signature[1].items()
        }
        return {k: v.numpy().tolist() for k, v in fn(**args).items()}

    results = []
    for call in json.loads(sys.stdin.read()):
        shown = io.StringIO()
        with contextlib.redirect_stdout(shown):
            saved_model_cli._show_inputs_outputs(
                call["dir"], "serve", "serving_default"
            )
        signatures = tf.saved_model.load(call["dir"]).signatures
        values = dict(call["inputs"])
        for name, (index, output) in call["refs"].items():
            values[name] = results[index]["outputs"][output]
        result = {"outputs": run(signatures["serving_default"], values),
                  "signature": shown.getvalue(), "signatures": {}, "warmup": []}
        for name, fn in signatures.items():
            if name == "serving_examples" and "examples" in call:
                examples = {"examples": [bytes.fromhex(e) for e in call["examples"]]}
                result["signatures"][name] = run(fn, examples)
            elif name.startswith("score_"):
                result["signatures"][name] = run(fn, values)
        path = os.path.join(call["dir"], "assets.extra", "tf_serving_warmup_requests")
        if os.path.exists(path):
            for record in tf.data.TFRecordDataset(path):
                request = prediction_log_pb2.PredictionLog.FromString(
                    record.numpy()
                ).predict_log.request
                fn = signatures[request.model_spec.signature_name]
                inputs = {k: tf.make_ndarray(t) for k, t in request.inputs.items()}
                result["warmup"].append(
                    [request.model_spec.signature_name, run(fn, inputs)]
                )
        results.append(result)
    assert "keras_mtl" not in sys.modules
    print(json.dumps(results))
    """
)


def _plain(value):
    value = np.asarray(value)
    if value.dtype.kind in "OS":  # strings arrive from TF as bytes
        value = np.vectorize(lambda b: b.decode() if isinstance(b, bytes) else b)(
            value
        ).astype(object)
    return value.tolist()


def serve_in_fresh_process(calls) -> list[dict]:
    """Call `serving_default` of several SavedModels in ONE new Python that never
    imports keras_mtl, as TF Serving would.

    Each call is `{"dir": path, "inputs": {name: array}}`, optionally with
    `"refs": {name: (i, output)}` feeding an input from output `output` of
    call `i` (an earlier one), and `"examples"`: serialized tf.Examples for
    `serving_examples`. Returns, per call, `{"outputs": {name: array},
    "signature": str, "signatures": {name: outputs}, "warmup": [outputs]}`:
    `serving_default`'s outputs, the signature as `saved_model_cli show
    --tag_set serve --signature_def serving_default` prints it, the outputs of
    `serving_examples` (when given examples) and of each `score_*` signature,
    and `(signature, outputs)` of each decoded warm-up record.
    """
    payload = [
        {
            "dir": str(call["dir"]),
            "inputs": {k: _plain(v) for k, v in call.get("inputs", {}).items()},
            "refs": {k: list(v) for k, v in call.get("refs", {}).items()},
            **(
                {"examples": [e.hex() for e in call["examples"]]}
                if "examples" in call
                else {}
            ),
        }
        for call in calls
    ]
    proc = subprocess.run(
        [sys.executable, "-c", _SERVE_SCRIPT],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": ""},
        cwd="/",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.splitlines()[-1])

    def arrays(outputs: dict) -> dict:
        return {k: np.array(v) for k, v in outputs.items()}

    for result in results:
        result["outputs"] = arrays(result["outputs"])
        result["signatures"] = {k: arrays(v) for k, v in result["signatures"].items()}
        result["warmup"] = [(name, arrays(v)) for name, v in result["warmup"]]
    return results


def write_text(path, text: str):
    """Write `text` to `path`, gzipped when the name ends in `.gz`; returns `path`."""
    if str(path).endswith(".gz"):
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


def value_and_gradients(fn, inputs=(), variables=()):
    """`fn(*inputs)` (a scalar) and its gradients with respect to each of
    `inputs` (arrays, made differentiable tensors) then each of `variables`
    (Keras variables `fn` reads), on whichever Keras backend runs the tests.

    Returns `(value, gradients)` as a float and a list of NumPy arrays (zeros
    where `fn` does not depend on one)."""
    backend = keras.backend.backend()
    inputs = [np.asarray(x, "float32") for x in inputs]
    variables = list(variables)
    if backend == "tensorflow":
        xs = [tf.Variable(x) for x in inputs]
        with tf.GradientTape() as tape:
            value = fn(*xs)
        grads = tape.gradient(value, [*xs, *(v.value for v in variables)])
    elif backend == "jax":
        import jax

        def stateless(xs, values):
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                return fn(*xs)

        value, (gx, gv) = jax.value_and_grad(stateless, argnums=(0, 1))(
            [jax.numpy.asarray(x) for x in inputs], [v.value for v in variables]
        )
        grads = [*gx, *gv]
    elif backend == "torch":
        import torch

        xs = [torch.tensor(x, requires_grad=True) for x in inputs]
        value = fn(*xs)
        grads = torch.autograd.grad(
            value, [*xs, *(v.value for v in variables)], allow_unused=True
        )
    else:
        raise NotImplementedError(f"no gradients on the {backend} backend")
    shapes = [x.shape for x in inputs] + [tuple(v.shape) for v in variables]
    grads = [
        np.zeros(shape, "float32") if g is None else keras.ops.convert_to_numpy(g)
        for g, shape in zip(grads, shapes)
    ]
    return float(keras.ops.convert_to_numpy(value)), grads
