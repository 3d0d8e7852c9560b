"""One GradNorm (or other per-task-gradient strategy) case computed on
whichever Keras backend runs it.

Imported by the tests (TensorFlow) and run as `python -m
tests.training.task_gradient_case gradnorm pareto` under `KERAS_BACKEND=jax`
or `torch`, which prints the same figures as JSON (one entry per strategy
named), so the backends can be compared number by number.
"""

import json
import sys

import keras
import numpy as np

import keras_mtl as km
from keras_mtl.training import task_gradients

FEATURES = [km.DenseFeature("x", dim=4)]
TASKS = [km.Task("a", "regression"), km.Task("b", "regression")]


def numpy(value) -> list:
    return np.asarray(keras.ops.convert_to_numpy(value), "float64").tolist()


def run(steps: int = 3, strategy: str = "gradnorm") -> dict:
    """A shared bottom of 3 units, weights drawn from a fixed NumPy seed:
    the gradients of one batch, then the strategy's weights after `steps`
    steps."""
    model = km.build_shared_bottom(
        FEATURES,
        TASKS,
        hidden_units=(3,),
        tower_units=(),
        compile={"loss_weighting": strategy, "optimizer": "sgd"},
    )
    rng = np.random.default_rng(1)
    for variable in model.trainable_weights:
        variable.assign(rng.normal(size=variable.shape).astype("float32"))
    x = {"x": rng.normal(size=(8, 4)).astype("float32")}
    y = {task.name: rng.normal(size=8).astype("float32") for task in TASKS}
    strategy = model.loss_weighting
    shared = strategy.shared_weights(model)
    # (Read before any step: GradNorm's state, 0 for the others.)
    initial = getattr(strategy, "initial_losses", None)
    result = task_gradients(model, x, y, None, shared)
    figures = {
        "backend": keras.backend.backend(),
        "shared": [v.path for v in shared],
        "trainable": [v.path for v in model.trainable_weights],
        "total": numpy(result.total),
        "scaled": [numpy(s) for s in result.scaled],
        "gradients": [numpy(g) for g in result.gradients],
        "task_gradients": [[numpy(g) for g in t] for t in result.task_gradients],
        "task_weights": numpy(strategy.task_weights),
    }
    history = []
    for _ in range(steps):
        logs = model.train_on_batch(x, y, return_dict=True)
        history.append(
            {
                "loss": float(logs["loss"]),
                "task_weights": numpy(strategy.task_weights),
                "initial_losses": [] if initial is None else numpy(initial),
            }
        )
    figures["steps"] = history
    figures["weights_after"] = [numpy(v) for v in model.trainable_weights]
    return figures


if __name__ == "__main__":
    print(json.dumps({name: run(strategy=name) for name in sys.argv[1:]}))
