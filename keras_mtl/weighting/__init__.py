"""Loss-weighting strategies that work inside `model.fit`.

Pass one to `model.compile(loss_weighting=...)`, by name
("fixed", "uncertainty", "gradnorm", "dwa", "decay", "pareto", "pcgrad",
"cagrad") or as an object.
"""

from keras_mtl.weighting.ca_grad import CAGrad
from keras_mtl.weighting.dynamic_weight_average import DynamicWeightAverage
from keras_mtl.weighting.epoch_decay import EpochDecay
from keras_mtl.weighting.fixed_weighting import FixedWeighting
from keras_mtl.weighting.grad_norm import GradNorm
from keras_mtl.weighting.gradient_weighting import GradientWeighting
from keras_mtl.weighting.loss_weighting import LossWeighting, get
from keras_mtl.weighting.pareto_weighting import ParetoWeighting
from keras_mtl.weighting.pc_grad import PCGrad
from keras_mtl.weighting.uncertainty_weighting import UncertaintyWeighting

#: The strategies `get` and the CLI's `--loss-weighting` know by name.
STRATEGIES = {
    "fixed": FixedWeighting,
    "uncertainty": UncertaintyWeighting,
    "gradnorm": GradNorm,
    "dwa": DynamicWeightAverage,
    "decay": EpochDecay,
    "pareto": ParetoWeighting,
    "pcgrad": PCGrad,
    "cagrad": CAGrad,
}

__all__ = [
    "STRATEGIES",
    "CAGrad",
    "DynamicWeightAverage",
    "EpochDecay",
    "FixedWeighting",
    "GradNorm",
    "GradientWeighting",
    "LossWeighting",
    "PCGrad",
    "ParetoWeighting",
    "UncertaintyWeighting",
    "get",
]
