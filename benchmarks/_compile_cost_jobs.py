"""The child side of `compile_cost.py`: one measurement per fresh process.

- `measure(model, rows, jit_compile, epochs, batch_size, seed)` (run through
  `_harness.run_in_child`, so no compilation cache of an earlier run helps):
  builds the case's data and model, trains `epochs` epochs in one `fit` and
  returns the time from the `fit` call to the end of epoch 1 (tracing and
  compilation included) and the examples/s of the later epochs.
- `python _compile_cost_jobs.py --first-result RECIPE --policy P --data NPZ`:
  the "time to first result" recipe as a user runs it (import, read the data,
  build, `fit`, `evaluate` on the test rows, print the metric); the parent
  times it from the process start to the printed line. Its DeepCTR twin is
  `deepctr_first_result_worker.py`.

Kept free of TensorFlow / Keras imports at module level (the parent imports it
for its constants).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

try:  # `python -m benchmarks.compile_cost`, or imported by the tests
    from benchmarks import _harness as h
except ImportError:  # run as a script: benchmarks/ is on sys.path
    import _harness as h

#: Models of the matrix and the sizes (rows) by name.
MODELS = ("mmoe", "ple", "esmm", "dupn")
SIZES = {"tiny": 100, "small": 10_000, "census": 199_523}
#: The recipes of "time to first result" and their sizes (the issue's case).
RECIPES = ("esmm", "mmoe")
RESULT_TRAIN_ROWS, RESULT_TEST_ROWS, RESULT_EPOCHS, RESULT_BATCH = 100, 100, 20, 64
#: First-result recipe shapes, the same in keras_mtl and DeepCTR.
RESULT_EMBEDDING_DIM = 8
RESULT_ESMM_TOWER = (360, 200, 80)
RESULT_MMOE = {"num_experts": 4, "expert_units": (64,), "tower_units": (32,)}
#: DUPN's widths (those of benchmarks/dupn_movielens.py) and its generated data.
DUPN_SHAPE = dict(units=64, attention_units=64, profile_units=64, tower_units=(64,))
DUPN_ITEMS, DUPN_MAX_LEN = 2_000, 20
#: The line the first-result child prints; the parent stops its clock on it.
RESULT_PREFIX = "FIRST RESULT"


def _quiet() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import warnings

    warnings.filterwarnings("ignore", message="`shuffle=True` was passed")
    warnings.filterwarnings("ignore", message="Your input ran out of data")
    warnings.filterwarnings("ignore", message="Gradients do not exist")


# ----------------------------------------------------------------------------- cases


def census_case(rows: int, seed: int):
    """Census-income (the shared test split when present, else the generated
    census-shaped frame), `rows` rows drawn from it (with replacement when
    more than it holds)."""
    import numpy as np

    try:
        from benchmarks import _census_models as cm
    except ImportError:
        import _census_models as cm

    frame, features, tasks, source = cm.load_data(cm.DEFAULT_DATA)
    rng = np.random.default_rng(seed)
    index = rng.choice(len(frame), rows, replace=rows > len(frame))
    return frame.iloc[index].reset_index(drop=True), features, tasks, source


def funnel_case(rows: int, seed: int):
    import keras_mtl as km

    funnel = km.datasets.make_funnel(
        num_impressions=rows,
        num_users=max(50, rows // 10),
        num_items=max(20, rows // 40),
        seed=seed,
    )
    return funnel.frame, funnel.features, funnel.tasks, "make_funnel"


def dupn_case(rows: int, seed: int):
    """A behaviour sequence (item ids, one action per step, up to 20 steps),
    the target item, a profile (age) and a request context (hour); tasks
    `ctr` (scores the target item) and `buy` (a tower), drawn at random."""
    import numpy as np

    import keras_mtl as km

    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, DUPN_MAX_LEN + 1, rows)
    padded = np.arange(DUPN_MAX_LEN)[None, :] >= lengths[:, None]
    history = rng.integers(0, DUPN_ITEMS, (rows, DUPN_MAX_LEN))
    history[padded] = -1
    action = rng.integers(0, 4, (rows, DUPN_MAX_LEN))
    action[padded] = 0
    item = rng.integers(0, DUPN_ITEMS, rows)
    seen = (history == item[:, None]).any(axis=1)
    data = {
        "history_item": history.astype(np.int64),
        "history_action": action.astype(np.int64),
        "item": item.astype(np.int64),
        "age": rng.integers(0, 10, rows),
        "hour": rng.integers(0, 24, rows),
        "ctr": (rng.random(rows) < np.where(seen, 0.6, 0.2)).astype(np.float32),
        "buy": (rng.random(rows) < 0.05).astype(np.float32),
    }
    item_spec = km.SparseFeature("item", vocabulary_size=DUPN_ITEMS, embedding_dim=16)
    features = [
        km.SequenceFeature(
            "history",
            item=[item_spec],
            properties=[km.SparseFeature("action", vocabulary_size=4, embedding_dim=4)],
            max_len=DUPN_MAX_LEN,
        ),
        item_spec,
        km.SparseFeature("age", vocabulary_size=10, embedding_dim=4),
        km.SparseFeature("hour", vocabulary_size=24, embedding_dim=4),
    ]
    return data, features, [km.Task("ctr"), km.Task("buy")], "generated sequences"


def build(name: str, features, tasks, compile: dict):
    import keras_mtl as km

    try:
        from benchmarks import _census_models as cm
    except ImportError:
        import _census_models as cm

    if name == "mmoe":
        return km.build_mmoe(
            features,
            tasks,
            num_experts=cm.NUM_EXPERTS,
            expert_units=(cm.EXPERT_UNITS,),
            tower_units=(cm.TOWER_UNITS,),
            compile=compile,
        )
    if name == "ple":
        return km.build_ple(
            features,
            tasks,
            num_levels=cm.PLE_LEVELS,
            num_shared_experts=cm.PLE_SHARED,
            num_task_experts=cm.PLE_TASK,
            expert_units=(cm.EXPERT_UNITS,),
            tower_units=(cm.TOWER_UNITS,),
            compile=compile,
        )
    if name == "esmm":
        return km.build_esmm(features, tasks, compile=compile)
    if name == "dupn":
        return km.build_dupn(
            features, tasks, query=["hour"], **DUPN_SHAPE, compile=compile
        )
    raise ValueError(f"unknown model {name!r}; expected one of {MODELS}")


def make_case(name: str, rows: int, seed: int):
    """`(data, features, tasks, source)` of a model's case at `rows` rows."""
    if name in ("mmoe", "ple"):
        return census_case(rows, seed)
    if name == "esmm":
        return funnel_case(rows, seed)
    if name == "dupn":
        return dupn_case(rows, seed)
    raise ValueError(f"unknown model {name!r}; expected one of {MODELS}")


