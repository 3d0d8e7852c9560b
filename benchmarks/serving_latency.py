"""Serving latency of the exported signatures, beside DeepCTR's MMoE SavedModel.

What is timed: in-process calls of a loaded SavedModel's signature,
`tf.saved_model.load(dir).signatures[name](**inputs)`, the inputs built as
tensors before any timing, at batch 1, 64 and 512 (`--batches`). TensorFlow's
thread pools are fixed first (`--intra-op-threads`, `--inter-op-threads`,
stated in the output). Contenders, all built, exported, loaded and warmed up
first, then timed in `--rounds` alternated rounds (`_harness.alternated_rounds`:
the listed order, reversed every other round); one round of a contender times
`--calls` calls at each batch, after a few untimed ones:

- `mmoe`, `ple`: `build_mmoe` / `build_ple` on census-income at the shapes of
  `mmoe_census.py` (31 string columns, embedding 4, 7 numbers; MMoE 8 experts
  x 16, towers 8; PLE 2 levels of 2 + 2 experts), `export_saved_model`'s
  `serving_default`: raw UCI strings in, looked up in the graph, every request
  checked (list lengths, widths, NaN / Inf).
- `mmoe_unchecked`: a diagnostic, the same MMoE exported without the request
  checks (the model called on the raw inputs): what the checks cost.
- `esmm`: `build_esmm` on the funnel simulator's features (`esmm_funnel.py`'s
  speed part: towers 360, 200, 80; int64 ids, a list of 10, a price).
- `dupn_encoder` (B users), `dupn_scorer` (B rows: target item and candidate
  list, the user representation given) and `dupn_request` (one request: the
  encoder on 1 user, its representation repeated, the scorer on B candidate
  movies): `export_dupn`'s two serving parts, `build_dupn` on MovieLens at
  `dupn_movielens.py`'s sizes.
- `deepctr_mmoe`: DeepCTR 0.9.4's `MMOE` at the MMoE's shapes (same parameter
  count, checked), saved by `tools/deepctr_mmoe.py` in a Keras 2 process and
  loaded here with plain TensorFlow. Its signature takes int32 vocabulary codes
  and standardised numbers, `(batch, 1)` each: the string -> code mapping and
  the scaling are done OUTSIDE its graph, here before the timing, as DeepCTR's
  examples do with scikit-learn (so its figure leaves that work out).
- `deepctr_mmoe_strings`: the same model and weights behind a signature that
  takes what ours takes (raw strings and numbers) and maps them INSIDE the
  graph, one hash table per column; no request checks.
- `floor`: a SavedModel with the MMoE's 38 inputs that only adds the numbers:
  the cost of a signature call with 38 named inputs from Python, the floor
  under every census figure.

With XLA (unless `--no-xla`): XLA cannot compile string inputs or lookup
tables ("No registered '_Arg' OpKernel for XLA_CPU_JIT ... T=DT_STRING"), and
wrapping a whole keras_mtl signature in `tf.function(jit_compile=True)`, which
compiles for int64 inputs (ESMM, DUPN), silently drops the request checks (XLA
compiles `tf.debugging.Assert` as a no-op: a NaN price gives a NaN score). So
keras_mtl's models are exported a second time with the serving graph split:
the checks and the string lookups as in `export_saved_model`, then the model on
the table rows in an inner `tf.function(jit_compile=True)` (kept in the
SavedModel, compiled when loaded). DeepCTR's code signature has neither strings
nor checks: its loaded signature is wrapped in `tf.function(jit_compile=True)`
(a concrete function of the signature's specs). DeepCTR's string model has the
split signature `serving_xla`. `floor` runs without XLA only. Every XLA variant
must give its plain variant's outputs within 1e-5, and every keras_mtl
signature the Keras model's.

The models are NOT trained (initial weights): latency does not depend on the
weights' values. Reported per contender and batch: p50, the median (min-max)
over rounds of each round's median call; p99 over all timed calls of all rounds
pooled; rows/s = batch x calls / their summed time, median (min-max) over
rounds. The targets (issue 13) are judged for MMoE against DeepCTR's code
signature, XLA against XLA and without against without.

DeepCTR needs Keras 2 (see `tools/deepctr_mmoe.py` for the install):
`--deepctr-python` (default: `$DEEPCTR_PYTHON`, else this Python if it has
`deepctr` and `tf_keras`) runs the tool in a child process into a temporary
directory, or `--deepctr-dir` names a directory the tool wrote earlier.
Without either, DeepCTR's rows are skipped.

Usage (from the repository root):

    python benchmarks/serving_latency.py --deepctr-python /work/deepctr-venv/bin/python
    python benchmarks/serving_latency.py --quick   # generated data, tiny sizes
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types
import warnings
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore", message="Gradients do not exist for variables")

try:  # `python -m benchmarks.serving_latency`, or imported by the tests
    from benchmarks import _harness as h
except ImportError:  # `python benchmarks/serving_latency.py`
    import _harness as h

h.add_repo_to_path()

TOOL = h.REPO_ROOT / "tools" / "deepctr_mmoe.py"
TOOL_META = "deepctr_mmoe.json"
MOVIELENS = h.SHARED_DATA / "movielens-100k"
CENSUS = h.SHARED_DATA / "census-income" / "census-income.test.gz"
#: key -> table label, in the order the rounds run them.
LABELS = {
    "mmoe": "keras_mtl MMoE, census (strings in)",
    "mmoe_unchecked": "keras_mtl MMoE without request checks (diagnostic)",
    "ple": "keras_mtl PLE, census (strings in)",
    "esmm": "keras_mtl ESMM, funnel (ids in)",
    "dupn_encoder": "keras_mtl DUPN user_encoder (B users)",
    "dupn_scorer": "keras_mtl DUPN scorer (B rows)",
    "dupn_request": "keras_mtl DUPN request: encoder(1) + scorer(B)",
    "deepctr_mmoe": "DeepCTR MMOE, census (codes in, mapped outside)",
    "deepctr_mmoe_strings": "DeepCTR MMOE, census (strings in, mapped inside)",
    "floor": "floor: 38-input signature that adds its numbers",
}
MODEL_CHOICES = ("mmoe", "ple", "esmm", "dupn", "deepctr", "floor")
#: (batch-1 p50 ceiling in ms, batch-1 p50 ratio ceiling, batch-512 rows/s ratio floor)
TARGET_MS, TARGET_P50_RATIO, TARGET_ROWS_RATIO = 1.0, 0.5, 1.25
WARMUP_CALLS = 3  # untimed calls per batch at the start of every round


@dataclasses.dataclass
class Served:
    """One timed thing: `calls[batch]()` makes one serving call at that batch;
    `loaded` keeps the SavedModels alive and `signature` is what is called."""

    key: str
    xla: bool
    how: str  # how XLA is applied ("none" without)
    calls: dict  # batch -> zero-argument callable
    signature: object = None
    loaded: tuple = ()

    @property
    def name(self) -> str:
        return f"{self.key}{'+xla' if self.xla else ''}"


# ----------------------------------------------------------------------------- threads


def set_threads(intra: int, inter: int) -> str:
    """Fix TensorFlow's thread pools; returns the line that states them. In a
    process whose TensorFlow runtime already started (a test), the pools cannot
    change any more: the line then says so and gives the values in effect."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra)
        tf.config.threading.set_inter_op_parallelism_threads(inter)
        note = "set before TensorFlow started"
    except RuntimeError:
        note = "NOT set: TensorFlow had started already; values in effect"
    got = (
        tf.config.threading.get_intra_op_parallelism_threads(),
        tf.config.threading.get_inter_op_parallelism_threads(),
    )
    shown = [f"{v}" if v else "0 (TensorFlow's default: one per core)" for v in got]
    return f"- threads: intra-op {shown[0]}, inter-op {shown[1]} ({note})"


