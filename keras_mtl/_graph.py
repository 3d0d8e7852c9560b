"""Walks over a functional model's graph (Keras keeps it in `_keras_history`).

The only module that reads Keras's private graph attributes.
"""

from __future__ import annotations


def upstream_operations(tensor) -> set[int]:
    """`id`s of the operations `tensor` depends on, its own included.

    Follows each call (node) of a layer separately, so a layer called several
    times (a shared embedding) is followed only through the calls that lead to
    `tensor`. Input layers count as operations.
    """
    found, seen, stack = set(), set(), [tensor]
    while stack:
        operation, node_index, _ = stack.pop()._keras_history
        if (id(operation), node_index) in seen:
            continue
        seen.add((id(operation), node_index))
        found.add(id(operation))
        stack.extend(operation._inbound_nodes[node_index].input_tensors)
    return found


def inputs_behind(inputs: dict, tensor) -> set[str]:
    """Names of the `inputs` (a dict of a model's input tensors) `tensor` depends on."""
    upstream = upstream_operations(tensor)
    return {
        name for name, t in inputs.items() if id(t._keras_history.operation) in upstream
    }
