"""DeepCTR's MMoE on the census features, saved as SavedModels for the latency benchmark.

Run by `benchmarks/serving_latency.py` (with `--deepctr-python`) or by hand, in
a Python that has DeepCTR: DeepCTR 0.9.x needs Keras 2 (`tf_keras` with
`TF_USE_LEGACY_KERAS=1`, set here before TensorFlow is imported), which cannot
share a process with keras_mtl's Keras 3. Install it in its own virtual
environment, so that the project's environment keeps Keras 3 for `tf.keras`:

    python -m venv --system-site-packages /work/deepctr-venv
    /work/deepctr-venv/bin/pip install deepctr==0.9.4 tf-keras==2.21.0

(`--system-site-packages` reuses the installed TensorFlow 2.21; DeepCTR 0.9.3
pins h5py 3.7.0, which has no wheel for Python 3.11, so take 0.9.4.)

The model: `deepctr.models.MMOE` as DeepCTR's README builds it, one `SparseFeat`
per categorical column (`embedding_dim` 4, vocabulary size = the census
vocabulary + 1 row for anything else, UCI's "?" included, as keras_mtl's OOV
row), one `DenseFeat` per number, `--experts` experts of `--expert-units`,
towers of `--tower-units`, gates without hidden layers, two binary tasks. Not
trained (the benchmark measures latency, not quality). The census columns,
vocabularies and the numbers' mean / std come from `--spec`, a JSON file the
benchmark writes: `{"sparse": {column: [strings]}, "dense": {column: [mean,
std]}, "tasks": [names]}`.

Written under `--out`:

- `codes/1`: `tf.saved_model.save(model, ...)` of the Keras 2 model, as a
  DeepCTR user saves it. Its `serving_default` takes what DeepCTR's models take:
  one int32 `(batch, 1)` tensor of vocabulary codes per categorical column
  (the string -> code mapping, e.g. scikit-learn's `LabelEncoder` in DeepCTR's
  examples, happens OUTSIDE the graph, in the caller) and one float32
  `(batch, 1)` of standardised values per number (scaling outside too).
- `strings/1`: the same model (same weights) behind a `tf.Module` whose
  `serving_default` takes what keras_mtl's export takes, raw UCI strings and
  raw numbers, `(batch,)` each, and maps them INSIDE the graph (a
  `tf.lookup.StaticHashTable` per column, unknown -> the extra row; `(x - mean)
  / std`). Its `serving_xla` signature does the same with the model call in a
  `tf.function(jit_compile=True)` (XLA cannot take strings or hash tables, so
  the lookups stay outside the compiled part).
- `deepctr_mmoe.json`: versions, sizes, the parameter count and the spec, which
  the benchmark reads to feed `codes/`.

    python tools/deepctr_mmoe.py --spec spec.json --out DIR
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

META_FILE = "deepctr_mmoe.json"


def build(spec: dict, args):
    """DeepCTR's MMoE for the spec's columns (Keras 2)."""
    from deepctr.feature_column import DenseFeat, SparseFeat
    from deepctr.models import MMOE

    columns = [
        SparseFeat(name, len(vocabulary) + 1, embedding_dim=args.embedding_dim)
        for name, vocabulary in spec["sparse"].items()
    ] + [DenseFeat(name, 1) for name in spec["dense"]]
    tasks = tuple(spec["tasks"])
    return MMOE(
        columns,
        num_experts=args.experts,
        expert_dnn_hidden_units=(args.expert_units,),
        tower_dnn_hidden_units=(args.tower_units,),
        gate_dnn_hidden_units=(),
        task_types=("binary",) * len(tasks),
        task_names=tasks,
    )


def strings_module(model, spec: dict):
    """A `tf.Module` serving `model` from raw strings and numbers (see the
    module docstring): `serving_default` and `serving_xla`."""
    import tensorflow as tf

    module = tf.Module()
    module.model = model
    module.tables = {}
    for name, vocabulary in spec["sparse"].items():
        init = tf.lookup.KeyValueTensorInitializer(
            tf.constant(vocabulary, tf.string),
            tf.range(len(vocabulary), dtype=tf.int64),
        )
        module.tables[name] = tf.lookup.StaticHashTable(init, len(vocabulary))
    tasks = list(spec["tasks"])

    def model_inputs(inputs):
        x = {}
        for name in spec["sparse"]:
            codes = module.tables[name].lookup(inputs[name])
            x[name] = tf.reshape(tf.cast(codes, tf.int32), (-1, 1))
        for name, (mean, std) in spec["dense"].items():
            x[name] = tf.reshape((inputs[name] - mean) / std, (-1, 1))
        return x

    def outputs(predictions):
        return {t: tf.reshape(p, (-1,)) for t, p in zip(tasks, predictions)}

    @tf.function(jit_compile=True)
    def compiled(x):
        return model(x, training=False)

    signature = {
        name: tf.TensorSpec((None,), tf.string, name=name) for name in spec["sparse"]
    }
    signature.update(
        {name: tf.TensorSpec((None,), tf.float32, name=name) for name in spec["dense"]}
    )

    @tf.function(input_signature=[signature])
    def serve(inputs):
        return outputs(model(model_inputs(inputs), training=False))

    @tf.function(input_signature=[signature])
    def serve_xla(inputs):
        return outputs(compiled(model_inputs(inputs)))

    module.serve, module.serve_xla = serve, serve_xla
    return module, {"serving_default": serve, "serving_xla": serve_xla}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", type=Path, required=True, help="census spec JSON")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--embedding-dim", type=int, default=4)
    parser.add_argument("--experts", type=int, default=8)
    parser.add_argument("--expert-units", type=int, default=16)
    parser.add_argument("--tower-units", type=int, default=8)
    args = parser.parse_args(argv)

    import deepctr
    import tensorflow as tf
    import tf_keras

    spec = json.loads(args.spec.read_text())
    tf_keras.utils.set_random_seed(0)
    model = build(spec, args)
    args.out.mkdir(parents=True, exist_ok=True)
    tf.saved_model.save(model, str(args.out / "codes" / "1"))
    module, signatures = strings_module(model, spec)
    tf.saved_model.save(module, str(args.out / "strings" / "1"), signatures=signatures)
    meta = {
        "deepctr": deepctr.__version__,
        "tensorflow": tf.__version__,
        "tf_keras": tf_keras.__version__,
        "parameters": int(model.count_params()),
        "embedding_dim": args.embedding_dim,
        "experts": args.experts,
        "expert_units": args.expert_units,
        "tower_units": args.tower_units,
        "trained": False,
        "output_names": list(model.output_names),
        "spec": spec,
    }
    (args.out / META_FILE).write_text(json.dumps(meta, indent=1))
    print(json.dumps({"parameters": meta["parameters"], "out": str(args.out)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