# ----------------------------------------------------------------------------- exports


def load_signature(path, name: str = "serving_default"):
    """`(loaded, signature)`: keep `loaded` alive while the signature is used."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    return loaded, loaded.signatures[name]


def export_variant(model, path: Path, *, checks: bool = True, xla: bool = False):
    """`model`'s `serving_default` as `export_saved_model` builds it, with the
    request checks or without (`checks=False`), and with the model after the
    string lookups in an inner `tf.function(jit_compile=True)` (`xla=True`)."""
    import keras
    import tensorflow as tf

    from keras_mtl.models import MultiTaskModel
    from keras_mtl.models._host_lookups import rows_of
    from keras_mtl.serving.signatures import _checked, serving_inputs

    if xla and not isinstance(model, MultiTaskModel):
        # DUPN's serving parts are plain functional models, which cast every
        # input to its declared dtype (int32 rows back to strings): the same
        # graph as a MultiTaskModel takes the rows of its string inputs.
        model = MultiTaskModel(model.input, model.output, name=model.name)
    specs = serving_inputs(model)
    hosted = getattr(model, "hosted_lookups", None)

    def call(x):
        return model(x, training=False)

    core = tf.function(call, jit_compile=True) if xla else call

    def predict(inputs):
        x = {
            n: _checked(s, inputs[n]) if checks else inputs[n] for n, s in specs.items()
        }
        if xla and hosted:
            x = rows_of(hosted, x)  # strings -> table rows, outside XLA
        return dict(core(x))

    raw = {
        n: tf.TensorSpec(s.signature_shape, tf.as_dtype(s.dtype), name=n)
        for n, s in specs.items()
    }
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(name="serving_default", fn=predict, input_signature=[raw])
    archive.write_out(str(path), verbose=False)
    return path


def jit_wrapped(signature):
    """The loaded `signature` inside `tf.function(jit_compile=True)`, as a
    concrete function of the signature's own input specs."""
    import tensorflow as tf

    specs = signature.structured_input_signature[1]
    wrapped = tf.function(lambda **x: signature(**x), jit_compile=True)
    return wrapped.get_concrete_function(**specs)


