"""The one registry of builders: name -> builder, the data it reads, its tasks.

The CLI takes its `--model` choices from it and builds through it; benchmarks
that pick builders by name use it too. Every builder is called the same way,
`builder(features, tasks, **keyword_arguments)`.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable, Sequence

from keras_mtl.models.aitm import build_aitm
from keras_mtl.models.branched import build_branched
from keras_mtl.models.cross_stitch import build_cross_stitch
from keras_mtl.models.dupn import build_dupn
from keras_mtl.models.esmm import build_esm2, build_esmm
from keras_mtl.models.hierarchy import build_hierarchy
from keras_mtl.models.l2_constrained import build_l2_constrained
from keras_mtl.models.mmoe import build_mmoe, build_omoe
from keras_mtl.models.mrn import build_mrn
from keras_mtl.models.multi_task_model import MultiTaskModel
from keras_mtl.models.ple import build_cgc, build_ple
from keras_mtl.models.shared_bottom import build_shared_bottom
from keras_mtl.models.single_task import build_single_task
from keras_mtl.models.sluice import build_sluice
from keras_mtl.models.snr import build_snr
from keras_mtl.models.star import build_star
from keras_mtl.tasks import Task, aitm_tasks, esm2_tasks, esmm_tasks

#: What a builder reads. "flat": `SparseFeature` / `DenseFeature` specs (any
#: flat data set, funnel and multi-domain data included); "funnel": flat
#: features with click -> conversion labels; "sequence": behaviour sequences
#: (`SequenceFeature`); "multi_domain": flat features one of which names each
#: row's domain (the builder's `domain=`).
DATA_KINDS = ("flat", "funnel", "sequence", "multi_domain")


@dataclasses.dataclass(frozen=True)
class BuilderSpec:
    """One registered builder and what its callers need to know about it.

    Args:
        name: str. The registry key (the CLI's `--model` value).
        builder: the `build_x(features, tasks, **kwargs)` function.
        data: str. What it reads, one of `DATA_KINDS`.
        gated: bool. Whether it has softmax expert gates
            (`keras_mtl.gate_weights` reads them). Defaults to False.
        preset_tasks: callable returning its default tasks (what `tasks=None`
            means), or None when tasks are required. Defaults to None.
    """

    name: str
    builder: Callable[..., MultiTaskModel]
    data: str
    gated: bool = False
    preset_tasks: Callable[[], list[Task]] | None = None

    def __post_init__(self):
        if self.data not in DATA_KINDS:
            raise ValueError(
                f"BuilderSpec {self.name!r}: data must be one of {DATA_KINDS}, got "
                f"{self.data!r}."
            )
        if not isinstance(getattr(self.builder, "task_types", None), tuple):
            raise TypeError(
                f"BuilderSpec {self.name!r}: the builder states no task_types; "
                "mark it with keras_mtl.models._common.builds(task_types)."
            )

    @property
    def task_types(self) -> tuple[str, ...]:
        """The `Task.type`s the builder builds (it rejects the others): the
        builder's own `task_types`, so they are stated once."""
        return self.builder.task_types

    def reads(self, data: str) -> bool:
        """Whether the builder can train on data of kind `data`."""
        if data in ("funnel", "multi_domain") and self.data == "flat":
            return True  # flat features plus funnel labels / a domain feature
        return data == self.data

    def build(self, features, tasks: Sequence[Task] | None = None, **kwargs):
        """`builder(features, tasks, **kwargs)`; `tasks=None` means the preset."""
        if tasks is None and self.preset_tasks is None:
            raise ValueError(f"{self.builder.__name__}: tasks are required.")
        return self.builder(features, tasks, **kwargs)


def _spec(name, builder, data, **kwargs) -> tuple[str, BuilderSpec]:
    return name, BuilderSpec(name, builder, data, **kwargs)


#: Every builder by name, in the order the CLI lists them.
MODELS = types.MappingProxyType(
    dict(
        [
            _spec("mmoe", build_mmoe, "flat", gated=True),
            _spec("omoe", build_omoe, "flat", gated=True),
            _spec("ple", build_ple, "flat", gated=True),
            _spec("cgc", build_cgc, "flat", gated=True),
            _spec("shared_bottom", build_shared_bottom, "flat"),
            _spec("cross_stitch", build_cross_stitch, "flat"),
            _spec("sluice", build_sluice, "flat"),
            _spec("snr", build_snr, "flat"),
            _spec("star", build_star, "multi_domain"),
            _spec("branched", build_branched, "flat"),
            _spec("hierarchy", build_hierarchy, "flat"),
            _spec("mrn", build_mrn, "flat"),
            _spec("l2_constrained", build_l2_constrained, "flat"),
            _spec("single_task", build_single_task, "flat"),
            _spec("esmm", build_esmm, "funnel", preset_tasks=esmm_tasks),
            _spec("esm2", build_esm2, "funnel", preset_tasks=esm2_tasks),
            _spec("aitm", build_aitm, "funnel", preset_tasks=aitm_tasks),
            _spec("dupn", build_dupn, "sequence"),
        ]
    )
)


def get_builder(name: str) -> BuilderSpec:
    """The registered builder called `name`.

    Example:
    >>> get_builder("mmoe").builder.__name__
    'build_mmoe'
    """
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}; choose one of {list(MODELS)}.")
    return MODELS[name]


def model_names(*, data: str | None = None, gated: bool | None = None) -> list[str]:
    """Registered names, optionally only those that read `data` / are `gated`.

    Example:
    >>> model_names(gated=True)
    ['mmoe', 'omoe', 'ple', 'cgc']
    """
    if data is not None and data not in DATA_KINDS:
        raise ValueError(f"data must be one of {DATA_KINDS} or None, got {data!r}.")
    return [
        name
        for name, spec in MODELS.items()
        if (data is None or spec.reads(data)) and (gated is None or spec.gated == gated)
    ]


def build_model(
    name: str, features, tasks: Sequence[Task] | None = None, **kwargs
) -> MultiTaskModel:
    """Build the registered model `name`: `builder(features, tasks, **kwargs)`.

    Args:
        name: str. A key of `MODELS`.
        features: the feature specs.
        tasks: list of `Task`, or None for the builder's preset (ESMM, ESM²,
            AITM). Defaults to None.
        **kwargs: the builder's keyword arguments (`compile=`, sizes, ...).

    Returns:
        The `MultiTaskModel`.

    Example:
    >>> features = [km.SparseFeature("item", vocabulary_size=10)]
    >>> model = build_model("mmoe", features, [km.Task("click")], num_experts=2)
    >>> sorted(model.output)
    ['click']
    """
    return get_builder(name).build(features, tasks, **kwargs)
