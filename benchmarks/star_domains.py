"""STAR on the multi-domain simulator: one model for all domains, scored per domain.

Sheng et al., "One Model to Serve All: Star Topology Adaptive Recommender for
Multi-Domain CTR Prediction", CIKM 2021 (arXiv:2101.11427) train one model on
the data of every domain (scenario) of a platform: STAR's fully connected
layers multiply shared weights by each domain's own (the star topology),
normalise each domain with its own statistics (partitioned normalisation) and
add an auxiliary network on the domain indicator. The paper compares it with
one model per domain and with one shared model that sees every domain; so do
we, on data whose truth is known.

Data: `keras_mtl.datasets.make_multi_domain` with its defaults (five domains
with 45 / 25 / 15 / 10 / 5% of the rows, click rates 0.05 to 0.2, domain
similarity 0.5, 2,000 users, 1,000 items, an 8-dimensional context; see its
docstring for the generating process), `--rows` rows, fresh for every seed,
split 70 / 10 / 20 into train / validation / test at random
(`keras_mtl.data.split_frame`, seeded). Contenders, of the same widths
(`--hidden` hidden units, a tower of 8):

- `star`: `build_star(features, tasks, domain="domain")`, trained on all
  domains (the registry's `"star"`; left out, with a note, while it is not
  registered);
- `shared_bottom`: `build_shared_bottom` trained on all domains, the domain
  one more embedded feature (a shared model that knows the domain);
- `per_domain`: one `build_shared_bottom` per domain, trained on that
  domain's training rows only (the domain feature, constant there, left out)
  and early-stopped on its own validation rows.

Training: Adam at `--learning-rate`, batch `--batch-size`, binary
cross-entropy, up to `--epochs` epochs with early stopping on the validation
loss (patience 2, best weights restored). Every model of a seed sees the same
split; model k of seed s is initialised from seed 1000 s + k.

Scores, on the test rows of each domain (`keras_mtl.diagnostics.domain_metrics`):
AUC and log loss against the observed clicks, and the error against the true
click probability p: RMSE of the predicted q and KL(Bernoulli(p) ||
Bernoulli(q)) (the expected log loss above the truth's). Tables: median (min-max)
over seeds (`_harness.spread`); the truth's own AUC and log loss are the
ceiling. Differences between contenders are paired by seed.

Usage (from the repository root):

    python benchmarks/star_domains.py [--seeds 3] [--rows 100000] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore", message="`shuffle=True` was passed")

try:  # `python -m benchmarks.star_domains`, or imported by the tests
    from benchmarks import _harness as h
except ImportError:  # `python benchmarks/star_domains.py`
    import _harness as h

CONTENDERS = ("star", "shared_bottom", "per_domain")
LABELS = {
    "star": "STAR",
    "shared_bottom": "shared-bottom (domain as a feature)",
    "per_domain": "one shared-bottom per domain",
    "truth": "the truth (ceiling)",
}
METRICS = {  # column of domain_metrics -> (title, format, lower is better)
    "auc": ("AUC (observed clicks)", "{:.4f}", False),
    "log_loss": ("log loss (observed clicks)", "{:.4f}", True),
    "rmse": ("RMSE of the predicted against the true probability", "{:.4f}", True),
    "kl": ("KL(true ‖ predicted), nats per row", "{:.4f}", True),
}
DEFAULT_OUT = h.REPO_ROOT / "benchmarks" / "results" / "star_domains.md"
DEFAULT_PLOT = h.REPO_ROOT / "benchmarks" / "results" / "star_domains.png"
SPLIT = (0.7, 0.1, 0.2)
TOWER = (8,)
QUICK = dict(rows=4_000, seeds=1, epochs=2, batch_size=256, shares="0.6,0.3,0.1")


def star_available() -> bool:
    """Whether the registry has a `"star"` builder."""
    from keras_mtl.models.registry import MODELS

    return "star" in MODELS


def build(key: str, features, tasks, args, domain: str):
    """A compiled contender model (`per_domain`: the model of one domain)."""
    from keras_mtl.models import build_model

    compile = {"learning_rate": args.learning_rate, "jit_compile": args.xla}
    hidden = tuple(args.hidden)
    if key == "star":
        return build_model(
            "star",
            features,
            tasks,
            domain=domain,
            hidden_units=hidden,
            tower_units=TOWER,
            compile=compile,
        )
    return build_model(
        "shared_bottom",
        features,
        tasks,
        hidden_units=hidden,
        tower_units=TOWER,
        compile=compile,
    )


def _rows(data: dict, keep) -> dict:
    return {k: v[keep] for k, v in data.items()}


def fit_predict(key, model_seed, train, val, test, features, tasks, args, domain):
    """Train one model (early stopping on `val`); its predictions on `test`
    and the number of epochs it ran."""
    import keras
    import numpy as np

    from keras_mtl.data import make_dataset

    keras.backend.clear_session()
    keras.utils.set_random_seed(model_seed)
    model = build(key, features, tasks, args, domain)
    stop = keras.callbacks.EarlyStopping(
        monitor="val_loss", mode="min", patience=2, restore_best_weights=True
    )
    history = model.fit(
        make_dataset(train, features, tasks, args.batch_size, seed=model_seed),
        validation_data=make_dataset(val, features, tasks, 4096, shuffle=False),
        epochs=args.epochs,
        callbacks=[stop],
        verbose=0,
    )
    x = make_dataset(test, features, None, 4096, shuffle=False)
    predicted = model.predict(x, verbose=0)["click"]
    return np.asarray(predicted, np.float64).reshape(-1), len(history.history["loss"])


def run_seed(seed: int, keys, args, say=print) -> dict:
    """One seed: fresh data, every contender trained; `{key: domain_metrics
    table}` on the test rows, plus `"truth"` (the true probabilities as the
    prediction) and `"meta"` (the domain sizes and click rates)."""
    import numpy as np

    from keras_mtl.data import split_frame
    from keras_mtl.datasets import make_multi_domain
    from keras_mtl.diagnostics import domain_metrics

    md = make_multi_domain(args.rows, domain_shares=args.shares, seed=seed)
    data = {**md.data, "true_ctr": md.true_ctr}
    train, val, test = split_frame(data, SPLIT, seed=seed)
    strip = [k for k in data if k != "true_ctr"]
    domains, labels = test[md.domain], test["click"]
    tables = {"truth": domain_metrics(labels, test["true_ctr"], domains)}
    tables["meta"] = (md.domain_sizes, md.click_rates)
    for k, key in enumerate(keys):
        start = time.perf_counter()
        model_seed = 1000 * seed + k
        if key == "per_domain":
            # The domain is constant within a domain: drop it from the inputs.
            features = [f for f in md.features if f.name != md.domain]
            predicted = np.empty(len(labels))
            epochs = []
            for d in range(md.num_domains):
                part = [
                    _rows({c: s[c] for c in strip}, s[md.domain] == d)
                    for s in (train, val, test)
                ]
                q, n = fit_predict(
                    key, model_seed + 100 * d, *part, features, md.tasks, args, None
                )
                predicted[test[md.domain] == d] = q
                epochs.append(n)
        else:
            parts = [{c: s[c] for c in strip} for s in (train, val, test)]
            q, n = fit_predict(
                key, model_seed, *parts, md.features, md.tasks, args, md.domain
            )
            predicted, epochs = q, [n]
        tables[key] = domain_metrics(labels, predicted, domains, test["true_ctr"])
        rmse = tables[key]["rmse"]
        say(
            f"- seed {seed} {LABELS[key]}: epochs {'/'.join(map(str, epochs))}, "
            "RMSE vs truth per domain "
            + " ".join(f"{v:.4f}" for v in rmse)
            + f", {time.perf_counter() - start:.0f} s"
        )
    return tables


# ----------------------------------------------------------------------------- output


def domain_header(sizes, rates) -> list[str]:
    total = sum(sizes)
    return [
        f"domain {d} ({100 * n / total:.0f}%, CTR {r:.3f})"
        for d, (n, r) in enumerate(zip(sizes, rates))
    ]


def metric_table(results, keys, metric: str, header) -> str:
    """Rows: contenders (and the truth where it has the metric); columns:
    domains; cells: median (min–max) over seeds."""
    _, fmt, _ = METRICS[metric]
    rows = []
    for key in [*keys, "truth"]:
        if key == "truth" and metric not in results[0]["truth"]:
            continue  # the truth has no error against itself
        values = [[r[key][metric].iloc[d] for r in results] for d in range(len(header))]
        rows.append([LABELS[key]] + [h.spread(v, fmt) for v in values])
    return h.markdown_table(["model", *header], rows)


def paired_lines(results, keys, header) -> list[str]:
    """STAR (or, without it, shared-bottom) minus each other contender, per
    domain and metric, paired by seed, with the seeds where the first is better."""
    first = keys[0]
    lines = []
    for other in keys[1:]:
        for metric, (_, _, lower) in METRICS.items():
            cells = []
            for d in range(len(header)):
                diffs = [
                    r[first][metric].iloc[d] - r[other][metric].iloc[d] for r in results
                ]
                better = sum((x < 0) if lower else (x > 0) for x in diffs)
                cells.append(
                    f"d{d} {h.spread(diffs, '{:+.4f}')} ({better}/{len(diffs)})"
                )
            lines.append(
                f"- {LABELS[first]} − {LABELS[other]}, {metric}: " + "; ".join(cells)
            )
    return lines


def summary_lines(results, keys, header) -> list[str]:
    """Per domain, which contender has the lowest median RMSE against the truth
    and the highest median AUC (computed, not asserted)."""
    lines = []
    for metric, pick in (("rmse", min), ("auc", max)):
        winners = []
        for d in range(len(header)):
            medians = {
                k: statistics.median(r[k][metric].iloc[d] for r in results)
                for k in keys
            }
            best = pick(medians, key=medians.get)
            winners.append(f"domain {d}: {LABELS[best]}")
        lines.append(f"- best median {metric} — " + "; ".join(winners) + ".")
    return lines


def save_plot(results, keys, header, path: Path) -> None:
    """Median RMSE against the truth per domain and contender, bars from the
    lowest to the highest seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(keys)
    x = np.arange(len(header))
    for i, key in enumerate(keys):
        values = np.array(
            [[r[key]["rmse"].iloc[d] for r in results] for d in range(len(header))]
        )
        med = np.median(values, axis=1)
        err = [med - values.min(axis=1), values.max(axis=1) - med]
        ax.bar(x + (i - (len(keys) - 1) / 2) * width, med, width, yerr=err,
               capsize=3, label=LABELS[key])  # fmt: skip
    ax.set_xticks(x, [c.replace(" (", "\n(") for c in header], fontsize=8)
    ax.set_ylabel("RMSE vs true click probability")
    ax.set_title(f"Per-domain error against the truth, {len(results)} seeds")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------- main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..n-1")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument(
        "--shares",
        default="0.45,0.25,0.15,0.10,0.05",
        help="comma-separated share of the rows per domain",
    )
    parser.add_argument("--epochs", type=int, default=20, help="maximum epochs")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--hidden", default="64,32", help="hidden widths")
    parser.add_argument(
        "--xla",
        action="store_true",
        help="compile with XLA (off by default: the models are small and many, "
        "so compiling costs more than it saves; the scores do not depend on it)",
    )
    parser.add_argument(
        "--models", default=",".join(CONTENDERS), help="comma-separated contenders"
    )
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="report; '' for none")
    parser.add_argument("--plot", default=str(DEFAULT_PLOT), help="PNG; '' for none")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: "
        + ", ".join(f"{k.replace('_', '-')} {v}" for k, v in QUICK.items())
        + "; no report or plot unless --out / --plot are given",
    )
    args = parser.parse_args(argv)
    given = {a.split("=")[0] for a in (argv if argv is not None else sys.argv[1:])}
    if args.quick:
        for name, value in QUICK.items():
            if f"--{name.replace('_', '-')}" not in given:
                setattr(args, name, value)
        for name in ("out", "plot"):
            if f"--{name}" not in given:
                setattr(args, name, "")
    args.shares = tuple(float(s) for s in args.shares.split(","))
    args.hidden = tuple(int(u) for u in args.hidden.split(","))
    keys = [k.strip() for k in args.models.split(",")]
    unknown = sorted(set(keys) - set(CONTENDERS))
    if unknown or args.seeds < 1 or len(args.shares) < 2:
        parser.error(
            f"--models from {CONTENDERS} (got {unknown}), --seeds >= 1, >= 2 shares"
        )

    h.add_repo_to_path()
    import logging

    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # retracing notes
    lines = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    started = time.perf_counter()
    notes = []
    if "star" in keys and not star_available():
        keys.remove("star")
        notes.append(
            "- STAR is NOT in this run: the builder registry has no `star` "
            "(build_star not merged yet); the other contenders ran."
        )
    if not keys:
        parser.error("no contender left to run")
    say("# STAR against shared-bottom and per-domain models (Sheng et al. 2021)\n")
    for line in h.machine_lines():
        say(line)
    say(
        f"- data: make_multi_domain({args.rows:,} rows, domain_shares={args.shares}, "
        "otherwise its defaults), fresh per seed; split 70/10/20 (seeded)"
    )
    say(
        f"- models: hidden {args.hidden}, tower {TOWER}; Adam lr "
        f"{args.learning_rate:g}, batch {args.batch_size}, up to {args.epochs} "
        "epochs, early stopping on val_loss (patience 2, best weights), XLA "
        f"{'on' if args.xla else 'off'}"
    )
    say(f"- seeds: {', '.join(map(str, range(args.seeds)))}")
    for note in notes:
        say(note)
    say()

    results = []
    for seed in range(args.seeds):
        results.append(run_seed(seed, keys, args, say))
    header = domain_header(*results[0]["meta"])
    test_rows = results[0]["truth"]["rows"].tolist()
    say(
        f"\nTest rows per domain (seed 0): {', '.join(map(str, test_rows))}. "
        f"Median (min–max) over {len(results)} seeds.\n"
    )
    for metric, (title, _, lower) in METRICS.items():
        say(f"## {title} ({'lower' if lower else 'higher'} is better)\n")
        say(metric_table(results, keys, metric, header))
        say()
    if len(keys) > 1:
        say(
            "## Paired differences per domain (median (min–max); in parentheses "
            "the seeds where the first is better)\n"
        )
        for line in paired_lines(results, keys, header):
            say(line)
        say()
    for line in summary_lines(results, keys, header):
        say(line)
    if args.plot:
        save_plot(results, keys, header, Path(args.plot))
        shown = Path(args.plot).resolve()
        if shown.is_relative_to(h.REPO_ROOT):
            shown = shown.relative_to(h.REPO_ROOT)
        say(f"\nplot: {shown} (RMSE vs truth; bars: lowest and highest seed)")
    say(
        f"\ntotal runtime: {time.perf_counter() - started:.0f} s, load average now "
        f"{h.load_average()}"
    )
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text("\n".join(lines) + "\n")
        print(f"report: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
