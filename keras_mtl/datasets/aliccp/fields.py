"""Ali-CCP's fields and the specs built from them: feature specs and ESMM's tasks.

The 23 fields of the raw data (`ALICCP_FIELDS`, by raw field id), their feature
names, sides and default lengths and hash buckets; `aliccp_features` turns a
selection into `SparseFeature`s and `aliccp_tasks` gives ESMM's three tasks over
the label columns `click` and `conversion`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from keras_mtl.features import SparseFeature, check_features
from keras_mtl.tasks import Task, esmm_tasks

#: Label columns of the skeleton (the raw `buy` column is `conversion`).
LABEL_COLUMNS = ("click", "conversion")


@dataclasses.dataclass(frozen=True)
class AliCCPField:
    """One field of the raw data.

    Args:
        field: str. Raw field id, e.g. "101" or "109_14".
        name: str. Feature name used for it (the model input's name).
        side: "user" (in common_features), "item", "user_item" (cross
            features) or "context" (in the skeleton).
        description: str. Meaning, from the public description.
        max_len: int or None. Default length of a multi-valued field; None
            for single-valued fields.
        hash_bins: int. Default number of hash buckets.
        vocabulary_size: int or None. Published number of distinct ids (AITM's
            statistics), None where none is published.
    """

    field: str
    name: str
    side: str
    description: str
    max_len: int | None
    hash_bins: int
    vocabulary_size: int | None


# Hash buckets: about 2x the published vocabulary for the large fields (fewer
# collisions at a moderate table size) and at least 1,000 for the tiny ones (3 ids
# in 4 buckets would collide with probability ~0.6; in 1,000, ~0.003). The
# multi-valued fields have no published size; their buckets follow the item field
# of the same kind.
_FIELDS = (
    AliCCPField("101", "user_id", "user", "user id", None, 500_000, 238_635),
    AliCCPField(
        "109_14",
        "user_category_actions",
        "user",
        "categories of the user's past actions (with counts)",
        50,
        20_000,
        None,
    ),
    AliCCPField(
        "110_14",
        "user_shop_actions",
        "user",
        "shops of the user's past actions (with counts)",
        50,
        500_000,
        None,
    ),
    AliCCPField(
        "127_14",
        "user_brand_actions",
        "user",
        "brands of the user's past actions (with counts)",
        50,
        200_000,
        None,
    ),
    AliCCPField(
        "150_14",
        "user_intention_actions",
        "user",
        "intention nodes of the user's past actions (with counts)",
        50,
        100_000,
        None,
    ),
    AliCCPField("121", "user_cate1", "user", "user categorical id 1", None, 10_000, 98),
    AliCCPField("122", "user_cate2", "user", "user categorical id 2", None, 1_000, 14),
    AliCCPField("124", "user_gender", "user", "gender", None, 1_000, 3),
    AliCCPField("125", "user_age", "user", "age group", None, 1_000, 8),
    AliCCPField(
        "126", "user_consumption_1", "user", "consumption level 1", None, 1_000, 4
    ),
    AliCCPField(
        "127", "user_consumption_2", "user", "consumption level 2", None, 1_000, 4
    ),
    AliCCPField("128", "user_occupation", "user", "occupation", None, 1_000, 3),
    AliCCPField("129", "user_geography", "user", "geography", None, 1_000, 5),
    AliCCPField("205", "item_id", "item", "item id", None, 1_000_000, 467_298),
    AliCCPField("206", "item_category", "item", "item category", None, 20_000, 6_929),
    AliCCPField("207", "item_shop", "item", "shop id", None, 500_000, 263_942),
    AliCCPField(
        "210", "item_intention", "item", "intention node ids", 10, 100_000, None
    ),
    AliCCPField("216", "item_brand", "item", "brand id", None, 200_000, 106_399),
    AliCCPField(
        "508",
        "user_item_category",
        "user_item",
        "item category x user's category actions",
        None,
        20_000,
        5_888,
    ),
    AliCCPField(
        "509",
        "user_item_shop",
        "user_item",
        "item shop x user's shop actions",
        None,
        200_000,
        104_830,
    ),
    AliCCPField(
        "702",
        "user_item_brand",
        "user_item",
        "item brand x user's brand actions",
        None,
        100_000,
        51_878,
    ),
    AliCCPField(
        "853",
        "user_item_intention",
        "user_item",
        "item intention x user's intention actions",
        None,
        100_000,
        37_148,
    ),
    AliCCPField(
        "301", "scenario", "context", "scenario of the impression", None, 1_000, 4
    ),
)
#: The 23 fields, by raw field id: name, side, default `max_len` and hash buckets.
ALICCP_FIELDS: dict[str, AliCCPField] = {f.field: f for f in _FIELDS}
#: The 18 single-valued fields used by AITM's preprocessing (Xi et al., KDD 2021).
AITM_FIELDS = (
    "101",
    "121",
    "122",
    "124",
    "125",
    "126",
    "127",
    "128",
    "129",
    "205",
    "206",
    "207",
    "216",
    "508",
    "509",
    "702",
    "853",
    "301",
)
#: The fields by feature name.
BY_NAME: dict[str, AliCCPField] = {f.name: f for f in _FIELDS}


def _field_of(key: str, what: str) -> AliCCPField:
    """The field named by a raw field id or a feature name."""
    if key in ALICCP_FIELDS:
        return ALICCP_FIELDS[key]
    if key in BY_NAME:
        return BY_NAME[key]
    raise ValueError(
        f"{what}: {key!r} is no Ali-CCP field; known field ids and names: "
        f"{[(f.field, f.name) for f in _FIELDS]}."
    )


def aliccp_features(
    fields: Sequence[str] | None = None,
    embedding_dim: int = 18,
    hash_bins: int | Mapping[str, int] | None = None,
    max_len: Mapping[str, int | None] | None = None,
) -> list[SparseFeature]:
    """Feature specs of Ali-CCP fields: hashed int64 ids, multi-valued lists padded.

    Feature ids are global raw integers (not `[0, V)` per field), so each field
    is hashed inside the model (`SparseFeature(hash_bins=...)`, `dtype="int64"`)
    and its embeddings are sum-pooled (`FeatureEncoder`).

    Args:
        fields: field ids ("101") or feature names ("user_id"), in the order
            wanted. Defaults to all 23 fields of `ALICCP_FIELDS`; `AITM_FIELDS`
            selects the 18 single-valued ones.
        embedding_dim: int. Embedding width of every field. Defaults to 18.
        hash_bins: int for every field, or a dict from field id or feature
            name to buckets overriding `ALICCP_FIELDS`' defaults (about twice
            the published vocabulary size, >= 1,000). Defaults to None.
        max_len: dict from field id or feature name to a `max_len` (None:
            single-valued, the first id of the line) overriding the defaults
            (50 for the four user action lists, 10 for `item_intention`).
            Defaults to None.

    Returns:
        A list of `SparseFeature`, one per field, named after `ALICCP_FIELDS`.

    Example:

    >>> from keras_mtl.datasets.aliccp import AITM_FIELDS, aliccp_features
    >>> features = aliccp_features(AITM_FIELDS, embedding_dim=5)
    >>> [(f.name, f.hash_bins, f.max_len) for f in features[:2]]
    [('user_id', 500000, None), ('user_cate1', 10000, None)]
    """
    selected = [
        _field_of(k, "aliccp_features(fields=...)")
        for k in (ALICCP_FIELDS if fields is None else fields)
    ]
    if isinstance(hash_bins, Mapping):
        bins = {
            _field_of(k, "aliccp_features(hash_bins=...)").field: v
            for k, v in hash_bins.items()
        }
    else:
        bins = {f.field: hash_bins for f in selected} if hash_bins is not None else {}
    lengths = {
        _field_of(k, "aliccp_features(max_len=...)").field: v
        for k, v in (max_len or {}).items()
    }
    return check_features(
        [
            SparseFeature(
                f.name,
                hash_bins=bins.get(f.field, f.hash_bins),
                embedding_dim=embedding_dim,
                max_len=lengths.get(f.field, f.max_len),
                dtype="int64",
            )
            for f in selected
        ]
    )


def aliccp_tasks() -> list[Task]:
    """The ESMM tasks: CTR, CVR (on clicked impressions, metrics only) and CTCVR.

    `cvr` is conditional on a click (`given="click"`: unclicked rows have no
    label) and gets metrics but no loss, as in ESMM where it is trained
    through `ctcvr`. `ctcvr` is `conversion` over all impressions, which
    requires a click wherever there is a conversion.

    Returns:
        `[Task("ctr", label="click"), Task("cvr", label="conversion",
        given="click", metric_only=True), Task("ctcvr", label="conversion",
        requires="click")]`.
    """
    return esmm_tasks()
