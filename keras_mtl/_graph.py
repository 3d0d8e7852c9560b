"""Walks over a functional model's graph, layer call by layer call.

Keras keeps the graph in private attributes; `_keras_compat.producer` reads them.
"""

from __future__ import annotations

import keras

from keras_mtl._keras_compat import producer


def model_nodes(outputs, stop=None) -> list:
    """The layer calls (nodes) that `outputs` (tensors, any structure) depend on,
    each once, inputs' nodes included, in walk order; the walk does not go
    behind a node for which `stop(node)` is true."""
    nodes, seen = [], set()
    stack = list(keras.tree.flatten(outputs))
    while stack:
        _, node = producer(stack.pop())
        if id(node) in seen:
            continue
        seen.add(id(node))
        nodes.append(node)
        if stop is None or not stop(node):
            stack.extend(node.input_tensors)
    return nodes


def upstream_operations(tensor) -> set[int]:
    """`id`s of the operations `tensor` depends on, its own included.

    Follows each call (node) of a layer separately, so a layer called several
    times (a shared embedding) is followed only through the calls that lead to
    `tensor`. Input layers count as operations.
    """
    return {id(node.operation) for node in model_nodes(tensor)}


def inputs_behind(inputs: dict, tensor) -> set[str]:
    """Names of the `inputs` (a dict of a model's input tensors) `tensor` depends on."""
    upstream = upstream_operations(tensor)
    return {name for name, t in inputs.items() if id(producer(t)[0]) in upstream}


def calls_reading(outputs, inputs) -> list:
    """Output tensors of the calls that read any of `inputs` (input tensors of a
    model), among the calls `outputs` depend on; each call once, in walk order.

    Such a call must read nothing else: a model cut there (`keras.Model(inputs,
    cut)` and `keras.Model(cut, outputs)`) then never passes a model's own input
    tensors to a model built on intermediate tensors, which Keras would re-wire
    (after which the original model could no longer be saved).

    Raises:
        ValueError: a call reads one of `inputs` and another tensor; the error
            names the layer.
    """
    wanted = {id(t) for t in inputs}

    def reads(node) -> list[bool]:
        return [id(t) in wanted for t in node.input_tensors]

    cut = []
    for node in model_nodes(outputs, stop=lambda node: any(reads(node))):
        read = reads(node)
        if any(read) and not all(read):
            raise ValueError(
                f"Layer {node.operation.name!r} reads model inputs together with "
                "other tensors; the model cannot be cut after its inputs there."
            )
        if any(read):
            cut.extend(node.output_tensors)
    return cut