def max_gap(a: dict, b: dict) -> float:
    import numpy as np

    return max(
        float(np.max(np.abs(np.reshape(a[k], -1) - np.reshape(b[k], -1)))) for k in a
    )


def check_close(what: str, a: dict, b: dict, tolerance: float = 1e-5) -> None:
    gap = max_gap(a, b)
    if not gap <= tolerance:
        raise AssertionError(f"{what}: outputs differ by {gap:.2e} (> {tolerance}).")


# ----------------------------------------------------------------------------- data


def rows(frame, batch: int):
    """The first `batch` rows of `frame`, repeated when it has fewer."""
    import numpy as np

    return frame.iloc[np.resize(np.arange(len(frame)), batch)].reset_index(drop=True)


def keras_inputs(frame, features, batch: int) -> dict:
    """`serving_default`'s inputs for `batch` rows, as `make_dataset` gives them."""
    import keras_mtl as km

    ds = km.data.make_dataset(
        rows(frame, batch), features, batch_size=batch, shuffle=False
    )
    return dict(next(iter(ds)))


def census_data(args):
    """`(frame, features, tasks, description)` of census-income."""
    try:
        from benchmarks import _census_models as cm
    except ImportError:
        import _census_models as cm

    if args.quick and args.data_path == CENSUS:
        frame, features, tasks = cm.census_like_frame(rows=600)
        return frame, features, tasks, "GENERATED census-shaped frame (--quick)"
    rows_wanted = 20_000 if args.data_path.exists() else None
    frame, features, tasks, source = cm.load_data(args.data_path, rows_wanted)
    return frame, features, tasks, source


# ----------------------------------------------------------------------------- contenders


def _bound(fn, x: dict) -> Callable:
    return lambda: fn(**x)


def keras_served(key, model, inputs_of, batches, tmp, xla_modes, checks=True):
    """`Served` for a keras_mtl model, one per XLA mode: `export_saved_model`
    (or `export_variant`), loaded; each signature checked against the model."""
    import keras_mtl as km

    out = []
    for xla in xla_modes:
        path = Path(tmp) / f"{key}{'_xla' if xla else ''}"
        if xla or not checks:
            export_variant(model, path, checks=checks, xla=xla)
        else:
            path = km.export_saved_model(model, path)
        loaded, signature = load_signature(path)
        calls = {}
        for batch in batches:
            x = inputs_of(batch)
            check_close(
                f"{key} batch {batch}", signature(**x), model(x, training=False)
            )
            calls[batch] = _bound(signature, x)
        how = "split export: model after checks + lookups in jit_compile"
        out.append(
            Served(key, xla, how if xla else "none", calls, signature, (loaded,))
        )
    return out


