"""Ali-CCP (Alibaba Click and Conversion Prediction), read from the raw public files.

The ESMM paper's public dataset (Ma et al., SIGIR 2018; tianchi.aliyun.com,
dataset 408): per split, `sample_skeleton_{split}.csv` (one impression per
line) and `common_features_{split}.csv` (the user side, shared by many
impressions). Nothing is downloaded.

- `fields`: the 23 fields (`ALICCP_FIELDS`, `AITM_FIELDS`), `aliccp_features`
  and `aliccp_tasks`.
- `parser`: the vectorised byte parser, blocks of lines -> numpy arrays of ids.
- `loader`: `find_aliccp_files` and `load_aliccp`, which joins the two files
  block by block and feeds `keras_mtl.data.make_dataset`.
"""

from keras_mtl.datasets.aliccp.fields import (
    AITM_FIELDS,
    ALICCP_FIELDS,
    LABEL_COLUMNS,
    AliCCPField,
    aliccp_features,
    aliccp_tasks,
)
from keras_mtl.datasets.aliccp.loader import (
    ALICCP_FILES,
    ALICCP_URL,
    SPLITS,
    find_aliccp_files,
    load_aliccp,
)

__all__ = [
    "AITM_FIELDS",
    "ALICCP_FIELDS",
    "ALICCP_FILES",
    "ALICCP_URL",
    "LABEL_COLUMNS",
    "SPLITS",
    "AliCCPField",
    "aliccp_features",
    "aliccp_tasks",
    "find_aliccp_files",
    "load_aliccp",
]
