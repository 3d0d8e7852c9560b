"""ESMM on the funnel simulator: the bias-correction proof, then training speed.

Part 1, accuracy. `keras_mtl.datasets.make_funnel` draws impressions whose true
P(click | x) and P(conversion | click, x) are known. For each seed: a fresh
funnel, a seeded 70/10/20 train/validation/test split of the impressions, and
three pCVR estimates from towers of the same architecture (`FeatureEncoder`
embeddings, towers of `--tower` units), trained with the same batch size,
learning rate, epoch cap and early stopping (patience 2 on a validation loss):

- naive CVR: the CVR tower alone, trained on the clicked training impressions
  only (label: conversion), early-stopped on the clicked validation rows;
- ESMM (`build_esmm`): CTR and CVR towers, trained with the CTR and CTCVR
  losses on all training impressions, early-stopped on validation CTCVR loss;
- DIVISION (the ESMM paper's ablation): two separately trained single-task
  models on all training impressions, pCTR (label: click) and pCTCVR (label:
  click and conversion, i.e. conversion: conversions only follow clicks), each
  with its own embeddings and one tower, each early-stopped on its own
  validation loss; pCVR = pCTCVR / max(pCTR, DIVISION_EPS), clipped to [0, 1]
  (`division_cvr`). The share of test impressions whose raw ratio exceeded 1
  before the clipping is reported: the instability the paper names.

All three are judged on ALL test impressions, the space a CVR model is served on,
against the truth (`keras_mtl.diagnostics.cvr_against_truth`): Spearman rank
correlation of pCVR with the true pCVR; AUC against counterfactual outcomes
z ~ Bernoulli(true pCVR) drawn for every impression; and calibration, mean
predicted / mean true pCVR. For reference, the paper's CVR AUC (on clicked test
impressions, observed conversions) is reported too.

Part 2, speed. `build_esmm` + `make_dataset` against a hand-written plain Keras 3
two-tower model of the same shape (one `Embedding` per field, masked sum of the
multi-valued field, the same towers, XLA) fed by
`from_tensor_slices(...).batch().cache().prefetch()`, on the simulator's default
size; examples/s, median (min-max) of `--repeats` alternated rounds of fresh
models (`_harness.fresh_model`, `_harness.alternated_rounds`). Part 1's
scores are reported as median (min-max) over seeds (`_harness.spread`).

Usage (from the repository root):

    python benchmarks/esmm_funnel.py [--seeds 5] [--repeats 3] [--skip-speed]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore", message="`shuffle=True` was passed")

try:  # `python -m benchmarks.esmm_funnel`, or imported by the tests
    from benchmarks import _harness as h
except ImportError:  # `python benchmarks/esmm_funnel.py`
    import _harness as h

h.add_repo_to_path()

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_mtl as km  # noqa: E402
from keras_mtl.data import make_dataset, split_frame  # noqa: E402
from keras_mtl.datasets import make_funnel  # noqa: E402
from keras_mtl.diagnostics import cvr_against_truth  # noqa: E402

TOWER = (64, 32)  # see README: the paper's 360-200-80 overfits this data in 1-2 epochs
REQUIRED_RATIO = 0.90
NAIVE_TASK = km.Task("cvr", label="conversion")
#: DIVISION's single-task models, both on all impressions. A conversion implies
#: a click in the simulator (make_funnel), so click ∧ conversion = conversion.
DIVISION_TASKS = {
    "ctr": km.Task("ctr", label="click"),
    "ctcvr": km.Task("ctcvr", label="conversion"),
}
#: DIVISION's floor on pCTR before dividing (keeps pCTCVR / pCTR finite).
DIVISION_EPS = 1e-6
#: The pCVR estimates `compare_on_funnel` trains, in report order.
MODELS = ("naive", "esmm", "division")


def division_cvr(pctr, pctcvr, eps: float = DIVISION_EPS):
    """DIVISION's pCVR from two separately trained models: `pctcvr / max(pctr,
    eps)`, clipped to [0, 1]. Returns `(pcvr, above_one)`, `above_one` the share
    of rows whose raw ratio exceeded 1 before the clipping (a pCTCVR above its
    pCTR: nothing ties the two models together).

    >>> pcvr, above = division_cvr(np.array([0.5, 0.1, 0.0]), np.array([0.1, 0.2, 0.0]))
    >>> pcvr.tolist(), round(above, 4)
    ([0.2, 1.0, 0.0], 0.3333)
    """
    pctr = np.asarray(pctr, dtype=np.float64).reshape(-1)
    pctcvr = np.asarray(pctcvr, dtype=np.float64).reshape(-1)
    raw = pctcvr / np.maximum(pctr, eps)
    return np.clip(raw, 0.0, 1.0), float(np.mean(raw > 1.0))


# ----------------------------------------------------------------------------- proof


def _fit(model, train, val, features, tasks, batch_size, max_epochs, seed, monitor):
    """Fit with early stopping on a validation loss; returns the epochs run."""
    stop = keras.callbacks.EarlyStopping(
        monitor=monitor, mode="min", patience=2, restore_best_weights=True
    )
    history = model.fit(
        make_dataset(train, features, tasks, batch_size, seed=seed),
        validation_data=make_dataset(val, features, tasks, batch_size, shuffle=False),
        epochs=max_epochs,
        callbacks=[stop, *h.progress()],
        verbose=0,
    )
    return len(history.history["loss"])


def compare_on_funnel(
    seed: int,
    funnel_kwargs: dict | None = None,
    tower_units=TOWER,
    batch_size: int = 1024,
    learning_rate: float = 1e-3,
    max_epochs: int = 20,
    models=MODELS,
) -> dict:
    """Train naive CVR, ESMM and DIVISION on one seeded funnel; judge each
    pCVR against the truth.

    Returns `{model: {...}}` for each of `models` (default: all three of
    `MODELS`), each the `cvr_against_truth` dict over all test impressions plus
    `"clicked_auc"` (observed conversions of clicked test impressions),
    `"epochs"` (DIVISION: both models' summed) and `"seconds"`; DIVISION's also
    `"above_one"`, the share of test impressions whose pCTCVR / pCTR exceeded 1
    before clipping (`division_cvr`), and `"epochs_ctr"`, `"epochs_ctcvr"`.
    """
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        raise ValueError(
            f"compare_on_funnel: models {unknown} unknown; choose from {MODELS}."
        )
    funnel = make_funnel(seed=seed, **(funnel_kwargs or {}))
    frame = funnel.frame.assign(true_cvr=funnel.true_cvr)
    train, val, test = split_frame(frame, (0.7, 0.1, 0.2), seed=seed)
    features = funnel.features
    clicked = lambda rows: rows[rows["click"] == 1]  # noqa: E731
    compile_args = {"learning_rate": learning_rate}

    def single_task(task):  # one tower on its own embeddings (naive, DIVISION)
        return lambda: km.build_shared_bottom(
            features,
            [task],
            hidden_units=(),
            tower_units=tower_units,
            compile=compile_args,
            name=f"single_{task.name}",
        )

    contenders = {  # build, train rows, validation rows, tasks, early-stopping monitor
        "naive": (
            single_task(NAIVE_TASK),
            clicked(train),
            clicked(val),
            [NAIVE_TASK],
            "val_loss",
        ),
        # The CTR loss overfits the id embeddings first; stop on the loss that
        # involves the CVR tower.
        "esmm": (
            lambda: km.build_esmm(
                features, tower_units=tower_units, compile=compile_args
            ),
            train,
            val,
            km.esmm_tasks(),
            "val_ctcvr_loss",
        ),
        # DIVISION: two single-task models on all impressions, one per label.
        **{
            f"division_{name}": (single_task(task), train, val, [task], "val_loss")
            for name, task in DIVISION_TASKS.items()
        },
    }
    x = make_dataset(test, features, None, 8192, shuffle=False)
    trained = {}  # contender: (its predictions on the test rows, epochs, seconds)
    for name, (build, train_rows, val_rows, tasks, monitor) in contenders.items():
        if name.split("_")[0] not in models:
            continue
        keras.utils.set_random_seed(seed)
        start = time.perf_counter()
        model = build()
        epochs = _fit(
            model,
            train_rows,
            val_rows,
            features,
            tasks,
            batch_size,
            max_epochs,
            seed,
            monitor,
        )
        trained[name] = (
            model.predict(x, verbose=0),
            epochs,
            time.perf_counter() - start,
        )

    results = {}
    for name in models:
        extra = {}
        if name == "division":
            (ctr, epochs_ctr, s_ctr), (ctcvr, epochs_ctcvr, s_ctcvr) = (
                trained["division_ctr"],
                trained["division_ctcvr"],
            )
            pcvr, above_one = division_cvr(ctr["ctr"], ctcvr["ctcvr"])
            epochs, seconds = epochs_ctr + epochs_ctcvr, s_ctr + s_ctcvr
            extra = {
                "above_one": above_one,
                "epochs_ctr": epochs_ctr,
                "epochs_ctcvr": epochs_ctcvr,
            }
        else:
            predictions, epochs, seconds = trained[name]
            pcvr = predictions["cvr"]
        scores = cvr_against_truth(pcvr, test["true_cvr"].to_numpy(), seed=seed)
        clicked_rows = test["click"].to_numpy() == 1
        scores["clicked_auc"] = _observed_auc(
            test["conversion"].to_numpy()[clicked_rows], pcvr[clicked_rows]
        )
        scores["epochs"] = epochs
        scores["seconds"] = seconds
        results[name] = {**scores, **extra}
    return results


def _observed_auc(labels, scores) -> float:
    auc = keras.metrics.AUC(num_thresholds=10_000)
    auc.update_state(labels, scores)
    return float(auc.result())


# ----------------------------------------------------------------------------- speed


def plain_two_tower(features, tower_units) -> keras.Model:
    """ESMM's shape from standard Keras layers only (the speed reference)."""
    inputs, parts = {}, []
    for f in features:
        inputs[f.name] = keras.Input(shape=f.shape, dtype=f.dtype, name=f.name)
        if isinstance(f, km.DenseFeature):
            standardized = (inputs[f.name] - f.mean) / f.std
            parts.append(keras.ops.expand_dims(standardized, -1))
            continue
        # ids in [0, V); -1 pads. Row 0 is the padding row, masked to zero.
        ids = keras.ops.clip(inputs[f.name] + 1, 0, f.vocabulary_size)
        vectors = keras.layers.Embedding(f.vocabulary_size + 1, f.embedding_dim)(ids)
        mask = keras.ops.expand_dims(keras.ops.cast(ids > 0, "float32"), -1)
        vectors = vectors * mask
        parts.append(keras.ops.sum(vectors, axis=1) if f.max_len else vectors)
    x = keras.layers.Concatenate()(parts)

    def tower(name):
        h = x
        for units in tower_units:
            h = keras.layers.Dense(units, activation="relu")(h)
        return keras.ops.squeeze(keras.layers.Dense(1, "sigmoid", name=name)(h), -1)

    ctr, cvr = tower("ctr"), tower("cvr")
    # No `cvr` output: plain Keras needs a label for every output that has metrics.
    model = keras.Model(inputs, {"ctr": ctr, "ctcvr": ctr * cvr})
    model.compile(
        keras.optimizers.Adam(1e-3),
        loss={"ctr": "binary_crossentropy", "ctcvr": "binary_crossentropy"},
        metrics={
            "ctr": [keras.metrics.AUC(num_thresholds=1000, name="auc")],
            "ctcvr": [keras.metrics.AUC(num_thresholds=1000, name="auc")],
        },
        jit_compile=True,
    )
    return model


def speed_contenders(funnel, tower_units, args) -> list[h.Contender]:
    features, frame = funnel.features, funnel.frame
    tasks = [km.Task("ctr", label="click"), km.Task("ctcvr", label="conversion")]
    x, y = next(iter(make_dataset(frame, features, tasks, len(frame), shuffle=False)))
    batch = args.batch_size

    def plain():
        model = plain_two_tower(features, tower_units)
        ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch).cache()
        ds = ds.prefetch(tf.data.AUTOTUNE)
        return model, lambda e: model.fit(
            ds, epochs=e, shuffle=False, verbose=0, callbacks=h.progress()
        )

    def keras_mtl():
        model = km.build_esmm(features, tasks, tower_units=tower_units)
        ds = make_dataset(frame, features, tasks, batch, shuffle=False)
        return model, lambda e: model.fit(
            ds, epochs=e, verbose=0, callbacks=h.progress()
        )

    def run(setup, key):
        return h.fresh_model(setup, len(frame), args.epochs, batch, key)

    label = "keras_mtl `build_esmm` + `make_dataset(shuffle=False)`"
    return [
        h.Contender(
            "plain",
            "plain Keras 3 two-tower, XLA, `from_tensor_slices`",
            run(plain, "plain"),
            reference="plain",
        ),
        h.Contender("km", label, run(keras_mtl, "km"), reference="plain"),
    ]


# ----------------------------------------------------------------------------- main


def _spread(values) -> str:
    return h.spread(list(values), "{:.3f}")


LABELS = {
    "naive": "naive CVR (clicked only)",
    "esmm": "ESMM",
    "division": "DIVISION (pCTCVR / pCTR, two models)",
}


def proof_report(per_seed: list[dict]) -> list[str]:
    """Part 1's table and verdict lines from `compare_on_funnel`'s results, one
    dict per seed: a row per model (median (min–max) over seeds), the truth's
    row, and for ESMM against each other model the seeds on which it ranks
    (Spearman) and calibrates (|log calibration|) better."""
    models = list(per_seed[0])
    rows = []
    for model in models:
        rs = [s[model] for s in per_seed]
        above = (
            h.spread([100 * r["above_one"] for r in rs], "{:.2f}%")
            if model == "division"
            else "—"
        )
        rows.append(
            [
                LABELS[model],
                _spread(r["spearman"] for r in rs),
                _spread(r["auc"] for r in rs),
                _spread(r["calibration"] for r in rs),
                _spread(r["clicked_auc"] for r in rs),
                above,
            ]
        )
    rows.append(
        [
            "truth (ceiling)",
            "1.000",
            _spread(s[models[0]]["oracle_auc"] for s in per_seed),
            "1.00",
            "",
            "",
        ]
    )
    header = ["model", "Spearman(pCVR, true pCVR), all"]
    header += ["AUC vs z~Bern(true pCVR), all", "mean pCVR / mean true, all"]
    header += ["CVR AUC, clicked", "pCTCVR/pCTR > 1 before clipping, all"]
    lines = [h.markdown_table(header, rows)]
    for other in (m for m in models if m != "esmm" and "esmm" in models):
        wins = sum(
            s["esmm"]["spearman"] > s[other]["spearman"]
            and abs(np.log(s["esmm"]["calibration"]))
            < abs(np.log(s[other]["calibration"]))
            for s in per_seed
        )
        lines.append(
            f"\nESMM ranks and calibrates better than {LABELS[other]} on "
            f"{wins}/{len(per_seed)} seeds."
        )
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="funnels per model")
    parser.add_argument("--impressions", type=int, default=200_000)
    parser.add_argument("--tower", default="64,32", help="tower widths, part 1")
    parser.add_argument(
        "--speed-tower", default="360,200,80", help="tower widths, part 2 (paper's)"
    )
    parser.add_argument("--epochs", type=int, default=3, help="timed speed epochs")
    parser.add_argument("--repeats", type=int, default=3, help="speed repeats")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument(
        "--models",
        default=",".join(MODELS),
        help="pCVR estimates of part 1, comma-separated (default: %(default)s)",
    )
    parser.add_argument("--skip-proof", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args(argv)
    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    if not models or any(m not in MODELS for m in models):
        parser.error(f"--models: choose from {', '.join(MODELS)}; got {args.models!r}.")
    tower = tuple(int(u) for u in args.tower.split(","))
    speed_tower = tuple(int(u) for u in args.speed_tower.split(","))

    print("# ESMM on the funnel simulator\n")
    for line in h.machine_lines():
        print(line)
    print(
        f"- funnel: make_funnel(num_impressions={args.impressions:,}) defaults; "
        f"batch {args.batch_size}; Adam 1e-3"
    )
    sys.stdout.flush()

    if not args.skip_proof:
        print(
            f"\n## pCVR over all test impressions, {args.seeds} seeds, towers {tower}; "
            "median (min–max) over seeds\n"
        )
        per_seed = []
        for seed in range(args.seeds):
            result = compare_on_funnel(
                seed,
                {"num_impressions": args.impressions},
                tower,
                args.batch_size,
                models=models,
            )
            per_seed.append(result)
            print(
                f"- seed {seed}: "
                + "; ".join(
                    f"{m} spearman {r['spearman']:.3f} auc {r['auc']:.3f} "
                    f"calibration {r['calibration']:.2f} ({r['epochs']} epochs, "
                    f"{r['seconds']:.0f} s)"
                    for m, r in result.items()
                )
                + (
                    f"; division pCTCVR/pCTR > 1 on "
                    f"{100 * result['division']['above_one']:.2f}% before clipping"
                    if "division" in result
                    else ""
                ),
                flush=True,
            )
        print()
        for line in proof_report(per_seed):
            print(line)

    if not args.skip_speed:
        funnel = make_funnel(num_impressions=args.impressions, seed=0)
        rows = len(funnel.frame)
        contenders = speed_contenders(funnel, speed_tower, args)
        print(f"\n## Training speed, {rows:,} impressions, towers {speed_tower}\n")
        runs = h.alternated_rounds(contenders, args.repeats)
        speed = {k: h.median_speed(v) for k, v in runs.items()}
        print()
        print(
            h.markdown_table(
                ["contender", "examples/s", "vs plain"],
                [
                    [
                        c.label,
                        h.spread([x.examples_per_s for x in runs[c.key]]),
                        f"{speed[c.key] / speed['plain']:.2f}",
                    ]
                    for c in contenders
                ],
            )
        )
        ratio = speed["km"] / speed["plain"]
        verdict = h.verdict(ratio, REQUIRED_RATIO)
        print(f"\nbuild_esmm / plain = {ratio:.2f}: {verdict} the >= {REQUIRED_RATIO}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