def census_contenders(frame, features, tasks, args, tmp, xla_modes):
    try:
        from benchmarks import _census_models as cm
    except ImportError:
        import _census_models as cm

    def inputs_of(batch):
        return keras_inputs(frame, features, batch)

    served, params = [], {}
    batches = args.batches
    if "mmoe" in args.models:
        mmoe = cm.keras_mtl_mmoe(features, tasks)
        params["mmoe"] = cm.trainable_count(mmoe)
        served += keras_served("mmoe", mmoe, inputs_of, batches, tmp, xla_modes)
        served += keras_served(
            "mmoe_unchecked", mmoe, inputs_of, batches, tmp, xla_modes, checks=False
        )
    if "ple" in args.models:
        ple = cm.keras_mtl_ple(features, tasks)
        params["ple"] = cm.trainable_count(ple)
        served += keras_served("ple", ple, inputs_of, batches, tmp, xla_modes)
    return served, params


def esmm_contenders(args, tmp, xla_modes):
    import keras_mtl as km

    funnel = km.datasets.make_funnel(num_impressions=2048, seed=0)
    tasks = [km.Task("ctr", label="click"), km.Task("ctcvr", label="conversion")]
    towers = (16,) if args.quick else (360, 200, 80)
    model = km.build_esmm(funnel.features, tasks, tower_units=towers)

    def inputs_of(batch):
        return keras_inputs(funnel.frame, funnel.features, batch)

    served = keras_served("esmm", model, inputs_of, args.batches, tmp, xla_modes)
    return served, f"towers {towers}"


def movielens(args, tmp):
    """`(ml, description)`: MovieLens-100K, or the tests' generated look-alike."""
    from keras_mtl.datasets import load_movielens

    max_len = 8 if args.quick else 50
    path = args.movielens_path
    if args.quick or not path.exists():
        spec = importlib.util.spec_from_file_location(
            "movielens_fixture", h.REPO_ROOT / "tests" / "movielens_fixture.py"
        )
        fixture = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(fixture)
        path = fixture.write_movielens(Path(tmp) / "ml-100k", seed=0)
        source = "GENERATED MovieLens look-alike (tests/movielens_fixture.py)"
    else:
        source = f"`{path}`"
    ml = load_movielens(path, max_len=max_len, seed=0)
    return ml, f"{source}, history max_len {max_len}"


def dupn_contenders(ml, args, tmp, xla_modes):
    """The DUPN encoder, scorer and one request (see the module docstring)."""
    import numpy as np
    import tensorflow as tf

    from keras_mtl.serving import dupn_serving_models

    try:
        from benchmarks import _dupn_contenders as dc
    except ImportError:
        import _dupn_contenders as dc

    width = 8 if args.quick else 64
    sizes = types.SimpleNamespace(
        units=width,
        profile_units=width,
        attention_units=width,
        tower_units=(width,),
        learning_rate=1e-3,
    )
    model, _ = dc.build("dupn", ml, sizes)
    encoder, scorer = dupn_serving_models(model)
    test = ml.test
    user_names = [t.name for t in encoder.inputs]
    rest = [t.name for t in scorer.inputs if t.name != "user_representation"]

    def take(names, batch):
        index = np.resize(np.arange(len(test["item"])), batch)
        return {k: tf.constant(test[k][index]) for k in names}

    def scorer_inputs(batch):
        user = encoder(take(user_names, batch), training=False)
        return {**take(rest, batch), **user}

    def request_inputs(batch):
        """One user; `batch` candidate movies as target items (the movies of
        the test candidate lists), the request's candidate list repeated."""
        one = take(user_names + rest, 1)
        genres = test["candidates_genres"].reshape(-1, test["genres"].shape[-1])
        candidate = {
            "item": np.resize(test["candidates_item"].reshape(-1), batch),
            "genres": genres[np.resize(np.arange(len(genres)), batch)],
            "year": np.resize(test["candidates_year"].reshape(-1), batch),
        }
        items = {
            k: tf.constant(candidate[k])
            if k in candidate
            else tf.repeat(one[k], batch, axis=0)
            for k in rest
        }
        return {k: one[k] for k in user_names}, items

    encoders = keras_served(
        "dupn_encoder",
        encoder,
        lambda b: take(user_names, b),
        args.batches,
        tmp,
        xla_modes,
    )
    scorers = keras_served(
        "dupn_scorer", scorer, scorer_inputs, args.batches, tmp, xla_modes
    )
    requests = []
    for enc, sco in zip(encoders, scorers):
        calls = {}
        for batch in args.batches:
            user_x, item_x = request_inputs(batch)
            call = _request(enc.signature, sco.signature, user_x, item_x, batch)
            tiled = {k: tf.repeat(v, batch, axis=0) for k, v in user_x.items()}
            full = model({**tiled, **item_x}, training=False)
            check_close(f"dupn_request batch {batch}", call(), full)
            calls[batch] = call
        loaded = enc.loaded + sco.loaded
        requests.append(Served("dupn_request", enc.xla, enc.how, calls, None, loaded))
    sizes = f"units {width}, profile {width}, attention {width}, towers ({width},)"
    return encoders + scorers + requests, sizes


