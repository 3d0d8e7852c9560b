"""DeepCTR's PLE on the census arrays, trained round by round on request.

Run by `mmoe_census.py` as a child process: DeepCTR needs Keras 2 (`tf_keras`
with `TF_USE_LEGACY_KERAS=1`, set before TensorFlow is imported), which cannot
share a process with Keras 3. Reads the arrays `mmoe_census.py` saved
(`--arrays`), builds `deepctr.models.PLE` as its README shows (one `SparseFeat`
per id column, one `DenseFeat` per number, `compile("adam",
"binary_crossentropy")`, numpy `fit`, which reshuffles every epoch), trains one
warm-up epoch and prints `ready <parameters>`. Then, for each `round` line on
stdin (at most `--max-rounds`), it trains `--epochs` epochs and prints
`seconds <s>`; `quit` or the end of stdin ends it.

    pip install deepctr==0.9.4 tf-keras==2.21.0
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arrays", required=True, help=".npz from mmoe_census.py")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--max-rounds", type=int, default=20)
    parser.add_argument("--expert-units", type=int, default=16)
    parser.add_argument("--tower-units", type=int, default=8)
    args = parser.parse_args(argv)

    import numpy as np
    from deepctr.feature_column import DenseFeat, SparseFeat
    from deepctr.models import PLE

    arrays = np.load(args.arrays)
    sparse = [k[len("id_") :] for k in arrays.files if k.startswith("id_")]
    dense = [k[len("num_") :] for k in arrays.files if k.startswith("num_")]
    tasks = [k[len("y_") :] for k in arrays.files if k.startswith("y_")]
    columns = [
        SparseFeat(name, int(arrays[f"rows_{name}"]), embedding_dim=4)
        for name in sparse
    ] + [DenseFeat(name, 1) for name in dense]
    model = PLE(
        columns,
        shared_expert_num=2,
        specific_expert_num=2,
        num_levels=2,
        expert_dnn_hidden_units=(args.expert_units,),
        tower_dnn_hidden_units=(args.tower_units,),
        task_types=("binary",) * len(tasks),
        task_names=tuple(tasks),
    )
    model.compile("adam", "binary_crossentropy")
    x = {name: arrays[f"id_{name}"] for name in sparse}
    x.update({name: arrays[f"num_{name}"] for name in dense})
    y = [arrays[f"y_{name}"] for name in tasks]

    def train(epochs: int) -> float:
        start = time.perf_counter()
        model.fit(x, y, batch_size=args.batch_size, epochs=epochs, verbose=0)
        return time.perf_counter() - start

    train(1)
    print(f"ready {model.count_params()}", flush=True)
    for _ in range(args.max_rounds):
        line = sys.stdin.readline().strip()
        if line != "round":
            break
        print(f"seconds {train(args.epochs):.6f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
