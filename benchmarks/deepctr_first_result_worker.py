"""DeepCTR's ESMM or MMOE on the first-result recipe, as its README shows.

Run by `compile_cost.py` as a child process in DeepCTR's own environment
(`--deepctr-python`): DeepCTR needs Keras 2 (`tf_keras` with
`TF_USE_LEGACY_KERAS=1`, set before TensorFlow is imported). Reads the arrays
`compile_cost.py` saved (`_compile_cost_jobs.result_arrays`), builds the same
model as keras_mtl's recipe (one `SparseFeat` per id column with embedding 8,
one `DenseFeat`; ESMM towers (360, 200, 80), MMoE 4 experts of 64, towers of
32), `compile("adam", "binary_crossentropy", metrics=[AUC])`, numpy `fit`
(batch 64, 20 epochs), `evaluate` on the test rows, and prints the CTR AUC
on the line the parent waits for.

    pip install deepctr==0.9.4 tf-keras==2.21.0
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import _compile_cost_jobs as jobs  # noqa: E402  (benchmarks/ is this script's directory)
import _harness  # noqa: E402


def main(argv=None) -> int:
    start = time.perf_counter()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--first-result", choices=jobs.RECIPES, required=True)
    parser.add_argument("--data", required=True, help=".npz of `result_arrays`")
    args = parser.parse_args(argv)

    import numpy as np
    import tensorflow as tf
    from deepctr.feature_column import DenseFeat, SparseFeat
    from deepctr.models import ESMM, MMOE

    imported = time.perf_counter()
    arrays = np.load(args.data)
    n = int(arrays["train_rows"])
    ids = [k[3:] for k in arrays.files if k.startswith("id_")]
    columns = [
        SparseFeat(c, int(arrays[f"size_{c}"]), embedding_dim=jobs.RESULT_EMBEDDING_DIM)
        for c in ids
    ] + [DenseFeat("log_price", 1)]
    x = {c: arrays[f"id_{c}"] for c in ids}
    x["log_price"] = arrays["num_log_price"]
    click, conversion = arrays["y_click"], arrays["y_conversion"]
    if args.first_result == "esmm":
        model = ESMM(columns, tower_dnn_hidden_units=jobs.RESULT_ESMM_TOWER)
    else:
        shape = jobs.RESULT_MMOE
        model = MMOE(
            columns,
            num_experts=shape["num_experts"],
            expert_dnn_hidden_units=shape["expert_units"],
            tower_dnn_hidden_units=shape["tower_units"],
        )
    model.compile(
        "adam",
        loss=["binary_crossentropy", "binary_crossentropy"],
        metrics=[tf.keras.metrics.AUC(name="auc")],
    )
    train = {k: v[:n] for k, v in x.items()}
    test = {k: v[n:] for k, v in x.items()}
    model.fit(
        train,
        [click[:n], conversion[:n]],
        batch_size=jobs.RESULT_BATCH,
        epochs=jobs.RESULT_EPOCHS,
        verbose=0,
    )
    fitted = time.perf_counter()
    logs = model.evaluate(
        test,
        [click[n:], conversion[n:]],
        batch_size=jobs.RESULT_BATCH,
        return_dict=True,
        verbose=0,
    )
    metric = next(k for k in logs if k.startswith("ctr") and k.endswith("auc"))
    done = time.perf_counter()
    print(f"{jobs.RESULT_PREFIX} ctr_auc {logs[metric]:.4f}", flush=True)
    _harness.reply(
        {
            "metric": float(logs[metric]),
            "import_s": imported - start,
            "fit_s": fitted - imported,
            "evaluate_s": done - fitted,
            "jit_compile": False,
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