def _request(encoder, scorer, user_x, item_x, batch):
    import tensorflow as tf

    def call():
        user = encoder(**user_x)["user_representation"]
        return scorer(user_representation=tf.tile(user, [batch, 1]), **item_x)

    return call


# ----------------------------------------------------------------------------- DeepCTR


def deepctr_importable() -> bool:
    return all(importlib.util.find_spec(m) for m in ("deepctr", "tf_keras"))


def deepctr_python(args) -> str | None:
    """The Python that runs `tools/deepctr_mmoe.py`, or None."""
    if args.deepctr_python:
        return args.deepctr_python
    if os.environ.get("DEEPCTR_PYTHON"):
        return os.environ["DEEPCTR_PYTHON"]
    return sys.executable if deepctr_importable() else None


def census_spec(features, tasks) -> dict:
    """What `tools/deepctr_mmoe.py` builds DeepCTR's model from."""
    import keras_mtl as km

    return {
        "sparse": {
            f.name: list(f.vocabulary)
            for f in features
            if isinstance(f, km.SparseFeature)
        },
        "dense": {
            f.name: [f.mean, f.std] for f in features if isinstance(f, km.DenseFeature)
        },
        "tasks": [t.name for t in tasks],
    }


def make_deepctr(python: str, features, tasks, out: Path, quick: bool) -> Path:
    """Run `tools/deepctr_mmoe.py` with `python` into `out`."""
    spec = out / "spec.json"
    out.mkdir(parents=True, exist_ok=True)
    spec.write_text(json.dumps(census_spec(features, tasks)))
    command = [python, str(TOOL), "--spec", str(spec), "--out", str(out)]
    if quick:
        command += ["--experts", "2", "--expert-units", "4", "--tower-units", "4"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(
            f"{TOOL.name} failed ({done.returncode}):\n{done.stderr[-3000:]}"
        )
    return out


def deepctr_contenders(directory: Path, frame, features, batches, xla_modes):
    """DeepCTR's code and string signatures (see the module docstring)."""
    import numpy as np
    import tensorflow as tf

    meta = json.loads((directory / TOOL_META).read_text())
    spec = meta["spec"]

    def codes_of(batch):
        part = rows(frame, batch)
        x = {}
        for name, vocabulary in spec["sparse"].items():
            code = {v: i for i, v in enumerate(vocabulary)}
            values = [code.get(v, len(vocabulary)) for v in part[name]]
            x[name] = tf.constant(np.array(values, np.int32).reshape(-1, 1))
        for name, (mean, std) in spec["dense"].items():
            scaled = (part[name].to_numpy(np.float64) - mean) / std
            x[name] = tf.constant(scaled.astype(np.float32).reshape(-1, 1))
        return x

    def strings_of(batch):
        part = rows(frame, batch)
        x = {n: tf.constant(part[n].to_numpy().astype(str)) for n in spec["sparse"]}
        x.update({n: tf.constant(part[n].to_numpy(np.float32)) for n in spec["dense"]})
        return x

    codes_loaded, codes = load_signature(directory / "codes" / "1")
    strings_loaded = tf.saved_model.load(str(directory / "strings" / "1"))
    out = []
    reference = {}
    for xla in xla_modes:
        fn = jit_wrapped(codes) if xla else codes
        calls = {}
        for batch in batches:
            x = codes_of(batch)
            y = fn(**x)
            reference.setdefault(batch, y)
            check_close(f"deepctr_mmoe batch {batch}", y, reference[batch])
            calls[batch] = _bound(fn, x)
        how = "loaded signature wrapped in jit_compile" if xla else "none"
        out.append(Served("deepctr_mmoe", xla, how, calls, fn, (codes_loaded,)))
    for xla in xla_modes:
        fn = strings_loaded.signatures["serving_xla" if xla else "serving_default"]
        calls = {}
        for batch in batches:
            x = strings_of(batch)
            check_close(
                f"deepctr_mmoe_strings batch {batch}", fn(**x), reference[batch]
            )
            calls[batch] = _bound(fn, x)
        how = "split signature: model after lookups in jit_compile" if xla else "none"
        served = Served("deepctr_mmoe_strings", xla, how, calls, fn, (strings_loaded,))
        out.append(served)
    return out, meta


# ----------------------------------------------------------------------------- floor


def floor_contender(frame, features, batches, tmp):
    """A SavedModel with the census inputs that only adds its numbers."""
    import tensorflow as tf

    import keras_mtl as km

    specs = {
        f.name: tf.TensorSpec(
            (None,),
            tf.string if isinstance(f, km.SparseFeature) else tf.float32,
            name=f.name,
        )
        for f in features
    }
    numbers = [f.name for f in features if isinstance(f, km.DenseFeature)]

    @tf.function(input_signature=[specs])
    def serve(inputs):
        return {"sum": tf.add_n([inputs[n] for n in numbers])}

    module = tf.Module()
    module.serve = serve
    path = Path(tmp) / "floor"
    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})
    loaded, signature = load_signature(path)
    calls = {b: _bound(signature, keras_inputs(frame, features, b)) for b in batches}
    return [Served("floor", False, "none", calls, signature, (loaded,))]


