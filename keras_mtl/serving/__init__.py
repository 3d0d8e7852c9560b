"""Serving: SavedModel export for TF Serving (signatures, warm-up, configs, retention),
DUPN's serving split, warm starts."""

from keras_mtl._installed import FULL
from keras_mtl.serving.client import DupnClient, RestClient, ServingError

if FULL:  # (else only the REST client, keras_mtl.serving.client, is usable)
    from keras_mtl.serving.config import (
        ServedModel,
        batching_parameters,
        dupn_models,
        models_config,
        write_batching_parameters,
        write_models_config,
    )
    from keras_mtl.serving.dupn import (
        DUPN_PARTS,
        dupn_group_scorers,
        dupn_serving_models,
        export_dupn,
    )
    from keras_mtl.serving.export import export_saved_model
    from keras_mtl.serving.fit_ranking_score import fit_ranking_score
    from keras_mtl.serving.grpc_client import GrpcClient
    from keras_mtl.serving.retention import pinned_versions, prune_versions
    from keras_mtl.serving.signatures import (
        SIGNATURES,
        RankingScore,
        output_groups,
        serving_inputs,
    )
    from keras_mtl.serving.warm_start import warm_start
    from keras_mtl.serving.warmup import read_warmup_requests, write_warmup_requests

__all__ = [
    "DupnClient",
    "GrpcClient",
    "RestClient",
    "ServingError",
    "DUPN_PARTS",
    "dupn_group_scorers",
    "dupn_serving_models",
    "export_dupn",
    "export_saved_model",
    "fit_ranking_score",
    "pinned_versions",
    "prune_versions",
    "RankingScore",
    "SIGNATURES",
    "output_groups",
    "serving_inputs",
    "ServedModel",
    "batching_parameters",
    "dupn_models",
    "models_config",
    "write_batching_parameters",
    "write_models_config",
    "warm_start",
    "read_warmup_requests",
    "write_warmup_requests",
]
# (Without Keras and TensorFlow only what was imported is public.)
__all__ = [name for name in __all__ if name in globals()]
