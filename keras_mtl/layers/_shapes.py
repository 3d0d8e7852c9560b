"""Input-shape checks shared by the layers that take one tensor or a list, and
their per-branch product."""

from __future__ import annotations

from keras import ops


def shape_list(input_shape) -> list[tuple]:
    """A layer's input shape(s) as a list with one shape per input tensor."""
    if input_shape and isinstance(input_shape[0], (list, tuple)):
        return [tuple(s) for s in input_shape]
    return [tuple(input_shape)]


def common_width(owner: str, shapes: list[tuple]) -> int:
    """The last dimension shared by every shape; ValueError naming `owner` if the
    inputs differ or it is unknown."""
    widths = {s[-1] for s in shapes}
    if len(widths) != 1 or None in widths:
        raise ValueError(
            f"{owner}: every input must have the same known last dimension, got "
            f"shapes {shapes}."
        )
    return int(widths.pop())


def task_shapes(owner: str, input_shape) -> list[tuple]:
    """The shapes of a non-empty list of `(batch, units)` inputs of one width
    (one per task); ValueError naming `owner` otherwise."""
    is_list = bool(input_shape) and isinstance(input_shape[0], (list, tuple))
    shapes = shape_list(input_shape) if is_list else []
    if not is_list or any(len(s) != 2 for s in shapes):
        raise ValueError(
            f"{owner}: inputs must be a non-empty list of tensors (batch, units), "
            f"one per task; got input shape {input_shape!r}."
        )
    common_width(owner, shapes)
    return shapes


def per_branch_product(inputs, kernel):
    """`x_k K_k` for every branch `k`, `(batch, branches, units)`, for a stacked
    `kernel` `(branches, input_dim, units)`.

    `inputs` is one tensor `(batch, input_dim)` read by every branch (a list of
    one tensor is the same), or a list with one tensor per branch. Call-time
    only (keras.ops).
    """
    if isinstance(inputs, (list, tuple)) and len(inputs) == 1:
        inputs = inputs[0]
    if isinstance(inputs, (list, tuple)):
        return ops.einsum("bkd,kdu->bku", ops.stack(list(inputs), axis=1), kernel)
    return ops.einsum("bd,kdu->bku", inputs, kernel)
