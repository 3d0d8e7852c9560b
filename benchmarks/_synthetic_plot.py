"""The figure of `synthetic.py`: test MSE against task correlation, and the
per-run losses per correlation (the MMoE paper's Fig. 4 and 5)."""

from __future__ import annotations

import statistics
from pathlib import Path


def save_plot(results, correlations, models, labels, path, noise_floor: float) -> None:
    """Median test MSE vs correlation (min–max) and per-correlation histograms."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(correlations)
    fig, axes = plt.subplots(1, n + 1, figsize=(4.2 * (n + 1), 3.8))
    ax = axes[0]
    for m in models:
        medians, below, above = [], [], []
        for p in correlations:
            losses = [r.loss for r in results if r.model == m and r.correlation == p]
            medians.append(statistics.median(losses))
            below.append(medians[-1] - min(losses))
            above.append(max(losses) - medians[-1])
        ax.errorbar(
            correlations,
            medians,
            yerr=[below, above],
            marker="o",
            capsize=4,
            label=labels[m],
        )
    ax.axhline(noise_floor, color="grey", linestyle=":", label="noise floor")
    ax.set_xlabel("task correlation p")
    ax.set_ylabel("test MSE (mean of 2 tasks)")
    ax.set_title("median over runs, min–max")
    ax.legend(fontsize=8)
    for ax, p in zip(axes[1:], correlations):
        per_model = {
            m: [r.loss for r in results if r.model == m and r.correlation == p]
            for m in models
        }
        everything = [x for v in per_model.values() for x in v]
        lo, hi = min(everything), max(everything)
        bins = 15 if hi > lo else 1
        for m in models:
            ax.hist(
                per_model[m], bins=bins, range=(lo, hi or 1), alpha=0.5, label=labels[m]
            )
        ax.set_title(f"p = {p:g}: final test MSE per run")
        ax.set_xlabel("test MSE")
        ax.set_ylabel("runs")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
