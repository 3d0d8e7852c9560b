"""keras-mtl: multi-task recommendation models for Keras 3."""

from keras_mtl import data, layers, losses, metrics, weighting
from keras_mtl.diagnostics import gate_weights, plot_gate_weights
from keras_mtl.export import export_dupn, export_saved_model
from keras_mtl.features import (
    DenseFeature,
    SequenceFeature,
    SparseFeature,
    Task,
    make_inputs,
)
from keras_mtl.models import (
    MultiTaskModel,
    add_kl_bound,
    build_aitm,
    build_cgc,
    build_cross_stitch,
    build_dupn,
    build_esm2,
    build_esmm,
    build_l2_constrained,
    build_mmoe,
    build_omoe,
    build_ple,
    build_shared_bottom,
    build_single_task,
    dupn_serving_models,
    esm2_tasks,
    esmm_tasks,
)
from keras_mtl.training import compile_model
from keras_mtl.warm_start import warm_start

__version__ = "0.1.0"

__all__ = [
    "DenseFeature",
    "MultiTaskModel",
    "SequenceFeature",
    "SparseFeature",
    "Task",
    "add_kl_bound",
    "build_aitm",
    "build_cgc",
    "build_cross_stitch",
    "build_dupn",
    "build_esm2",
    "build_esmm",
    "build_l2_constrained",
    "build_mmoe",
    "build_omoe",
    "build_ple",
    "build_shared_bottom",
    "build_single_task",
    "compile_model",
    "dupn_serving_models",
    "data",
    "esm2_tasks",
    "esmm_tasks",
    "export_dupn",
    "export_saved_model",
    "gate_weights",
    "layers",
    "losses",
    "make_inputs",
    "metrics",
    "plot_gate_weights",
    "warm_start",
    "weighting",
]
