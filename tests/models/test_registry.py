"""The builder registry: one signature for every builder, task types checked up
front by each builder, the filters the CLI and benchmarks use; the options every
builder shares (`dropout`, `name`) mean the same in each."""

import inspect

import keras
import pytest

import keras_mtl as km
from keras_mtl.models import registry
from keras_mtl.tasks import TASK_TYPES

FEATURES = [km.SparseFeature("item", vocabulary_size=10), km.DenseFeature("price")]
#: DUPN's inputs: a behaviour history, the target item (same item spec), a profile.
HISTORY = km.SequenceFeature(
    "history",
    item=[FEATURES[0]],
    properties=[km.SparseFeature("action", vocabulary_size=3)],
    max_len=4,
)
#: Features and tasks each kind of builder is built with here (None: the preset).
BUILD_ARGS = {
    "flat": (FEATURES, [km.Task("ctr"), km.Task("cvr", "regression")]),
    "funnel": (FEATURES, None),
    "sequence": ([HISTORY, *FEATURES], [km.Task("ctr"), km.Task("buy")]),
    "multi_domain": (FEATURES, [km.Task("ctr"), km.Task("cvr", "regression")]),
}
#: The options a builder cannot be built without.
REQUIRED = {"star": {"domain": "item"}}
#: Every dropout argument of a builder and the layers (by name) it must reach.
DROPOUT_PARTS = {
    # tower dropout: the per-task heads, and nothing else
    "dropout": lambda name: name.endswith(("_tower", "_head")),
    # below the towers: the shared bottom, per-task hidden MLPs or stacks
    "hidden_dropout": lambda name: (
        name == "bottom" or name.endswith("_hidden") or name.startswith("dropout_")
    ),
    # AITM's transferred information
    "transfer_dropout": lambda name: name.endswith("_ait"),
}


def build_small(spec, **kwargs):
    features, tasks = BUILD_ARGS[spec.data]
    kwargs = {**REQUIRED.get(spec.name, {}), **kwargs}
    return spec.build(features, tasks, compile=False, **kwargs)


def dropout_rates(model) -> dict:
    """Layer name -> dropout rate, for every top-level layer that has one."""
    rates = {}
    for outer in model.layers:
        # A wrapper (e.g. SuccessiveRegularization) under its own name.
        layer = outer.layer if isinstance(outer, keras.layers.Wrapper) else outer
        if isinstance(layer, keras.layers.Dropout):
            rates[outer.name] = layer.rate
        elif "dropout" in layer.get_config():
            rates[outer.name] = layer.get_config()["dropout"]
    return rates


#: A task of each type (the funnel builders read tasks named like their outputs).
TASK_OF_TYPE = {
    "binary": km.Task("ctr"),
    "regression": km.Task("ctr", "regression"),
    "multiclass": km.Task("ctr", "multiclass", num_classes=3),
    "ranking": km.Task("ctr", "ranking", list_size=4),
}


def test_registry_lists_every_public_builder_once():
    public = sorted(n for n in km.__all__ if n.startswith("build_"))
    assert sorted(s.builder.__name__ for s in registry.MODELS.values()) == public
    for name, spec in registry.MODELS.items():
        assert spec.name == name and spec.builder is getattr(km, spec.builder.__name__)
        assert set(spec.task_types) <= set(TASK_TYPES)
        # Read from the builder, which states them once (`builds`).
        assert spec.task_types is spec.builder.task_types


def test_task_types_come_from_the_builder():
    tower = ("binary", "regression", "multiclass")
    assert km.build_mmoe.task_types == km.build_cgc.task_types == tower
    assert km.build_esmm.task_types == km.build_aitm.task_types == ("binary",)
    assert km.build_dupn.task_types == (*tower, "ranking")

    def build_plain(features, tasks):
        return None

    with pytest.raises(TypeError, match="'plain': the builder states no task_types"):
        registry.BuilderSpec("plain", build_plain, "flat")


