"""DeepCTR's PLE on the census arrays, trained round by round on request.

Run by `mmoe_census.py` as a child process: DeepCTR needs Keras 2 (`tf_keras`
with `TF_USE_LEGACY_KERAS=1`, set before TensorFlow is imported), which cannot
share a process with Keras 3. Reads the arrays `mmoe_census.py` saved
(`--arrays`, written by `_census_models.save_deepctr_arrays`), builds
`deepctr.models.PLE` as its README shows (one `SparseFeat` per id column, one
`DenseFeat` per number, `compile("adam", "binary_crossentropy")`, numpy `fit`,
which reshuffles every epoch), trains one warm-up epoch and answers
`{"parameters": n}`. Then it speaks the harness's JSON lines
(`_harness.serve`): `{"command": "train", "epochs": e}` trains `e` epochs and
answers `{"seconds": s, "other_cores": c}`; `quit` or the end of stdin ends it.

    pip install deepctr==0.9.4 tf-keras==2.21.0
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import _harness  # noqa: E402  (benchmarks/ is this script's directory)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arrays", required=True, help=".npz from mmoe_census.py")
    parser.add_argument("--batch-size", type=int, default=1024)
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

    def train(epochs: int):
        model.fit(x, y, batch_size=args.batch_size, epochs=epochs, verbose=0)

    train(1)
    _harness.serve(
        {"parameters": int(model.count_params())},
        {"train": lambda epochs: _harness.timed(lambda: train(epochs))},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
