"""Every use of a Keras internal in keras-mtl, each where Keras has no public way.

The rest of the package uses Keras's public API only (no private attribute of
a Keras object, no `keras.src` import). Each entry below says what it needs,
which public API was looked for and why it does not serve, and the Keras
versions it was checked on: 3.10 to 3.15.1 and keras-nightly
3.16.0.dev2026102704 (read in `keras/src/...` of each). `tests/test_keras_compat.py`
fails loudly, naming the entry, when a Keras release moves one of them;
`tools/keras_nightly.sh` runs the fast loop against the newest nightly.
"""

from __future__ import annotations

import keras

# ------------------------------------------------------------ functional graph
# Keras keeps a functional model's graph on its tensors (`KerasTensor._keras_history`:
# operation, node index, tensor index) and its layers (`Operation._inbound_nodes`).
# The public API gives the layers (`Model.layers`, `Model.operations`) but not
# which call of a layer reads which tensor, which GradNorm's shared layer, the
# hosted string lookups and DUPN's encoder / scorer split all need.
# (`keras/src/ops/node.py`, `keras/src/ops/operation.py`, `keras/src/models/functional.py`.)


def producer(tensor) -> tuple:
    """`(operation, node)` of the layer call that made symbolic `tensor`; the node
    has the public attributes `input_tensors`, `output_tensors`, `arguments`."""
    operation, node_index, _ = tensor._keras_history
    return operation, operation._inbound_nodes[node_index]


# ------------------------------------------------------------ nested layers
# `Model.layers` lists a functional model's top-level layers only; the layers a
# layer owns (a `FeatureEncoder`'s lookups) are in `Layer._layers`, which Keras
# itself walks with the private `_flatten_layers`. (`keras/src/layers/layer.py`.)


def nested_layers(model):
    """Every layer of `model` at any depth: its `layers`, then the layers they
    own (tracked attributes), breadth first, in creation order."""
    queue = list(model.layers)
    while queue:
        layer = queue.pop(0)
        yield layer
        queue.extend(getattr(layer, "_layers", ()))


def untrack_layer(owner, layer) -> None:
    """Stop `owner` (a model) tracking `layer`: its weights and metrics leave the
    model's, and assigning it again tracks it again. Keras has no public
    untracking (`Layer.__delattr__` untracks variables only); its tracker's
    `untrack` forgets both the layer and its id. Used when a recompile replaces
    the loss weighting. (`keras/src/utils/tracking.py`.)"""
    owner._tracker.untrack(layer)


# ------------------------------------------------------------ training step
# `Trainer._symbolic_build` builds the optimizer, compiled losses and metrics from
# a data spec. The public alternatives (`build`, `optimizer.build`) leave the
# compiled metrics unbuilt, and TensorFlow then traces the first step twice.
# (`keras/src/trainers/trainer.py`.) Optional: without it the model trains as
# plain Keras does.


def symbolic_build(model, data_spec) -> bool:
    """Build `model`'s training state from `data_spec`; False when this Keras
    has no such builder."""
    build = getattr(model, "_symbolic_build", None)
    if build is None:
        return False
    build(data_batch=data_spec)
    return True


class HostedInputsModel(keras.Model):
    """What the hosted string lookups need of `keras.Model` (see
    `keras_mtl.models._host_lookups`).

    - A hosted string input reaches the compiled step as int32 table rows, but
      `Functional._convert_inputs_to_tensors` casts every input to its declared
      dtype (string); there is no public hook between `Model.__call__` and that
      cast (`keras/src/models/functional.py`). `convert_hosted_input` (public,
      ours) decides per input.
    - Keras's `jit_compile` setter turns XLA off whenever any layer has
      `supports_jit=False`, the hosted lookups included, although they never
      run inside the step; the only way past it is its backing attribute
      `_jit_compile` (`keras/src/trainers/trainer.py`). `allows_jit` (ours)
      says when XLA may stay on.
    """

    def convert_hosted_input(self, name: str, value):
        """The tensor for input `name`, or None to convert it as Keras does."""
        return None

    def allows_jit(self) -> bool:
        """Whether XLA may be on although some layer has `supports_jit=False`."""
        return False

    def _convert_inputs_to_tensors(self, flat_inputs):
        if any(x is None for x in flat_inputs):
            return super()._convert_inputs_to_tensors(flat_inputs)
        converted = [
            self.convert_hosted_input(spec.name, x)
            for x, spec in zip(flat_inputs, self.inputs)
        ]
        if all(c is None for c in converted):
            return super()._convert_inputs_to_tensors(flat_inputs)
        return [
            keras.ops.convert_to_tensor(x, dtype=spec.dtype, sparse=spec.sparse)
            if c is None
            else c
            for c, x, spec in zip(converted, flat_inputs, self.inputs)
        ]

    @property
    def jit_compile(self):
        return keras.Model.jit_compile.fget(self)

    @jit_compile.setter
    def jit_compile(self, value):
        if value and self.allows_jit():
            self._jit_compile = value
        else:
            keras.Model.jit_compile.fset(self, value)


# ------------------------------------------------------------ optimizers
# Whether an optimizer decays a variable (`exclude_from_weight_decay`'s lists) is
# answered by the private `Optimizer._use_weight_decay`, which keras-nightly
# 3.16 only answers for the variables the optimizer was built with (a
# `KeyError` for a row-wise table otherwise). The lists themselves are private
# too (`_exclude_from_weight_decay`: keys from the private `_var_key`, which the
# TensorFlow optimizer overrides; `_exclude_from_weight_decay_pattern`: a regex
# of `var_names`, searched in `variable.name`), so this reads them directly.
# (`keras/src/optimizers/base_optimizer.py`, `keras/src/backend/tensorflow/optimizer.py`.)


def uses_weight_decay(optimizer, variable) -> bool:
    """Whether `optimizer` applies its weight decay to `variable`."""
    if not optimizer.weight_decay:
        return False
    excluded = getattr(optimizer, "_exclude_from_weight_decay", None) or ()
    if excluded and optimizer._var_key(variable) in excluded:
        return False
    pattern = getattr(optimizer, "_exclude_from_weight_decay_pattern", None)
    return pattern is None or pattern.search(variable.name) is None