# ----------------------------------------------------------------------------- timing


def contender(served: Served, calls: dict) -> h.Contender:
    """A harness contender: one run times `calls[batch]` calls per batch."""

    def run() -> h.Run:
        times = {}
        with h.OtherCpuMeter() as others:
            for batch, fn in served.calls.items():
                times[batch] = h.time_calls(fn, calls[batch], warmup=WARMUP_CALLS)
        examples = sum(b * len(t) for b, t in times.items())
        seconds = sum(sum(t) for t in times.values()) / 1000.0
        return h.Run(examples, seconds, others.cores, metrics={"ms": times})

    return h.Contender(served.name, LABELS[served.key], run)


def cell(served: Served, runs, batch: int) -> dict:
    """p50 per round, p99 pooled and rows/s per round of one batch."""
    rounds = [r.metrics["ms"][batch] for r in runs]
    pooled = [t for ms in rounds for t in ms]
    return {
        "p50": [statistics.median(ms) for ms in rounds],
        "p99": h.percentile(pooled, 99),
        "rows_s": [batch * len(ms) * 1000.0 / sum(ms) for ms in rounds],
        "calls": len(pooled),
    }


def results_table(served_list, runs, batches) -> tuple[str, dict]:
    header = ["contender", "key", "XLA", "batch", "p50 ms, median (min–max)"]
    header += ["p99 ms (all calls)", "rows/s, median (min–max)", "calls"]
    table, cells = [], {}
    for served in served_list:
        for batch in batches:
            c = cell(served, runs[served.name], batch)
            cells[served.name, batch] = c
            table.append(
                [
                    LABELS[served.key],
                    f"`{served.name}`",
                    "yes" if served.xla else "no",
                    batch,
                    h.spread(c["p50"], "{:.3f}"),
                    f"{c['p99']:.3f}",
                    h.spread(c["rows_s"], "{:,.0f}"),
                    c["calls"],
                ]
            )
    return h.markdown_table(header, table), cells


