"""Per-task gradients (`keras_mtl.training.task_gradients`) and GradNorm's
training step: right on TensorFlow, and the same numbers on JAX and torch."""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO
from tests.training import task_gradient_case


@pytest.fixture(scope="module")
def tensorflow_figures():
    return task_gradient_case.run()


def test_task_gradients_add_up_to_the_gradient_of_the_loss(tensorflow_figures):
    """Without extra losses the loss is Σ_k w_k λ_k L_k: at the shared weights,
    its gradient is the task gradients weighted by w_k."""
    f = tensorflow_figures
    assert f["shared"] == ["bottom/dense_0/kernel", "bottom/dense_0/bias"]
    w = f["task_weights"]
    assert f["total"] == pytest.approx(w[0] * f["scaled"][0] + w[1] * f["scaled"][1])
    for i, path in enumerate(f["shared"]):
        whole = np.array(f["gradients"][f["trainable"].index(path)])
        parts = sum(wk * np.array(g[i]) for wk, g in zip(w, f["task_gradients"]))
        np.testing.assert_allclose(whole, parts, rtol=1e-5, atol=1e-6)
    # The tasks pull the shared weights differently (else the test is empty).
    a, b = (np.array(g[0]) for g in f["task_gradients"])
    assert not np.allclose(a, b)


def test_gradnorm_steps_move_the_weights(tensorflow_figures):
    steps = tensorflow_figures["steps"]
    # L_k(0) is the first step's scaled loss, kept afterwards.
    assert steps[0]["initial_losses"] == pytest.approx(tensorflow_figures["scaled"])
    assert steps[-1]["initial_losses"] == steps[0]["initial_losses"]
    weights = [s["task_weights"] for s in steps]
    assert weights[0] != pytest.approx([1.0, 1.0])
    assert all(sum(w) == pytest.approx(2.0) for w in weights)
    assert weights[1] != pytest.approx(weights[2])


@pytest.fixture(scope="module")
def pareto_figures():
    return task_gradient_case.run(strategy="pareto")


def test_pareto_steps_use_the_closed_form(pareto_figures):
    """The Pareto weights of a step are the two-task closed form of that
    step's gradients at the shared weights (n α, summing to 2)."""
    f = pareto_figures
    g1, g2 = (np.concatenate([np.ravel(g) for g in t]) for t in f["task_gradients"])
    gamma = np.clip((g2 @ g2 - g1 @ g2) / ((g1 - g2) @ (g1 - g2)), 0.001, 0.999)
    assert f["steps"][0]["task_weights"] == pytest.approx(
        [2 * gamma, 2 - 2 * gamma], rel=1e-4
    )
    assert all(sum(s["task_weights"]) == pytest.approx(2.0) for s in f["steps"])


@pytest.mark.slow  # a fresh Python that imports Keras on another backend
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_other_backends_give_the_same_numbers(
    backend, tensorflow_figures, pareto_figures
):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed (.ci/run installs it)")
    env = {**os.environ, "KERAS_BACKEND": backend}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.training.task_gradient_case",
            "gradnorm",
            "pareto",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    compare(backend, figures["gradnorm"], tensorflow_figures)
    compare(backend, figures["pareto"], pareto_figures)


def compare(backend, theirs, ours):
    assert theirs["backend"] == backend
    assert theirs["shared"] == ours["shared"]
    assert theirs["trainable"] == ours["trainable"]

    def close(a, b):
        np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-4, atol=1e-5)

    close(theirs["total"], ours["total"])
    for mine, other in zip(ours["gradients"], theirs["gradients"]):
        close(other, mine)
    for mine, other in zip(ours["task_gradients"], theirs["task_gradients"]):
        for m, o in zip(mine, other):
            close(o, m)
    for mine, other in zip(ours["steps"], theirs["steps"]):
        close(other["loss"], mine["loss"])
        close(other["task_weights"], mine["task_weights"])
        close(other["initial_losses"], mine["initial_losses"])
    for mine, other in zip(ours["weights_after"], theirs["weights_after"]):
        close(other, mine)
