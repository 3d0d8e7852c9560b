"""The gated sum of expert outputs, shared by the expert layers."""

from __future__ import annotations

import math

from keras import ops

#: Largest per-example product (gates x experts x units) summed element-wise.
#: Above it the sum is a batched matmul, which materialises nothing.
SMALL_MIXTURE = 4096


def gated_sum(gates, experts):
    """`sum_e gates[..., e] * experts[..., e, :]`, leading axes broadcast.

    For small mixtures (MMoE's 2 gates x 8 experts x 16 units) a broadcast
    multiply and sum, which XLA fuses into one loop: on CPU a batched matmul of
    such tiny matrices is slower, forward and backward (measured in
    docs/benchmarks.md, "Where the step's time went"). Larger ones, whose
    product would be materialised without XLA, stay a matmul.

    Args:
        gates: `(batch, ..., experts)` weights.
        experts: `(batch, ..., experts, units)` outputs.

    Returns:
        `(batch, ..., units)`.
    """
    lead = [
        max(int(a), int(b))
        for a, b in zip(gates.shape[1:-1], experts.shape[1:-2], strict=True)
    ]
    if math.prod(lead) * experts.shape[-2] * experts.shape[-1] <= SMALL_MIXTURE:
        return ops.sum(ops.expand_dims(gates, -1) * experts, axis=-2)
    return ops.squeeze(ops.matmul(ops.expand_dims(gates, -2), experts), -2)


#: How a gate weighs the experts: `softmax(W x)` (the MMoE / PLE papers'), or
#: attention with a task query over expert keys.
GATES = ("softmax", "attention")


def check_gate(owner: str, gate, attention_units) -> int | None:
    """Check `gate` and `attention_units` (positive, for "attention" only);
    returns `attention_units` as an int or None."""
    if gate not in GATES:
        raise ValueError(f"{owner}: gate must be one of {list(GATES)}; got {gate!r}.")
    if gate == "softmax":
        if attention_units is not None:
            raise ValueError(
                f"{owner}: attention_units={attention_units!r} is for "
                "gate='attention'; the softmax gate has none."
            )
        return None
    from keras_mtl._checks import check_positive_int

    return check_positive_int(
        owner, "attention_units", attention_units, allow_none=True
    )


def attention_logits(queries, keys):
    """Scaled dot products `q · k / sqrt(d)`.

    Args:
        queries: `(batch, ..., d)`, one query per gate.
        keys: `(batch, ..., experts, d)`, the keys of the experts each gate
            weighs (leading axes broadcast against the queries').

    Returns:
        `(batch, ..., experts)` logits.
    """
    d = queries.shape[-1]
    scores = ops.sum(ops.expand_dims(queries, -2) * keys, axis=-1)
    return scores / ops.cast(math.sqrt(d), scores.dtype)
