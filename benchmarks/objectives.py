"""Funnel objectives: click, conversion and dwell, per model, on the simulator.

`keras_mtl.datasets.make_funnel` draws impressions with clicks, conversions
after clicks and a log-normal dwell time after each click, with the true
P(click), P(conversion | click) and expected dwell known for every impression.
For each seed: a fresh funnel, a seeded 70/10/20 train/validation/test split of
the impressions, and these models (the same encoder, experts and towers of
`--units` widths, learning rate `--lr`, at most `--epochs` epochs, early-stopped
on the validation loss with patience 2, best weights restored):

- `click`, `conversion`, `dwell`: single-task models (`build_single_task`) on
  `Task("ctr", label="click")`, `Task("ctcvr", label="conversion")` (all
  impressions) and `Task("dwell", "regression", transform="log1p")` (its label
  is NaN, i.e. masked, without a click);
- `click weighted`: the single-task click model trained with the sample weights
  `km.objective_weights(frame, "click", {"dwell": 1, "conversion": 2},
  transforms={"dwell": "log1p"})`: 1 + log(1 + dwell) + 2 conversion on clicks,
  1 elsewhere (weighted logistic regression: one score for the blend);
- `mmoe`, `ple`: the three tasks in one model, the plain sum of the task
  losses; `mmoe, uncertainty` and `ple, uncertainty` the same models with
  `loss_weighting="uncertainty"` (the dwell loss, a squared error on log
  seconds, is several times the binary cross-entropies and dominates the
  plain sum);
- `esmm`: `build_esmm` (ctr, cvr, ctcvr; conversion = pCTCVR). ESMM's builder
  takes only binary tasks (`build_esmm.task_types`), so it has no dwell head.

Judged on the test impressions, per objective:

- click AUC: the model's click output against observed clicks (all rows);
- conversion AUC: its conversion output (pCTCVR, P(click and conversion))
  against observed conversions (all rows), and the Spearman correlation of
  the same output with the true P(click) P(conversion | click);
- dwell: on clicked test rows, Spearman of the dwell output with the true
  expected dwell (both a log-scale model, which predicts about the median, and
  a mean predictor rank by the same log mean: the bias-free comparison), and
  the MAE of the prediction against the observed dwell (the median minimises
  it; reported for scale).

A model without an output for an objective is scored with its only output
where it has one score (the single-task models: marked `*`, e.g. how well the
weighted click score ranks conversions), else `—`. Each cell is the median
(min-max) over seeds (`_harness.spread`).

Usage (from the repository root):

    python benchmarks/objectives.py [--seeds 2] [--impressions 100000] [--epochs 10]
        [--models click mmoe ...] [--xla]

The defaults took about 5 minutes on the 2-core machine (2026-12-07: 3-10 s
per model, early stopping after 3-7 epochs). XLA is off by default: at these sizes compiling costs more than it
saves (the same 3 models at 20k impressions: 63 s with XLA, 16 s without).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore", message="`shuffle=True` was passed")

try:  # `python -m benchmarks.objectives`, or imported by the tests
    from benchmarks import _harness as h
except ImportError:  # `python benchmarks/objectives.py`
    import _harness as h

h.add_repo_to_path()

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import keras_mtl as km  # noqa: E402
from keras_mtl.data import make_dataset, split_frame  # noqa: E402
from keras_mtl.datasets import make_funnel  # noqa: E402

CLICK = km.Task("ctr", label="click")
CONVERSION = km.Task("ctcvr", label="conversion")
DWELL = km.Task("dwell", "regression", transform="log1p")
#: The boosts of the weighted click model (`objective_weights`).
BOOSTS = {"dwell": 1.0, "conversion": 2.0}
#: Model name -> (builder name, tasks, sample weights?).
MODELS = {
    "click": ("single_task", [CLICK], False),
    "conversion": ("single_task", [CONVERSION], False),
    "dwell": ("single_task", [DWELL], False),
    "click weighted": ("single_task", [CLICK], True),
    "mmoe": ("mmoe", [CLICK, CONVERSION, DWELL], False),
    "ple": ("ple", [CLICK, CONVERSION, DWELL], False),
    "mmoe, uncertainty": ("mmoe", [CLICK, CONVERSION, DWELL], False),
    "ple, uncertainty": ("ple", [CLICK, CONVERSION, DWELL], False),
    "esmm": ("esmm", km.esmm_tasks(), False),
}
#: Models compiled with a loss weighting (the others: the plain sum of losses).
LOSS_WEIGHTING = {"mmoe, uncertainty": "uncertainty", "ple, uncertainty": "uncertainty"}
#: Table columns: (header, objective, metric).
COLUMNS = [
    ("click AUC", "click", "auc"),
    ("conversion AUC", "conversion", "auc"),
    ("conversion Spearman (true)", "conversion", "spearman"),
    ("dwell Spearman (true)", "dwell", "spearman"),
    ("dwell MAE", "dwell", "mae"),
]
#: The output of each objective, by task name.
OUTPUTS = {"click": "ctr", "conversion": "ctcvr", "dwell": "dwell"}


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC (Mann-Whitney, ties averaged)."""
    labels = np.asarray(labels) == 1
    ranks = pd.Series(np.asarray(scores, np.float64)).rank().to_numpy()
    positives, negatives = labels.sum(), (~labels).sum()
    if positives == 0 or negatives == 0:
        return float("nan")
    return float(
        (ranks[labels].sum() - positives * (positives + 1) / 2)
        / (positives * negatives)
    )


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation (ties averaged)."""
    ranks = [pd.Series(np.asarray(v, np.float64)).rank().to_numpy() for v in (a, b)]
    return float(np.corrcoef(*ranks)[0, 1])


def build(name: str, features, units: int, learning_rate: float, jit: bool | str):
    builder, tasks, _ = MODELS[name]
    compile_args = {
        "learning_rate": learning_rate,
        "jit_compile": jit,
        "loss_weighting": LOSS_WEIGHTING.get(name),
    }
    if builder == "single_task":
        return km.build_single_task(
            features,
            tasks,
            hidden_units=(units,),
            tower_units=(units // 2,),
            compile=compile_args,
        )
    if builder == "mmoe":
        return km.build_mmoe(
            features,
            tasks,
            num_experts=4,
            expert_units=(units,),
            tower_units=(units // 2,),
            compile=compile_args,
        )
    if builder == "ple":
        return km.build_ple(
            features,
            tasks,
            num_levels=1,
            num_shared_experts=2,
            num_task_experts=1,
            expert_units=(units,),
            tower_units=(units // 2,),
            compile=compile_args,
        )
    return km.build_esmm(
        features, tower_units=(units, units // 2), compile=compile_args
    )


def score(predictions: dict, test: pd.DataFrame, truth: dict) -> dict:
    """`{(objective, metric): (value, borrowed)}` of one model's test predictions."""
    only = next(iter(predictions.values())) if len(predictions) == 1 else None
    clicked = test["click"].to_numpy() == 1
    out = {}
    for objective, task in OUTPUTS.items():
        if task in predictions:
            p, borrowed = predictions[task], False
        elif only is not None:
            p, borrowed = only, True
        else:
            continue
        p = np.asarray(p, np.float64)
        if objective == "click":
            out[objective, "auc"] = (auc(test["click"].to_numpy(), p), borrowed)
        elif objective == "conversion":
            conversion = test["conversion"].to_numpy()
            out[objective, "auc"] = (auc(conversion, p), borrowed)
            out[objective, "spearman"] = (spearman(p, truth["ctcvr"]), borrowed)
        else:
            out[objective, "spearman"] = (
                spearman(p[clicked], truth["dwell"][clicked]),
                borrowed,
            )
            if not borrowed:  # (an error on the dwell scale needs a dwell output)
                dwell = test["dwell"].to_numpy()[clicked]
                out[objective, "mae"] = (
                    float(np.mean(np.abs(p[clicked] - dwell))),
                    False,
                )
    return out


