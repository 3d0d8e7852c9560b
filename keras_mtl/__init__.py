"""keras-mtl: multi-task recommendation models for Keras 3."""

from keras_mtl._installed import FULL

__version__ = "0.1.0"

if FULL:  # (else only the REST client, keras_mtl.serving.client)
    from keras_mtl import (
        data,
        datasets,
        layers,
        losses,
        metrics,
        optimizers,
        serving,
        sweep,
        tasks,
        transforms,
        weighting,
    )
    from keras_mtl.data import adapt_features
    from keras_mtl.diagnostics import (
        feature_weights,
        gate_weights,
        plot_feature_weights,
        plot_gate_weights,
        prior_task_correlation,
        routing_weights,
        task_correlation,
    )
    from keras_mtl.features import (
        DenseFeature,
        SequenceFeature,
        SparseFeature,
        make_inputs,
    )
    from keras_mtl.models import (
        MultiTaskModel,
        adaptive_branching,
        add_kl_bound,
        build_aitm,
        build_branched,
        build_cgc,
        build_cross_stitch,
        build_dupn,
        build_esm2,
        build_esmm,
        build_hierarchy,
        build_l2_constrained,
        build_mmoe,
        build_mrn,
        build_omoe,
        build_ple,
        build_shared_bottom,
        build_single_task,
        build_sluice,
        build_snr,
        build_star,
    )
    from keras_mtl.objectives import objective_weights
    from keras_mtl.serving import (
        dupn_serving_models,
        export_dupn,
        export_saved_model,
        fit_ranking_score,
        warm_start,
    )
    from keras_mtl.sweep import run_sweep
    from keras_mtl.tasks import Task, aitm_tasks, esm2_tasks, esmm_tasks, funnel_tasks
    from keras_mtl.transforms import Transform, to_transformed_scale

__all__ = [
    "DenseFeature",
    "MultiTaskModel",
    "SequenceFeature",
    "SparseFeature",
    "Task",
    "adapt_features",
    "adaptive_branching",
    "add_kl_bound",
    "aitm_tasks",
    "build_aitm",
    "build_branched",
    "build_cgc",
    "build_cross_stitch",
    "build_dupn",
    "build_esm2",
    "build_esmm",
    "build_hierarchy",
    "build_l2_constrained",
    "build_mmoe",
    "build_mrn",
    "build_omoe",
    "build_ple",
    "build_shared_bottom",
    "build_single_task",
    "build_sluice",
    "build_snr",
    "build_star",
    "dupn_serving_models",
    "data",
    "datasets",
    "esm2_tasks",
    "esmm_tasks",
    "export_dupn",
    "export_saved_model",
    "feature_weights",
    "fit_ranking_score",
    "funnel_tasks",
    "gate_weights",
    "layers",
    "losses",
    "make_inputs",
    "metrics",
    "objective_weights",
    "optimizers",
    "plot_feature_weights",
    "plot_gate_weights",
    "prior_task_correlation",
    "routing_weights",
    "run_sweep",
    "serving",
    "sweep",
    "task_correlation",
    "tasks",
    "to_transformed_scale",
    "Transform",
    "transforms",
    "warm_start",
    "weighting",
]
# (Without Keras and TensorFlow only what was imported is public.)
__all__ = [name for name in __all__ if name in globals()]
