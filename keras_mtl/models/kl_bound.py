"""Tie three heads together: p(click) x p(convert | click) should equal p(order)."""

from __future__ import annotations

import keras

from keras_mtl.layers import AuxiliaryLoss
from keras_mtl.losses import KLDivergenceBound
from keras_mtl.models.multi_task_model import MultiTaskModel


def add_kl_bound(
    model: keras.Model,
    *,
    click: str = "ctr",
    convert: str = "cvr",
    order: str = "ctcvr",
    weight: float = 0.1,
    epsilon: float = 1e-6,
) -> MultiTaskModel:
    """The same model with the KL-divergence bound added to its training loss.

    Meituan's multi-task ranking model has separate click, convert
    (order | click) and order heads and adds the symmetric Bernoulli KL
    divergence between p(click) p(convert) and p(order) to the loss
    (`keras_mtl.losses.KLDivergenceBound`). This works with any builder whose
    model has those three heads, e.g. `build_mmoe` with tasks
    `[Task("ctr", label="click"), Task("cvr", label="conversion",
    given="click"), Task("ctcvr", label="conversion", requires="click")]`.

    The returned model shares every layer (and weight) with `model`, has the
    same inputs and outputs, and is compiled like `model` if `model` was
    compiled (the term then appears in the total `loss`).

    Args:
        model: a model with dict outputs including `click`, `convert`, `order`.
        click: output name of p(click). Defaults to "ctr".
        convert: output name of p(convert | click). Defaults to "cvr".
        order: output name of p(order) (= p(click and convert)). Defaults to
            "ctcvr".
        weight: float >= 0. Weight of the term. Defaults to 0.1 (the blog post
            gives none; pick it on validation data).
        epsilon: float. Probability clipping of the KL. Defaults to 1e-6.

    Returns:
        A `MultiTaskModel`.
    """
    outputs = dict(model.output) if isinstance(model.output, dict) else None
    names = (click, convert, order)
    if outputs is None or any(n not in outputs for n in names):
        have = sorted(outputs) if outputs is not None else "not a dict"
        raise ValueError(
            f"add_kl_bound: the model needs outputs {list(names)}; its outputs are "
            f"{have}."
        )
    if len(set(names)) != 3:
        raise ValueError(
            f"add_kl_bound: click, convert, order must differ; got {names}."
        )
    # In float32 like the outputs (also under a mixed-precision policy): the
    # product of two small probabilities loses its digits in float16.
    product = keras.layers.Multiply(name=f"{click}_times_{convert}", dtype="float32")(
        [outputs[click], outputs[convert]]
    )
    outputs[order] = AuxiliaryLoss(
        KLDivergenceBound(epsilon=epsilon),
        weight,
        name="kl_divergence_bound",
        dtype="float32",
    )([product, outputs[order]])
    bounded = MultiTaskModel(
        model.input, outputs, tasks=getattr(model, "tasks", None), name=model.name
    )
    if model.compiled:
        bounded.compile_from_config(model.get_compile_config())
    return bounded