def target_lines(cells, batches, xla_modes) -> list[str]:
    """The issue's targets for MMoE on census, against DeepCTR's code signature
    (and, for information, its string signature)."""
    lines = []
    small, large = min(batches), max(batches)
    for xla in xla_modes:
        suffix = "+xla" if xla else ""
        ours = cells.get((f"mmoe{suffix}", small))
        if ours is None:
            continue
        p50 = statistics.median(ours["p50"])
        mode = "with XLA" if xla else "without XLA"
        ok = "meets" if p50 <= TARGET_MS else "MISSES"
        lines.append(
            f"- MMoE {mode}, batch-{small} p50 {p50:.3f} ms — {ok} the "
            f"≤ {TARGET_MS:.1f} ms target"
        )
        for theirs in ("deepctr_mmoe", "deepctr_mmoe_strings"):
            other = cells.get((f"{theirs}{suffix}", small))
            if other is None:
                continue
            ratio = p50 / statistics.median(other["p50"])
            judged = "" if theirs == "deepctr_mmoe" else " (information only)"
            ok = "meets" if ratio <= TARGET_P50_RATIO else "MISSES"
            lines.append(
                f"- MMoE / `{theirs}{suffix}` batch-{small} p50: {ratio:.2f} — {ok} "
                f"the ≤ {TARGET_P50_RATIO} target{judged}"
            )
            mine = cells.get((f"mmoe{suffix}", large))
            them = cells.get((f"{theirs}{suffix}", large))
            if mine and them:
                ratio = statistics.median(mine["rows_s"]) / statistics.median(
                    them["rows_s"]
                )
                lines.append(
                    f"- MMoE / `{theirs}{suffix}` batch-{large} rows/s: {ratio:.2f} — "
                    f"{h.verdict(ratio, TARGET_ROWS_RATIO)} the ≥ {TARGET_ROWS_RATIO} "
                    f"target{judged}"
                )
    return lines


# ----------------------------------------------------------------------------- main


