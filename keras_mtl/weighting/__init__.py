"""Loss-weighting strategies that work inside `model.fit`.

Pass one to `model.compile(loss_weighting=...)`, by name
("fixed", "uncertainty", "gradnorm", "dwa", "decay") or as an object.
"""

from keras_mtl.weighting.dynamic_weight_average import DynamicWeightAverage
from keras_mtl.weighting.epoch_decay import EpochDecay
from keras_mtl.weighting.fixed_weighting import FixedWeighting
from keras_mtl.weighting.grad_norm import GradNorm
from keras_mtl.weighting.loss_weighting import LossWeighting, get
from keras_mtl.weighting.uncertainty_weighting import UncertaintyWeighting

#: The strategies `get` and the CLI's `--loss-weighting` know by name.
STRATEGIES = {
    "fixed": FixedWeighting,
    "uncertainty": UncertaintyWeighting,
    "gradnorm": GradNorm,
    "dwa": DynamicWeightAverage,
    "decay": EpochDecay,
}

__all__ = [
    "STRATEGIES",
    "DynamicWeightAverage",
    "EpochDecay",
    "FixedWeighting",
    "GradNorm",
    "LossWeighting",
    "UncertaintyWeighting",
    "get",
]
