"""Functional-API builders, `build_x(features, tasks, *, ...) -> MultiTaskModel`
with dict outputs by task, and their registry (`MODELS`, `get_builder`).

The options the builders share mean the same in every builder:

- `dropout`: float. The dropout rate after each hidden layer of every task's
  tower, the per-task head that ends in the task's output (a `TaskTower`; DUPN's
  heads, `CandidateScorer`s included; each funnel step's tower in ESMM, ESM² and
  AITM), and nowhere else. Dropout elsewhere has its own argument:
  `hidden_dropout` after each hidden layer below the towers (the shared bottom
  of `build_shared_bottom`, the per-task hidden stacks of `build_single_task`,
  `build_cross_stitch`, `build_sluice` and `build_l2_constrained`, the shared
  star layers of `build_star`, the shared bottom and the task layers of
  `build_mrn`) and
  `transfer_dropout` on the information AITM transfers between steps. Every
  rate defaults to 0.
- `name`: str or None. The model's name; None (the default) names it after
  what was built, its registry key: "mmoe", "omoe", "ple", "cgc",
  "shared_bottom", "esmm", ...
- the task types: `builder.task_types` lists the `Task.type`s a builder
  builds; it rejects any other task up front, naming the task and its type,
  and the registry reads the list from there.
"""

from keras_mtl.models.adaptive_branching import (
    AdaptiveBranching,
    adaptive_branching,
    group_tasks,
    task_affinity,
)
from keras_mtl.models.aitm import build_aitm
from keras_mtl.models.branched import build_branched
from keras_mtl.models.cross_stitch import build_cross_stitch
from keras_mtl.models.dupn import build_dupn
from keras_mtl.models.esmm import build_esm2, build_esmm
from keras_mtl.models.hierarchy import build_hierarchy
from keras_mtl.models.kl_bound import add_kl_bound
from keras_mtl.models.l2_constrained import build_l2_constrained
from keras_mtl.models.mmoe import build_mmoe, build_omoe
from keras_mtl.models.mrn import build_mrn
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
from keras_mtl.models.sluice import build_sluice
from keras_mtl.models.snr import build_snr
from keras_mtl.models.star import build_star

__all__ = [
    "MODELS",
    "AdaptiveBranching",
    "BuilderSpec",
    "MultiTaskModel",
    "adaptive_branching",
    "add_kl_bound",
    "build_aitm",
    "build_branched",
    "build_cgc",
    "build_cross_stitch",
    "build_dupn",
    "build_esm2",
    "build_esmm",
    "build_hierarchy",
    "build_l2_constrained",
    "build_model",
    "build_mmoe",
    "build_mrn",
    "build_omoe",
    "build_ple",
    "build_shared_bottom",
    "build_single_task",
    "build_sluice",
    "build_snr",
    "build_star",
    "get_builder",
    "group_tasks",
    "model_names",
    "task_affinity",
]
