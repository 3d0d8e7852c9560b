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