# ----------------------------------------------------------------------------- matrix


def measure(
    name: str, rows: int, jit_compile, epochs: int, batch_size: int, seed: int = 0
) -> dict:
    """One configuration in this (fresh) process; see the module docstring.

    `jit_compile` is passed to `compile` as given (True, False or "auto");
    the result says what the model used."""
    _quiet()
    start = time.perf_counter()
    import keras

    import keras_mtl as km

    import_s = time.perf_counter() - start
    keras.utils.set_random_seed(seed)
    data, features, tasks, source = make_case(name, rows, seed)
    ds = km.data.make_dataset(data, features, tasks, batch_size, seed=seed)
    start = time.perf_counter()
    model = build(name, features, tasks, {"jit_compile": jit_compile})
    build_s = time.perf_counter() - start
    marks = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            marks.append(("begin", time.perf_counter()))

        def on_epoch_end(self, epoch, logs=None):
            marks.append(("end", time.perf_counter()))

    with h.OtherCpuMeter() as others:
        fit_start = time.perf_counter()
        model.fit(ds, epochs=epochs, verbose=0, shuffle=False, callbacks=[Clock()])
    begins = [t for kind, t in marks if kind == "begin"]
    ends = [t for kind, t in marks if kind == "end"]
    speeds = [rows / (e - b) for b, e in zip(begins[1:], ends[1:])]
    return {
        "model": name,
        "rows": rows,
        "requested": jit_compile,
        "jit_compile": bool(model.jit_compile),
        "steps_per_execution": int(model.steps_per_execution),
        "import_s": import_s,
        "build_s": build_s,
        "first_epoch_s": ends[0] - fit_start,
        "examples_per_s": statistics.median(speeds) if speeds else float("nan"),
        "other_cores": others.cores,
        "parameters": int(model.count_params()),
        "source": source,
    }


