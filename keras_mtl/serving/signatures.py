"""The exported signatures: named here, built from the model's inputs and specs.

Every export has:

- `serving_default`: one tensor per model input, named after it, with its raw
  dtype -> one tensor per task.
- `serving_examples`: a batch of serialized `tf.Example` protos (input
  `examples`) -> the same outputs, parsed with the same rules.
- `ranking_score` (when a `RankingScore` is given at export): the raw inputs ->
  the fused score alone; the other two signatures then return it as an extra
  output of the same name.

The serving graph checks each request before the model sees it, and a bad one
fails with an error that names the input (an `InvalidArgumentError`, which TF
Serving returns as the request's error):

- id lists and behaviour sequences may be shorter than the model's length and
  are padded at the end with the padding value (-1 / ""); a longer list is an
  error (which end to drop is the caller's choice, not ours);
- a dense feature must have its width, and NaN only where its
  `DenseFeature(allow_missing=True)` lets the model fill it; Inf never.

Dtypes are the signature's: TF Serving checks them before the graph runs (REST
converts JSON numbers to the signature's dtype; a gRPC tensor of another dtype
is refused), which is why `keras_mtl.serving`'s clients coerce values from the
signature.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping

import keras

from keras_mtl._keras_compat import nested_layers
from keras_mtl.features import (
    FLOAT_PAD,
    INT_PAD,
    STRING_PAD,
    DenseFeature,
    SparseFeature,
)

#: The signatures of an export, by role.
SERVING_DEFAULT = "serving_default"
SERVING_EXAMPLES = "serving_examples"
RANKING_SCORE = "ranking_score"
SIGNATURES = (SERVING_DEFAULT, SERVING_EXAMPLES, RANKING_SCORE)
#: The input of `serving_examples`: a batch of serialized tf.Example protos.
EXAMPLES_INPUT = "examples"


@dataclasses.dataclass(frozen=True)
class ServingInput:
    """One input of the serving signatures, as the graph checks it.

    Args:
        name: str. The model input (feature) name.
        dtype: str. "int64", "string" or "float32".
        shape: tuple of int. The model's per-example shape.
        allow_missing: bool. NaN marks a missing value (float inputs of a
            `DenseFeature(allow_missing=True)`). Defaults to False.
        ids: bool. Ids or raw categorical values (strings, integer ids, the
            numbers of a bucketised `SparseFeature`): lists may be shorter than
            the model's and are padded; None means every int64 or string input.
            Defaults to None.
        domain_floor: float or None. Values must lie above it (a
            `DenseFeature` whose `transform` the graph applies, e.g. > 0 for a
            log). Defaults to None.
    """

    name: str
    dtype: str
    shape: tuple
    allow_missing: bool = False
    ids: bool | None = None
    domain_floor: float | None = None

    def __post_init__(self):
        if self.ids is None:
            object.__setattr__(self, "ids", self.dtype != "float32")

    @property
    def is_ids(self) -> bool:
        return self.ids

    @property
    def pad(self):
        """Padding value of an id input (what a missing id or list slot is):
        -1, "" or NaN (the numbers of a float32 bucketised feature)."""
        if self.dtype == "string":
            return STRING_PAD
        return FLOAT_PAD if self.dtype == "float32" else INT_PAD

    @property
    def signature_shape(self) -> tuple:
        """The batch, then every per-example axis of any length (the graph
        pads id lists and checks dense widths, naming the input)."""
        return (None,) + (None,) * len(self.shape)

    def to_json(self) -> dict:
        pad = {}
        if self.is_ids:  # (NaN is no JSON number)
            pad = {"pad": "NaN" if self.dtype == "float32" else self.pad}
        above = {} if self.domain_floor is None else {"above": self.domain_floor}
        return {
            "dtype": self.dtype,
            "shape": list(self.shape),
            "allow_missing": self.allow_missing,
            **pad,
            **above,
        }


def input_specs(model: keras.Model) -> dict:
    """`{model input name: the Feature spec it was built from}`, as far as the
    model's encoders tell: `FeatureEncoder.features` by name, and the fields
    of a `FieldEmbedding` by the input tensor each call reads (a sequence
    field's input is named `<sequence>_<field>`), also through nested
    functional models."""
    from keras_mtl._graph import model_nodes

    inputs = {id(t): t.name for t in model.inputs}
    found = {}
    for layer in nested_layers(model):
        for spec in getattr(layer, "features", ()):
            found[spec.name] = spec
    for node in model_nodes(model.outputs):
        operation = node.operation
        if isinstance(operation, keras.Model) and operation is not model:
            # A nested functional model (DUPN scorer's item part): the specs
            # of its inputs, for the tensors it is called on.
            inner = input_specs(operation)
            fields = [inner.get(t.name) for t in operation.inputs]
        else:
            fields = getattr(operation, "fields", None)
        if not fields or len(fields) != len(node.input_tensors):
            continue
        for tensor, spec in zip(node.input_tensors, fields):
            if id(tensor) in inputs and spec is not None:
                found.setdefault(inputs[id(tensor)], spec)
    return found


def serving_inputs(model: keras.Model) -> dict[str, ServingInput]:
    """`{input name: ServingInput}` of `model`, in input order.

    The dtype and shape are the model input's; from the input's spec
    (`input_specs`), `allow_missing` of a `DenseFeature`, and whether a
    float32 input is a bucketised `SparseFeature` (then NaN is "no value" and
    lists are padded). A float input without a spec, such as DUPN's
    `user_representation`, must be finite.
    """
    specs = input_specs(model)
    found = {}
    for tensor in model.inputs:
        dtype = keras.backend.standardize_dtype(tensor.dtype)
        if dtype not in ("int64", "string", "float32"):
            raise ValueError(
                f"export: input {tensor.name!r} has dtype {dtype}; the serving "
                "signatures take int64 ids, strings and float32 values."
            )
        spec = specs.get(tensor.name)
        found[tensor.name] = ServingInput(
            tensor.name,
            dtype,
            tuple(tensor.shape[1:]),
            allow_missing=isinstance(spec, DenseFeature) and spec.allow_missing,
            ids=dtype != "float32" or isinstance(spec, SparseFeature),
            domain_floor=spec.domain_floor if isinstance(spec, DenseFeature) else None,
        )
    return found


@dataclasses.dataclass(frozen=True)
class RankingScore:
    """A ranking score fused from task outputs, fixed at export.

    - `combine="product"`: `score = prod_k output_k ** weights[k]` (e.g.
      `ctr^a * cvr^b`, the expected conversions per impression for a = b = 1);
    - `combine="sum"`: `score = sum_k weights[k] * f_k(output_k)` with
      `f_k = transforms.get(k, "identity")`, one of "identity", "log1p" (e.g.
      `w1 * ctr + w2 * log(1 + duration)`, as ranking services fuse CTR with
      watch time) or "log".

    The fused outputs must have one shape (per example, or per candidate of a
    list); a multiclass output cannot be fused.

    Args:
        weights: dict of task name to float exponent / weight.
        combine: "product" or "sum". Defaults to "product".
        transforms: dict of task name to transform ("sum" only). Defaults to none.

    Example:
    >>> RankingScore({"ctr": 1.0, "cvr": 0.5}).formula
    'ctr^1 * cvr^0.5'
    >>> RankingScore({"ctr": 1.0, "time": 0.2}, "sum", {"time": "log1p"}).formula
    '1*ctr + 0.2*log1p(time)'
    """

    weights: Mapping[str, float]
    combine: str = "product"
    transforms: Mapping[str, str] = dataclasses.field(default_factory=dict)

    TRANSFORMS = ("identity", "log1p", "log")

    def __post_init__(self):
        weights = dict(self.weights) if isinstance(self.weights, Mapping) else None
        if not weights:
            raise ValueError(
                "RankingScore: weights must be a non-empty dict of task name to "
                f"number; got {self.weights!r}."
            )
        for name, weight in weights.items():
            if isinstance(weight, bool) or not isinstance(weight, (int, float)):
                raise ValueError(
                    f"RankingScore: weight of {name!r} must be a number; got "
                    f"{weight!r}."
                )
            if not math.isfinite(weight):
                raise ValueError(f"RankingScore: weight of {name!r} is {weight}.")
        if self.combine not in ("product", "sum"):
            raise ValueError(
                f"RankingScore: combine must be 'product' or 'sum'; got "
                f"{self.combine!r}."
            )
        transforms = dict(self.transforms)
        if transforms and self.combine != "sum":
            raise ValueError(
                "RankingScore: transforms apply to combine='sum' only; got "
                f"{transforms} with combine={self.combine!r}."
            )
        for name, transform in transforms.items():
            if name not in weights:
                raise ValueError(
                    f"RankingScore: transform for {name!r}, which has no weight; "
                    f"weights are for {sorted(weights)}."
                )
            if transform not in self.TRANSFORMS:
                raise ValueError(
                    f"RankingScore: transform of {name!r} must be one of "
                    f"{list(self.TRANSFORMS)}; got {transform!r}."
                )
        object.__setattr__(self, "weights", {k: float(v) for k, v in weights.items()})
        object.__setattr__(self, "transforms", transforms)

    @property
    def formula(self) -> str:
        """The score as text (recorded beside the export)."""
        if self.combine == "product":
            return " * ".join(f"{k}^{w:g}" for k, w in self.weights.items())
        terms = []
        for k, w in self.weights.items():
            f = self.transforms.get(k, "identity")
            terms.append(f"{w:g}*{k}" if f == "identity" else f"{w:g}*{f}({k})")
        return " + ".join(terms)

    def check(self, model: keras.Model) -> None:
        """Every weighted task is a fusable output of `model`."""
        outputs = model.output if isinstance(model.output, dict) else {}
        unknown = [k for k in self.weights if k not in outputs]
        if unknown:
            raise ValueError(
                f"RankingScore: {unknown} are not outputs of model "
                f"{model.name!r}; its outputs are {sorted(outputs)}."
            )
        if RANKING_SCORE in outputs:
            raise ValueError(
                f"RankingScore: model {model.name!r} already has an output named "
                f"{RANKING_SCORE!r}; rename that task to add a ranking score."
            )
        shapes = {k: tuple(outputs[k].shape[1:]) for k in self.weights}
        if len(set(shapes.values())) > 1:
            raise ValueError(
                "RankingScore: the fused outputs must have one shape; got "
                f"{shapes} (a multiclass output cannot be fused)."
            )

    def __call__(self, outputs: dict):
        """The score from a dict of output tensors (TensorFlow, in the graph)."""
        import tensorflow as tf

        if self.combine == "product":
            score = None
            for k, w in self.weights.items():
                term = tf.pow(outputs[k], w)
                score = term if score is None else score * term
            return score
        fns = {"identity": tf.identity, "log1p": tf.math.log1p, "log": tf.math.log}
        return tf.add_n(
            [
                w * fns[self.transforms.get(k, "identity")](outputs[k])
                for k, w in self.weights.items()
            ]
        )

    def to_json(self) -> dict:
        return {
            "formula": self.formula,
            "combine": self.combine,
            "weights": self.weights,
            "transforms": self.transforms,
        }

    @classmethod
    def from_json(cls, record: Mapping | str) -> RankingScore:
        """The score of a `to_json` record (a dict, or its JSON text), e.g. as
        edited by hand for a business period: `weights` (with `combine` and
        `transforms`), or a `formula` alone. A record with both must agree
        (edit one and drop the other).

        Example:
        >>> RankingScore.from_json('{"formula": "0.3*ctr + 0.7*ctcvr"}').weights
        {'ctr': 0.3, 'ctcvr': 0.7}
        """
        import json

        if isinstance(record, str):
            record = json.loads(record)
        if not isinstance(record, Mapping):
            raise ValueError(
                f"RankingScore.from_json: expected a dict or its JSON text; got "
                f"{record!r}."
            )
        if "weights" not in record:
            if "formula" not in record:
                raise ValueError(
                    "RankingScore.from_json: the record needs 'weights' or "
                    f"'formula'; got keys {sorted(record)}."
                )
            return cls.from_formula(record["formula"])
        score = cls(
            record["weights"],
            record.get("combine", "product"),
            record.get("transforms") or {},
        )
        written = record.get("formula")
        if written is not None and cls.from_formula(written).formula != score.formula:
            raise ValueError(
                f"RankingScore.from_json: formula {written!r} and "
                f"weights {dict(record['weights'])} disagree (that is "
                f"{score.formula!r}); edit one and drop the other."
            )
        return score

    @classmethod
    def from_formula(cls, text: str) -> RankingScore:
        """The score whose `formula` is `text`: `"ctr^1 * cvr^0.5"` (product)
        or `"1*ctr + 0.2*log1p(time)"` (sum; `log1p(...)` / `log(...)` name a
        transform), spaces optional.

        Example:
        >>> RankingScore.from_formula("0.9*ctr + 0.1*log1p(time)").transforms
        {'time': 'log1p'}
        """
        text = str(text)
        combine = "product" if "^" in text else "sum"
        weights, transforms, position, sign = {}, {}, 0, 1.0
        while True:
            match = _FORMULA_TERM[combine].match(text, position)
            if match is None:
                raise ValueError(
                    f"RankingScore.from_formula: cannot read {text[position:].strip()!r} "
                    f"of {text!r}; write 'ctr^1 * cvr^0.5' (product) or "
                    "'1*ctr + 0.2*log1p(time)' (sum)."
                )
            found = match.groupdict()
            task = found["task"] or found["inner"]
            if task in weights:
                raise ValueError(
                    f"RankingScore.from_formula: {task!r} appears twice in {text!r}."
                )
            weights[task] = sign * float(found["weight"])
            if found.get("transform"):
                transforms[task] = found["transform"]
            position = match.end()
            if position == len(text):
                break
            separator = text[position]
            if separator not in ("*" if combine == "product" else "+-"):
                raise ValueError(
                    f"RankingScore.from_formula: unexpected {separator!r} in "
                    f"{text!r} at {text[position:]!r}."
                )
            sign, position = (-1.0 if separator == "-" else 1.0), position + 1
        return cls(weights, combine, transforms)


_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_NAME = r"[A-Za-z_]\w*"
#: One term of a formula, spaces around it included: `ctr^0.5` ("product"),
#: `0.2*ctr` or `0.2*log1p(time)` ("sum").
_FORMULA_TERM = {
    "product": re.compile(rf"\s*(?P<task>{_NAME})\s*\^\s*(?P<weight>{_NUMBER})\s*"),
    "sum": re.compile(
        rf"\s*(?P<weight>{_NUMBER})\s*\*\s*(?:(?P<task>{_NAME})\b(?!\s*\()|"
        rf"(?P<transform>log1p|log)\(\s*(?P<inner>{_NAME})\s*\))\s*"
    ),
}


# ---------------------------------------------------------------------- graph


def _assert(ok, spec: ServingInput, what: str, message: str, data):
    """An assertion that `ok` holds everywhere, its message naming the input."""
    import tensorflow as tf

    return tf.debugging.Assert(
        tf.reduce_all(ok),
        [f"Input `{spec.name}`: {message}", data],
        summarize=10,
        name=f"check_{spec.name}_{what}",
    )


def _bad_rows(ok):
    """The rows (batch indices) where `ok` fails somewhere."""
    import tensorflow as tf

    return tf.where(~tf.reshape(ok, [tf.shape(ok)[0], -1]))[:, 0]


def _checked(spec: ServingInput, x):
    """`x` as the model takes it: id lists padded to the model's lengths; a
    too-long list, a wrong dense width or a disallowed NaN / Inf raises an
    `InvalidArgumentError` that names the input."""
    import tensorflow as tf

    size = tf.shape(x, out_type=tf.int64)[1:]
    want = tf.constant(spec.shape, tf.int64, shape=[len(spec.shape)])
    shape = "; received a batch of shape"
    checks = []
    if spec.is_ids and spec.shape:
        message = f"lists of at most {list(spec.shape)} values per example"
        message += f" (shorter ones are padded){shape}"
        checks.append(_assert(size <= want, spec, "length", message, tf.shape(x)))
    if spec.is_ids and spec.dtype == "float32":  # bucketised numbers
        ok = ~tf.math.is_inf(x)
        message = "finite values or NaN (no value); bad values in rows"
        checks.append(_assert(ok, spec, "values", message, _bad_rows(ok)))
    elif not spec.is_ids:
        if spec.shape:
            message = f"{list(spec.shape)} values per example{shape}"
            checks.append(
                _assert(tf.equal(size, want), spec, "width", message, tf.shape(x))
            )
        ok = tf.math.is_finite(x)
        allowed = "finite values"
        if spec.domain_floor is not None:
            ok &= x > spec.domain_floor
            allowed += f" > {spec.domain_floor:g} (the graph takes a logarithm)"
        if spec.allow_missing:
            ok |= tf.math.is_nan(x)
            allowed += " or NaN (missing)"
        else:
            allowed += (
                " (NaN is a missing value only for a DenseFeature "
                "with allow_missing=True)"
            )
        message = f"{allowed}; bad values in rows"
        checks.append(_assert(ok, spec, "values", message, _bad_rows(ok)))
    with tf.control_dependencies(checks):
        x = tf.identity(x)
    if spec.is_ids and spec.shape:
        pad = [[0, 0]] + [[0, want[i] - size[i]] for i in range(len(spec.shape))]
        x = tf.pad(x, pad, constant_values=spec.pad)
    return tf.ensure_shape(x, (None, *spec.shape))


def _example_features(specs: dict[str, ServingInput]) -> dict:
    """`tf.io.parse_example` features: an id or id list may be absent (then
    padding), a float value only where missing values are allowed (NaN)."""
    import tensorflow as tf

    parsed = {}
    for name, spec in specs.items():
        dtype = tf.string if spec.dtype == "string" else tf.as_dtype(spec.dtype)
        if spec.is_ids and spec.shape:
            # Values row-major; a (steps, k) field sends k values per step.
            partitions = [
                tf.io.RaggedFeature.UniformRowLength(k) for k in spec.shape[1:]
            ]
            parsed[name] = tf.io.RaggedFeature(
                dtype, partitions=partitions, row_splits_dtype=tf.int64
            )
        elif spec.is_ids:
            parsed[name] = tf.io.FixedLenFeature((), dtype, default_value=spec.pad)
        else:
            default = None
            if spec.allow_missing:
                default = tf.fill(spec.shape, float("nan"))
            parsed[name] = tf.io.FixedLenFeature(spec.shape, dtype, default)
    return parsed


def _broadcast(name: str, x, batch):
    """`x` with one row tiled to `batch` rows (a user's representation for each
    of many candidates); a batch of `batch` rows is kept."""
    import tensorflow as tf

    rows = tf.shape(x)[0]
    check = tf.debugging.Assert(
        tf.logical_or(tf.equal(rows, 1), tf.equal(rows, batch)),
        [
            f"Input `{name}`: one row (shared by the batch) or one row per "
            "example; received rows, batch size",
            rows,
            batch,
        ],
        name=f"check_{name}_rows",
    )
    with tf.control_dependencies([check]):
        return tf.broadcast_to(x, tf.concat([[batch], tf.shape(x)[1:]], 0))


def output_groups(model: keras.Model, exclude: tuple = ()) -> dict[str, list[str]]:
    """`{signature name: [task, ...]}`: the model's outputs grouped by the inputs
    they read (besides `exclude`), one signature per group, named
    `score_<task>[_<task>...]`; empty when all outputs read the same inputs."""
    from keras_mtl._graph import inputs_behind

    named = {t.name: t for t in model.inputs}
    groups = {}
    for task, tensor in model.output.items():
        needs = frozenset(inputs_behind(named, tensor)) - set(exclude)
        groups.setdefault(needs, []).append(task)
    if len(groups) < 2:
        return {}
    return {"score_" + "_".join(tasks): tasks for tasks in groups.values()}


def raw_inputs(preprocessor, derived) -> list[str]:
    """The raw inputs `preprocessor` reads to give the model inputs `derived`,
    in order, each once."""
    return list(dict.fromkeys(n for d in derived for n in preprocessor.sources[d]))


def preprocessed_inputs(
    specs: dict[str, ServingInput], preprocessor
) -> tuple[dict[str, ServingInput], list[str]]:
    """`(signature inputs, derived inputs)`: the model inputs `specs` with
    those `preprocessor` derives (e.g. `keras_mtl.layers.TimeFeatures`'s
    `hour`) replaced by the raw inputs it derives them from (`timestamp`), in
    the place of the first input each one gives.

    A preprocessor is a Keras layer mapping a dict of raw tensors to a dict of
    model inputs that says `sources` (`{output: input names}`), `input_dtype`
    (of its inputs and outputs) and `input_shapes({output: per-example
    shape})`. A derived model input must have that dtype (its "no value" is
    then the same padding), else the export fails naming it.
    """
    derived = [
        n for n in specs if preprocessor is not None and n in preprocessor.sources
    ]
    if not derived:
        return dict(specs), []
    wrong = [n for n in derived if specs[n].dtype != preprocessor.input_dtype]
    if wrong:
        raise ValueError(
            f"export: the preprocessor gives {wrong} as {preprocessor.input_dtype}, "
            f"but the model takes them as {[specs[n].dtype for n in wrong]} (whose "
            "'no value' differs from the preprocessor's padding); declare those "
            f"features with dtype={preprocessor.input_dtype!r}."
        )
    shapes = preprocessor.input_shapes({n: specs[n].shape for n in derived})
    found = {}
    for name, spec in specs.items():
        if name not in derived:
            found.setdefault(name, spec)
            continue
        for raw in preprocessor.sources[name]:
            if raw not in specs and raw not in found:
                found[raw] = ServingInput(raw, preprocessor.input_dtype, shapes[raw])
    return found, derived


def _endpoint(model: keras.Model, ranking_score=None, broadcast=(), preprocessor=None):
    """`(input specs, signature fn)` of `model`: checked inputs, the
    preprocessor's outputs, broadcast inputs tiled to the batch, the outputs
    and the fused score."""
    import tensorflow as tf

    model_specs = serving_inputs(model)
    specs, derived = preprocessed_inputs(model_specs, preprocessor)
    broadcast = [name for name in broadcast if name in specs]
    per_example = [name for name in specs if name not in broadcast]

    def predict(inputs):
        x = {name: _checked(spec, inputs[name]) for name, spec in specs.items()}
        if derived:
            made = preprocessor({n: x[n] for n in raw_inputs(preprocessor, derived)})
            x.update({n: made[n] for n in derived})
        if broadcast and per_example:
            batch = tf.shape(x[per_example[0]])[0]
            for name in broadcast:
                x[name] = _broadcast(name, x[name], batch)
        outputs = dict(model({n: x[n] for n in model_specs}, training=False))
        if ranking_score is not None:
            outputs[RANKING_SCORE] = ranking_score(outputs)
        return outputs

    return specs, predict


def _raw_signature(specs: dict) -> dict:
    import tensorflow as tf

    return {
        name: tf.TensorSpec(spec.signature_shape, tf.as_dtype(spec.dtype), name=name)
        for name, spec in specs.items()
    }


def add_signatures(
    archive,
    model: keras.Model,
    ranking_score: RankingScore | None = None,
    *,
    output_signatures: Mapping[str, list | keras.Model] | None = None,
    broadcast_inputs: tuple = (),
    preprocessor: keras.layers.Layer | None = None,
) -> dict:
    """Add the export's signatures to a `keras.export.ExportArchive`.

    Args:
        archive: the `ExportArchive` (tracking `model`).
        model: a functional model with dict outputs.
        ranking_score: a `RankingScore`, or None.
        output_signatures: `{signature name: [output, ...]}`: more signatures,
            each returning those outputs from only the inputs they read (a
            sub-model on the same layers), e.g. from `output_groups`; or
            `{signature name: keras.Model}`, a model on `model`'s layers
            returning some of its outputs (DUPN's scorer per task group).
        broadcast_inputs: input names that may come with one row for the whole
            batch, tiled inside the graph (DUPN's `user_representation`).
        preprocessor: a layer deriving model inputs from raw ones inside the
            graph (`keras_mtl.layers.TimeFeatures`; see `preprocessed_inputs`),
            or None. The signatures take its raw inputs instead.

    Returns:
        The contract recorded beside the export: `{"signatures": [...],
        "inputs": {name: ServingInput.to_json()}, "broadcast_inputs": [...],
        "output_signatures": {...}, "ranking_score": ..., "preprocessor":
        its Keras config or None}`.
    """
    import tensorflow as tf

    if ranking_score is not None:
        ranking_score.check(model)
    specs, predict = _endpoint(model, ranking_score, broadcast_inputs, preprocessor)
    raw = _raw_signature(specs)
    archive.add_endpoint(name=SERVING_DEFAULT, fn=predict, input_signature=[raw])
    features = _example_features(specs)

    def from_examples(examples):
        parsed = tf.io.parse_example(examples, features)
        return predict(
            {
                name: value.to_tensor(specs[name].pad)
                if isinstance(value, tf.RaggedTensor)
                else value
                for name, value in parsed.items()
            }
        )

    archive.add_endpoint(
        name=SERVING_EXAMPLES,
        fn=from_examples,
        input_signature=[tf.TensorSpec((None,), tf.string, name=EXAMPLES_INPUT)],
    )
    names = [SERVING_DEFAULT, SERVING_EXAMPLES]
    if ranking_score is not None:
        archive.add_endpoint(
            name=RANKING_SCORE,
            fn=lambda inputs: {RANKING_SCORE: predict(inputs)[RANKING_SCORE]},
            input_signature=[raw],
        )
        names.append(RANKING_SCORE)
    groups = {}
    for name, part in (output_signatures or {}).items():
        if name in names:
            raise ValueError(
                f"export: output signature {name!r} clashes with a signature "
                f"of the export; taken: {names}."
            )
        tasks = list(part.output) if isinstance(part, keras.Model) else list(part)
        unknown = [t for t in tasks if t not in model.output]
        if unknown or not tasks:
            raise ValueError(
                f"export: output signature {name!r} lists {tasks}; the "
                f"model's outputs are {sorted(model.output)}."
            )
        if not isinstance(part, keras.Model):
            part = _sub_model(model, name, tasks)
        part_specs, part_predict = _endpoint(part, None, broadcast_inputs, preprocessor)
        archive.add_endpoint(
            name=name, fn=part_predict, input_signature=[_raw_signature(part_specs)]
        )
        names.append(name)
        groups[name] = {"outputs": list(tasks), "inputs": list(part_specs)}
    return {
        "signatures": names,
        "inputs": {name: spec.to_json() for name, spec in specs.items()},
        "broadcast_inputs": [n for n in broadcast_inputs if n in specs],
        "output_signatures": groups,
        "ranking_score": None if ranking_score is None else ranking_score.to_json(),
        "preprocessor": keras.saving.serialize_keras_object(preprocessor)
        if preprocessor is not None
        and any(t.name in preprocessor.sources for t in model.inputs)
        else None,
    }


def _sub_model(model: keras.Model, name: str, tasks) -> keras.Model:
    """`model`'s layers from only the inputs `tasks` read to those outputs."""
    from keras_mtl._graph import inputs_behind

    named = {t.name: t for t in model.inputs}
    outputs = {task: model.output[task] for task in tasks}
    needs = set().union(*(inputs_behind(named, t) for t in outputs.values()))
    inputs = {n: t for n, t in named.items() if n in needs}
    return keras.Model(inputs, outputs, name=f"{model.name}_{name}")


def serialize_examples(inputs: Mapping) -> list[bytes]:
    """One serialized `tf.Example` per row of `inputs`, for `serving_examples`.

    Each input's row is flattened row-major (a `(steps, k)` field sends `k`
    values per step); strings go as bytes, integers as int64, floats as float.
    To leave an optional feature out, leave it out of `inputs` (it is then
    padding, or NaN where missing values are allowed).

    Example:
    >>> import tensorflow as tf
    >>> [record] = serialize_examples({"item": [3], "tags": [["red", "blue"]]})
    >>> example = tf.train.Example.FromString(record).features.feature
    >>> example["item"].int64_list.value, example["tags"].bytes_list.value
    ([3], [b'red', b'blue'])
    """
    import numpy as np
    import tensorflow as tf

    arrays = {name: np.asarray(values) for name, values in inputs.items()}
    sizes = {name: len(a) for name, a in arrays.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"serialize_examples: inputs have batch sizes {sizes}.")

    def feature(values):
        values = np.asarray(values).reshape(-1)
        if values.dtype.kind in "OUS":
            raw = [v.encode() if isinstance(v, str) else bytes(v) for v in values]
            return tf.train.Feature(bytes_list=tf.train.BytesList(value=raw))
        if values.dtype.kind == "f":
            return tf.train.Feature(float_list=tf.train.FloatList(value=values))
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))

    return [
        tf.train.Example(
            features=tf.train.Features(
                feature={name: feature(a[i]) for name, a in arrays.items()}
            )
        ).SerializeToString()
        for i in range(next(iter(sizes.values()), 0))
    ]