def run_seed(
    seed: int,
    funnel_kwargs: dict,
    models=tuple(MODELS),
    epochs: int = 10,
    units: int = 32,
    batch_size: int = 512,
    learning_rate: float = 3e-3,
    jit: bool | str = False,
) -> dict:
    """Train every model of `models` on one seeded funnel, each for at most
    `epochs` epochs, early-stopped on its validation loss (patience 2, best
    weights restored).

    Returns `{model: {"scores": score(...), "seconds": float, "epochs": int}}`.
    """
    funnel = make_funnel(seed=seed, **funnel_kwargs)
    frame = funnel.frame.assign(
        true_ctcvr=funnel.true_ctr * funnel.true_cvr,
        true_dwell=funnel.true_dwell,
        click_weight=km.objective_weights(
            funnel.frame, "click", BOOSTS, transforms={"dwell": "log1p"}
        ),
    )
    train, val, test = split_frame(frame, (0.7, 0.1, 0.2), seed=seed)
    truth = {
        "ctcvr": test["true_ctcvr"].to_numpy(),
        "dwell": test["true_dwell"].to_numpy(),
    }
    features = funnel.features
    x_test = make_dataset(test, features, None, 8192, shuffle=False)
    results = {}
    for name in models:
        _, tasks, weighted = MODELS[name]
        keras.utils.set_random_seed(seed)
        start = time.perf_counter()
        model = build(name, features, units, learning_rate, jit)
        weight = "click_weight" if weighted else None
        data = make_dataset(
            train, features, tasks, batch_size, seed=seed, sample_weight=weight
        )
        val_data = make_dataset(
            val, features, tasks, 8192, shuffle=False, sample_weight=weight
        )
        stop = keras.callbacks.EarlyStopping(
            monitor="val_loss", mode="min", patience=2, restore_best_weights=True
        )
        history = model.fit(
            data,
            validation_data=val_data,
            epochs=epochs,
            callbacks=[stop, *h.progress()],
            verbose=0,
        )
        predictions = model.predict(x_test, verbose=0)
        predictions = {t.name: predictions[t.name] for t in tasks if not t.metric_only}
        results[name] = {
            "scores": score(predictions, test, truth),
            "seconds": time.perf_counter() - start,
            "epochs": len(history.history["loss"]),
        }
    return results


