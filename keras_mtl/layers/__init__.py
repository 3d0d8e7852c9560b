"""Reusable, registered and serializable Keras layers."""

from keras_mtl.layers.adaptive_information_transfer import AdaptiveInformationTransfer
from keras_mtl.layers.attention_pooling import AttentionPooling
from keras_mtl.layers.auxiliary_loss import AuxiliaryLoss
from keras_mtl.layers.bernoulli_mixture import BernoulliMixture
from keras_mtl.layers.candidate_scorer import CandidateScorer
from keras_mtl.layers.cross_stitch import CrossStitch
from keras_mtl.layers.customized_gate_control import CustomizedGateControl
from keras_mtl.layers.domain_index import DomainIndex
from keras_mtl.layers.feature_encoder import FeatureEncoder
from keras_mtl.layers.feature_selection import FeatureSelection
from keras_mtl.layers.field_embedding import FieldEmbedding
from keras_mtl.layers.field_wise_sum_pooling import FieldWiseSumPooling
from keras_mtl.layers.inverse_transform import InverseTransform
from keras_mtl.layers.label_embedding import LabelEmbedding
from keras_mtl.layers.layer_mixture import LayerMixture
from keras_mtl.layers.lstm_attention_encoder import LSTMAttentionEncoder
from keras_mtl.layers.missing_value import MissingValueLayer
from keras_mtl.layers.mixture_of_experts import MixtureOfExperts
from keras_mtl.layers.mlp import MLP
from keras_mtl.layers.parallel_dense import ParallelDense
from keras_mtl.layers.partitioned_normalization import PartitionedNormalization
from keras_mtl.layers.property_gated_lstm import PropertyGatedLSTMCell
from keras_mtl.layers.star_dense import StarDense
from keras_mtl.layers.star_tower import StarTower
from keras_mtl.layers.sub_network_routing import SubNetworkRouting
from keras_mtl.layers.subspace_stitch import SubspaceStitch
from keras_mtl.layers.successive_regularization import SuccessiveRegularization
from keras_mtl.layers.task_tower import TaskTower
from keras_mtl.layers.tensor_normal_dense import TensorNormalDense
from keras_mtl.layers.time_features import TimeFeatures

__all__ = [
    "AdaptiveInformationTransfer",
    "AttentionPooling",
    "AuxiliaryLoss",
    "BernoulliMixture",
    "CandidateScorer",
    "CrossStitch",
    "CustomizedGateControl",
    "DomainIndex",
    "FeatureEncoder",
    "FeatureSelection",
    "FieldEmbedding",
    "FieldWiseSumPooling",
    "InverseTransform",
    "LabelEmbedding",
    "LayerMixture",
    "LSTMAttentionEncoder",
    "MLP",
    "MissingValueLayer",
    "MixtureOfExperts",
    "ParallelDense",
    "PartitionedNormalization",
    "PropertyGatedLSTMCell",
    "StarDense",
    "StarTower",
    "SubNetworkRouting",
    "SubspaceStitch",
    "SuccessiveRegularization",
    "TaskTower",
    "TensorNormalDense",
    "TimeFeatures",
]