# ----------------------------------------------------------------------------- first result


def result_arrays(seed: int = 0) -> dict:
    """The first-result recipe's rows (train, then test), as plain arrays that
    keras_mtl and DeepCTR read alike: funnel impressions' id columns, the log
    price, `click` and `conversion`."""
    import numpy as np

    import keras_mtl as km

    rows = RESULT_TRAIN_ROWS + RESULT_TEST_ROWS
    frame = km.datasets.make_funnel(
        num_impressions=rows, num_users=40, num_items=30, num_categories=8, seed=seed
    ).frame
    arrays = {
        f"id_{c}": frame[c].to_numpy().astype(np.int64)
        for c in ("user_id", "user_age", "item_id", "item_category")
    }
    for c in list(arrays):
        arrays[f"size_{c[3:]}"] = np.array(int(arrays[c].max()) + 1)
    arrays["num_log_price"] = np.log(frame["item_price"].to_numpy()).astype(np.float32)
    for label in ("click", "conversion"):
        arrays[f"y_{label}"] = frame[label].to_numpy().astype(np.float32)
    arrays["train_rows"] = np.array(RESULT_TRAIN_ROWS)
    return arrays


def first_result(recipe: str, policy: str, path: str) -> int:
    """The recipe with keras_mtl: `policy` "xla" (the old "auto": XLA on),
    "auto" (the default) or "off"."""
    _quiet()
    start = time.perf_counter()
    import numpy as np

    import keras_mtl as km

    imported = time.perf_counter()
    arrays = np.load(path)
    n = int(arrays["train_rows"])
    ids = [k[3:] for k in arrays.files if k.startswith("id_")]
    features = [
        km.SparseFeature(
            c,
            vocabulary_size=int(arrays[f"size_{c}"]),
            embedding_dim=RESULT_EMBEDDING_DIM,
        )
        for c in ids
    ]
    features.append(km.DenseFeature("log_price"))
    data = {c: arrays[f"id_{c}"] for c in ids}
    data["log_price"] = arrays["num_log_price"]
    data["click"], data["conversion"] = arrays["y_click"], arrays["y_conversion"]
    train = {k: v[:n] for k, v in data.items()}
    test = {k: v[n:] for k, v in data.items()}
    jit = {"xla": True, "auto": "auto", "off": False}[policy]
    if recipe == "esmm":
        tasks = km.esmm_tasks()
        model = km.build_esmm(
            features, tower_units=RESULT_ESMM_TOWER, compile={"jit_compile": jit}
        )
        metric = "ctr_auc"
    else:
        tasks = [km.Task("ctr", label="click"), km.Task("ctcvr", label="conversion")]
        model = km.build_mmoe(
            features, tasks, **RESULT_MMOE, compile={"jit_compile": jit}
        )
        metric = "ctr_auc"
    model.fit(
        km.data.make_dataset(train, features, tasks, RESULT_BATCH, seed=0),
        epochs=RESULT_EPOCHS,
        verbose=0,
        shuffle=False,
    )
    fitted = time.perf_counter()
    logs = model.evaluate(
        km.data.make_dataset(test, features, tasks, RESULT_BATCH, shuffle=False),
        return_dict=True,
        verbose=0,
    )
    done = time.perf_counter()
    print(f"{RESULT_PREFIX} {metric} {logs[metric]:.4f}", flush=True)
    h.reply(
        {
            "metric": float(logs[metric]),
            "import_s": imported - start,
            "fit_s": fitted - imported,
            "evaluate_s": done - fitted,
            "jit_compile": bool(model.jit_compile),
            "steps_per_execution": int(model.steps_per_execution),
        }
    )
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--first-result", choices=RECIPES, required=True)
    parser.add_argument("--policy", choices=("xla", "auto", "off"), default="auto")
    parser.add_argument("--data", required=True, help=".npz of `result_arrays`")
    args = parser.parse_args(argv)
    return first_result(args.first_result, args.policy, args.data)


if __name__ == "__main__":
    h.add_repo_to_path()
    sys.exit(main())
