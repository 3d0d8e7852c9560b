"""The builder registry: one signature for every builder, task types checked up
front by each builder, the filters the CLI and benchmarks use."""

import inspect

import pytest

import keras_mtl as km
from keras_mtl.models import registry
from keras_mtl.tasks import TASK_TYPES

FEATURES = [km.SparseFeature("item", vocabulary_size=10), km.DenseFeature("price")]
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


@pytest.mark.parametrize("name", list(registry.MODELS))
def test_every_builder_takes_features_tasks_then_keywords(name):
    builder = registry.MODELS[name].builder
    params = list(inspect.signature(builder).parameters.values())
    assert [p.name for p in params[:2]] == ["features", "tasks"]
    assert all(p.kind is p.POSITIONAL_OR_KEYWORD for p in params[:2])
    assert all(p.kind in (p.KEYWORD_ONLY, p.VAR_KEYWORD) for p in params[2:]), params
    assert inspect.signature(builder).return_annotation == "MultiTaskModel"
    keywords = {p.name for p in params[2:]}
    if keywords != {"kwargs"}:  # build_omoe / build_cgc forward to their family
        assert {"compile", "name"} <= keywords
    # The same names for the same things.
    assert not keywords & {"bottom_units", "head_units", "head_dropout"}


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
            spec.build(FEATURES, [TASK_OF_TYPE[kind], km.Task("cvr")], compile=False)


def test_filters_and_lookup():
    assert registry.model_names(gated=True) == ["mmoe", "omoe", "ple", "cgc"]
    assert registry.model_names(data="sequence") == ["dupn"]
    funnel_data = registry.model_names(data="funnel")
    assert {"esmm", "esm2", "aitm", "mmoe"} <= set(funnel_data)
    assert "dupn" not in funnel_data
    assert "esmm" not in registry.model_names(data="flat")
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
