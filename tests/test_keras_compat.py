"""keras_mtl._keras_compat: each Keras internal it uses is still where it reads it.

A failure here names the entry of `_keras_compat.py` that a Keras release moved;
fix that one function (the rest of keras-mtl uses public Keras only).
"""

import pathlib
import re

import keras
import numpy as np

from keras_mtl import _keras_compat as compat

PACKAGE = pathlib.Path(compat.__file__).parent
PRIVATE_USE = re.compile(
    r"\b(?!self\b|cls\b)[a-z_]\w*\._(?:compile_config|symbolic_build|distribute_strategy"
    r"|inbound_nodes|keras_history|nodes_by_depth|loss_tracker|jit_compile|layers"
    r"|inputs|var_key|variables|trainable_variables|use_weight_decay"
    r"|convert_inputs_to_tensors|flatten_layers|tracker)\b"
)


def test_no_other_module_uses_keras_internals():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "_keras_compat.py":
            continue
        text = path.read_text()
        for number, line in enumerate(text.splitlines(), start=1):
            if "keras.src" in line or PRIVATE_USE.search(line):
                offenders.append(f"{path.relative_to(PACKAGE)}:{number}: {line}")
            if re.search(
                r"self\._(?:inputs|layers|compile_config|loss_tracker)\b", line
            ):
                offenders.append(f"{path.relative_to(PACKAGE)}:{number}: {line}")
    assert offenders == []


def _model():
    x = keras.Input((3,), name="x")
    h = keras.layers.Dense(2, name="shared")(x)
    return keras.Model(x, {"a": keras.layers.Dense(1, name="a")(h)}), x, h


def test_producer_reads_the_functional_graph():
    model, x, h = _model()
    operation, node = compat.producer(model.output["a"])
    assert operation is model.get_layer("a")
    assert [id(t) for t in node.input_tensors] == [id(h)]
    assert [id(t) for t in node.output_tensors] == [id(model.output["a"])]
    shared, node = compat.producer(h)
    assert shared is model.get_layer("shared")
    assert [id(t) for t in node.input_tensors] == [id(x)]


def test_nested_layers_and_untracking():
    class Owner(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.inner = keras.layers.Dense(1, name="inner")

        def call(self, x):
            return self.inner(x)

    x = keras.Input((3,), name="x")
    owner = Owner(name="owner")
    nested = keras.Model(x, keras.layers.Dense(1, name="top")(owner(x)))
    names = [layer.name for layer in compat.nested_layers(nested)]
    assert names == ["x", "owner", "top", "inner"]  # breadth first
    model, _, _ = _model()
    extra = keras.layers.Dense(1, name="extra")
    extra.build((1,))
    model.extra = extra
    assert len(model.weights) == 6
    compat.untrack_layer(model, extra)
    assert len(model.weights) == 4
    model.extra = extra  # assigned again, tracked again
    assert len(model.weights) == 6


def test_symbolic_build_builds_optimizer_and_metrics():
    model, _, _ = _model()
    model.compile("adam", {"a": "mse"}, metrics={"a": ["mae"]})
    spec = (keras.KerasTensor((8, 3)), {"a": keras.KerasTensor((8, 1))})
    assert compat.symbolic_build(model, spec), "Trainer._symbolic_build is gone"
    assert model.optimizer.built
    containers = [m for m in model.metrics if hasattr(m, "built")]
    assert containers and all(m.built for m in containers)  # the compiled metrics


def test_hosted_inputs_hooks():
    class Rows(compat.HostedInputsModel):
        def convert_hosted_input(self, name, value):
            return keras.ops.cast(value, "int32") if name == "ids" else None

        def allows_jit(self):
            return True

    ids = keras.Input((1,), name="ids", dtype="string")
    lookup = keras.layers.StringLookup(vocabulary=["a", "b"])
    model = Rows(ids, keras.layers.Identity()(ids))
    # An int row passes where Keras would cast to the declared string dtype.
    out = model(np.array([[2]], "int64"))
    assert keras.ops.convert_to_numpy(out).dtype == np.int32
    assert not lookup.supports_jit
    model.lookup = lookup  # a layer that cannot be compiled, tracked
    model.jit_compile = True
    assert model.jit_compile is True


def test_uses_weight_decay_reads_the_exclusions():
    table = keras.Variable(np.zeros((2, 2), "float32"), name="table")
    other = keras.Variable(np.zeros((2,), "float32"), name="bias")
    assert not compat.uses_weight_decay(keras.optimizers.Adam(), table)
    opt = keras.optimizers.AdamW(weight_decay=0.1)
    assert compat.uses_weight_decay(opt, table)
    opt.exclude_from_weight_decay(var_list=[table])
    assert not compat.uses_weight_decay(opt, table)
    assert compat.uses_weight_decay(opt, other)
    opt = keras.optimizers.AdamW(weight_decay=0.1)
    opt.exclude_from_weight_decay(var_names=["bia"])
    assert compat.uses_weight_decay(opt, table)
    assert not compat.uses_weight_decay(opt, other)