@pytest.mark.parametrize("name", list(registry.MODELS))
def test_every_builder_takes_features_tasks_then_keywords(name):
    builder = registry.MODELS[name].builder
    params = list(inspect.signature(builder).parameters.values())
    assert [p.name for p in params[:2]] == ["features", "tasks"]
    assert all(p.kind is p.POSITIONAL_OR_KEYWORD for p in params[:2])
    # Typed keyword-only options, each in the docstring's Args (no **kwargs).
    assert all(p.kind is p.KEYWORD_ONLY for p in params[2:]), params
    assert all(p.annotation is not p.empty for p in params), params
    assert inspect.signature(builder).return_annotation == "MultiTaskModel"
    args = builder.__doc__.split("Args:")[1].split("Returns:")[0]
    for p in params:
        assert f"\n        {p.name}: " in args, (builder.__name__, p.name)
    keywords = {p.name for p in params[2:]}
    assert {"compile", "name", "dropout"} <= keywords
    # The same names for the same things.
    assert not keywords & {"bottom_units", "head_units", "head_dropout"}
    # One naming rule: None, then the model is named after its registry key.
    assert inspect.signature(builder).parameters["name"].default is None


@pytest.mark.parametrize("name", list(registry.MODELS))
def test_models_are_named_after_their_registry_key(name):
    spec = registry.MODELS[name]
    assert build_small(spec).name == name
    assert build_small(spec, name="mine").name == "mine"


@pytest.mark.parametrize("name", list(registry.MODELS))
def test_dropout_means_the_towers_in_every_builder(name):
    spec = registry.MODELS[name]
    keywords = inspect.signature(spec.builder).parameters
    rates = [arg for arg in DROPOUT_PARTS if arg in keywords]
    assert "dropout" in rates
    assert set(dropout_rates(build_small(spec)).values()) == {0.0}  # the default
    for arg in rates:
        model = build_small(spec, **{arg: 0.3})
        reached = {k for k, rate in dropout_rates(model).items() if rate == 0.3}
        part = {k for k in dropout_rates(model) if DROPOUT_PARTS[arg](k)}
        # Exactly its part of the network: every layer of it, and nothing else.
        assert reached and reached == part, (arg, reached, part)
        others = {k: r for k, r in dropout_rates(model).items() if k not in reached}
        assert set(others.values()) <= {0.0}, (arg, others)
    with pytest.raises(ValueError, match=f"^{spec.builder.__name__}: dropout"):
        build_small(spec, dropout=1.0)


@pytest.mark.parametrize("name", list(registry.MODELS))
def test_unsupported_task_types_are_rejected_up_front(name):
    spec = registry.MODELS[name]
    unsupported = [t for t in TASK_TYPES if t not in spec.task_types]
    if not unsupported:
        assert spec.data == "sequence"  # DUPN builds every type
        return
    for kind in unsupported:
        builder = spec.builder.__name__
        with pytest.raises(
            ValueError,
            match=f"^{builder}: task 'ctr' has type '{kind}'; {builder} supports "
            + ", ".join(spec.task_types),
        ):
            spec.build(
                FEATURES,
                [TASK_OF_TYPE[kind], km.Task("cvr")],
                compile=False,
                **REQUIRED.get(name, {}),
            )


def test_filters_and_lookup():
    assert registry.model_names(gated=True) == ["mmoe", "omoe", "ple", "cgc"]
    assert registry.model_names(data="sequence") == ["dupn"]
    funnel_data = registry.model_names(data="funnel")
    assert {"esmm", "esm2", "aitm", "mmoe"} <= set(funnel_data)
    assert "dupn" not in funnel_data
    assert "esmm" not in registry.model_names(data="flat")
    # Multi-domain data: STAR (it needs the domain) and every flat builder.
    multi_domain = registry.model_names(data="multi_domain")
    assert {"star", "shared_bottom", "mmoe"} <= set(multi_domain)
    assert not {"esmm", "dupn"} & set(multi_domain)
    assert "star" not in registry.model_names(data="flat")
    assert registry.get_builder("esmm").preset_tasks is km.esmm_tasks
    assert registry.get_builder("mmoe").preset_tasks is None
    with pytest.raises(ValueError, match=r"Unknown model 'nope'; choose one of"):
        registry.get_builder("nope")
    with pytest.raises(ValueError, match="tasks are required"):
        registry.build_model("mmoe", FEATURES)
    with pytest.raises(ValueError, match="data must be one of"):
        registry.model_names(data="tabular")


def test_presets_are_the_default_tasks():
    model = registry.build_model("esm2", FEATURES, compile=False)
    assert sorted(model.output) == sorted(t.name for t in km.esm2_tasks())