def table(runs: list[dict]) -> str:
    """The markdown table: one row per model, median (min-max) over seeds."""
    header = ["model", *(c[0] for c in COLUMNS), "epochs", "seconds"]
    rows = []
    for name in runs[0]:
        row = [name]
        for _, objective, metric in COLUMNS:
            cells = [run[name]["scores"].get((objective, metric)) for run in runs]
            if any(cell is None for cell in cells):
                row.append("—")
                continue
            fmt = "{:.2f}" if metric == "mae" else "{:.4f}"
            text = h.spread([value for value, _ in cells], fmt)
            row.append(text + (" *" if cells[0][1] else ""))
        row.append(h.spread([run[name]["epochs"] for run in runs], "{:.0f}"))
        row.append(h.spread([run[name]["seconds"] for run in runs], "{:.0f}"))
        rows.append(row)
    return h.markdown_table(header, rows)


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--impressions", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=5_000)
    parser.add_argument("--items", type=int, default=2_000)
    parser.add_argument("--click-rate", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=10, help="at most")
    parser.add_argument("--units", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=None)
    parser.add_argument(
        "--xla", action="store_true", help="XLA on (slower here: compiling dominates)"
    )
    args = parser.parse_args(argv)
    funnel_kwargs = dict(
        num_impressions=args.impressions,
        num_users=args.users,
        num_items=args.items,
        click_rate=args.click_rate,
    )
    runs = [
        run_seed(
            seed,
            funnel_kwargs,
            models=tuple(args.models or MODELS),
            epochs=args.epochs,
            units=args.units,
            batch_size=args.batch_size,
            learning_rate=args.lr,
            jit="auto" if args.xla else False,
        )
        for seed in range(args.seeds)
    ]
    lines = [
        *h.machine_lines(),
        f"funnel: {funnel_kwargs}, seeds 0..{args.seeds - 1}, epochs {args.epochs}, "
        f"units {args.units}, batch {args.batch_size}, lr {args.lr}",
        "",
        table(runs),
        "",
        "* the model's only output, scored on an objective it was not trained for.",
    ]
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    main(sys.argv[1:])