def _int_list(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data-path",
        type=Path,
        default=CENSUS,
        help="census-income file; a generated census-shaped frame when absent "
        "(its first 20,000 rows' seeded sample otherwise). Default: %(default)s",
    )
    parser.add_argument(
        "--movielens-path",
        type=Path,
        default=MOVIELENS,
        help="ml-100k directory; the generated look-alike when absent. "
        "Default: %(default)s",
    )
    parser.add_argument("--batches", type=_int_list, default=[1, 64, 512])
    parser.add_argument(
        "--calls",
        type=_int_list,
        default=None,
        help="timed calls per round for each batch (default 200,100,40; --quick 5)",
    )
    parser.add_argument("--rounds", type=int, default=None, help="(5; --quick 2)")
    parser.add_argument("--intra-op-threads", type=int, default=h.usable_cpus())
    parser.add_argument("--inter-op-threads", type=int, default=h.usable_cpus())
    parser.add_argument(
        "--models",
        type=lambda s: [m for m in s.split(",") if m],
        default=list(MODEL_CHOICES),
        help=f"subset of {','.join(MODEL_CHOICES)} (default: all)",
    )
    parser.add_argument("--no-xla", action="store_true", help="skip the XLA variants")
    parser.add_argument(
        "--deepctr-dir",
        "--deepctr_dir",
        type=Path,
        default=None,
        help="a directory written by tools/deepctr_mmoe.py (codes/, strings/, "
        f"{TOOL_META})",
    )
    parser.add_argument(
        "--deepctr-python",
        default=None,
        help="a Python with deepctr + tf_keras that runs tools/deepctr_mmoe.py "
        "(default: $DEEPCTR_PYTHON, else this Python if it has them)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: generated data, tiny models, 2 rounds of 5 calls",
    )
    args = parser.parse_args(argv)
    unknown = set(args.models) - set(MODEL_CHOICES)
    if unknown:
        parser.error(f"--models: unknown {sorted(unknown)}")
    if args.rounds is None:
        args.rounds = 2 if args.quick else 5
    if args.calls is None:
        args.calls = [5] * len(args.batches) if args.quick else [200, 100, 40]
    if len(args.calls) == 1:
        args.calls = args.calls * len(args.batches)
    if len(args.calls) != len(args.batches):
        parser.error("--calls: one count, or one per batch")
    if min(args.batches + args.calls + [args.rounds]) < 1:
        parser.error("--batches, --calls and --rounds must be positive")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    threads = set_threads(args.intra_op_threads, args.inter_op_threads)

    import keras_mtl as km

    print("# Serving latency of the exported signatures\n")
    print(f"- date: {datetime.date.today().isoformat()}")
    for line in h.machine_lines():
        print(line)
    print(threads)
    print(f"- keras_mtl {km.__version__} from `{Path(km.__file__).parent}`")
    xla_modes = [False] if args.no_xla else [False, True]
    calls = dict(zip(args.batches, args.calls))
    served, notes = [], []
    with tempfile.TemporaryDirectory(prefix="serving_latency_") as tmp:
        census_needed = {"mmoe", "ple", "deepctr", "floor"} & set(args.models)
        if census_needed:
            frame, features, tasks, source = census_data(args)
            notes.append(f"- census: {source}; {len(frame):,} rows feed the requests")
            found, params = census_contenders(
                frame, features, tasks, args, tmp, xla_modes
            )
            served += found
            for key, count in params.items():
                notes.append(f"- `{key}`: {count:,} trainable parameters, untrained")
        if "esmm" in args.models:
            found, sizes = esmm_contenders(args, tmp, xla_modes)
            served += found
            notes.append(
                f"- `esmm`: make_funnel(num_impressions=2048, seed=0), {sizes}"
            )
        if "dupn" in args.models:
            ml, source = movielens(args, tmp)
            found, sizes = dupn_contenders(ml, args, tmp, xla_modes)
            served += found
            notes.append(f"- `dupn_*`: {source}; {sizes}, untrained")
        if "deepctr" in args.models:
            directory = args.deepctr_dir
            python = deepctr_python(args)
            if directory is None and python is not None:
                begin = time.perf_counter()
                directory = make_deepctr(
                    python, features, tasks, Path(tmp) / "deepctr", args.quick
                )
                notes.append(
                    f"- DeepCTR SavedModels written by `{TOOL.relative_to(h.REPO_ROOT)}` "
                    f"with `{python}` in {time.perf_counter() - begin:.0f} s"
                )
            if directory is None:
                notes.append(
                    "- DeepCTR skipped: no --deepctr-dir / --deepctr-python, and "
                    "this Python has no deepctr + tf_keras (see tools/deepctr_mmoe.py)"
                )
            else:
                found, meta = deepctr_contenders(
                    directory, frame, features, args.batches, xla_modes
                )
                served += found
                notes.append(
                    f"- `deepctr_mmoe`: DeepCTR {meta['deepctr']} (tf_keras "
                    f"{meta['tf_keras']}), {meta['parameters']:,} parameters, "
                    f"{meta['experts']} experts x {meta['expert_units']}, towers "
                    f"{meta['tower_units']}, untrained; from `{directory}`"
                )
        if "floor" in args.models:
            served += floor_contender(frame, features, args.batches, tmp)
        for line in notes:
            print(line)
        print(
            f"- timing: {args.rounds} alternated rounds; per round and batch "
            f"{WARMUP_CALLS} untimed calls, then "
            + ", ".join(f"{calls[b]} at batch {b}" for b in args.batches)
            + "; all contenders exported, loaded and warmed up (XLA compiled) first"
        )
        print(
            f"- setup (data, models, exports, loads, checks): "
            f"{time.perf_counter() - start:.0f} s"
        )
        contenders = [contender(s, calls) for s in served]
        for s in served:  # warm-up: every batch once more (XLA compiles here)
            for fn in s.calls.values():
                fn()
        print("\n## Rounds (in execution order)\n", flush=True)
        runs = h.alternated_rounds(contenders, args.rounds)

    table, cells = results_table(served, runs, args.batches)
    print("\n## Latency per signature call\n")
    print(table)
    print("\n## Targets (issue 13, MMoE on census, against DeepCTR's code signature)\n")
    lines = target_lines(cells, args.batches, xla_modes)
    print("\n".join(lines) if lines else "- not judged: DeepCTR or MMoE not run")
    h.warn_if_disturbed(runs)
    print(
        f"\n- total {time.perf_counter() - start:.0f} s; load average at end: "
        f"{h.load_average()}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
