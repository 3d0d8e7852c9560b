"""Functional-API builders, `build_x(features, tasks, *, ...) -> MultiTaskModel`
with dict outputs by task, and their registry (`MODELS`, `get_builder`)."""

from keras_mtl.models.aitm import build_aitm
from keras_mtl.models.cross_stitch import build_cross_stitch
from keras_mtl.models.dupn import build_dupn
from keras_mtl.models.esmm import build_esm2, build_esmm
from keras_mtl.models.kl_bound import add_kl_bound
from keras_mtl.models.l2_constrained import build_l2_constrained
from keras_mtl.models.mmoe import build_mmoe, build_omoe
from keras_mtl.models.multi_task_model import MultiTaskModel
from keras_mtl.models.ple import build_cgc, build_ple
from keras_mtl.models.registry import (
    MODELS,
    BuilderSpec,
    build_model,
    get_builder,
    model_names,
)
from keras_mtl.models.shared_bottom import build_shared_bottom
from keras_mtl.models.single_task import build_single_task

__all__ = [
    "MODELS",
    "BuilderSpec",
    "MultiTaskModel",
    "add_kl_bound",
    "build_aitm",
    "build_cgc",
    "build_cross_stitch",
    "build_dupn",
    "build_esm2",
    "build_esmm",
    "build_l2_constrained",
    "build_model",
    "build_mmoe",
    "build_omoe",
    "build_ple",
    "build_shared_bottom",
    "build_single_task",
    "get_builder",
    "model_names",
]
