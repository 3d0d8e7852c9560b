"""Raw values of a domain feature -> domain indices for STAR's per-domain layers."""

from __future__ import annotations

import keras
from keras import ops

from keras_mtl.features import SparseFeature, feature_from_config, feature_to_config
from keras_mtl.layers._lookup import make_lookup, table_rows


def check_domain_feature(owner: str, feature) -> SparseFeature:
    """`feature` if it can name domains: a single-valued `SparseFeature` with a
    `vocabulary` or a `vocabulary_size` (a known list of domains); else
    ValueError naming `owner` and the feature."""
    if not isinstance(feature, SparseFeature):
        raise ValueError(
            f"{owner}: the domain feature must be a SparseFeature (one id per "
            f"example naming its domain); got {feature!r}."
        )
    if feature.max_len is not None:
        raise ValueError(
            f"{owner}: the domain feature {feature.name!r} must hold one value per "
            f"example; it is multi-valued (max_len={feature.max_len})."
        )
    if feature.vocabulary is None and feature.vocabulary_size is None:
        kind = "hash_bins" if feature.hash_bins is not None else "boundaries"
        raise ValueError(
            f"{owner}: the domain feature {feature.name!r} needs a known list of "
            f"domains, vocabulary= or vocabulary_size=; it has {kind}."
        )
    return feature


@keras.saving.register_keras_serializable(package="keras_mtl")
class DomainIndex(keras.layers.Layer):
    """The domain of each example: `0 .. num_domains - 1`, or -1 when unknown.

    STAR's layers (`PartitionedNormalization`, `StarDense`, `StarTower`) keep
    parameters per domain and read each example's domain as an index. This
    layer computes it from the raw value of the feature that names the domain,
    inside the model (so a SavedModel takes the raw value): the `i`-th entry of
    the feature's `vocabulary` is domain `i`, and with `vocabulary_size=V` the
    ids `0 .. V - 1` are the domains. A value outside them (out of vocabulary)
    and the padding value (-1, "") give -1, which the per-domain layers treat
    as "no known domain": shared parameters and global statistics only.

    A string domain is looked up like any string feature of a
    `MultiTaskModel`: outside the XLA-compiled step, the layer then receiving
    the rows of the feature's table (`models._host_lookups`).

    Args:
        feature: `SparseFeature` (or its config). Single-valued, with a
            `vocabulary` or a `vocabulary_size`.

    Call arguments:
        inputs: raw values `(batch,)` (strings or integers, the feature's dtype).

    Returns:
        int32 tensor `(batch,)`.

    Example:
    >>> city = SparseFeature("city", vocabulary=("paris", "rome"))
    >>> index = DomainIndex(city)
    >>> index.num_domains
    2
    >>> keras.ops.convert_to_numpy(index(np.array(["rome", "lima", "", "paris"])))
    array([ 1, -1, -1,  0], dtype=int32)
    """

    def __init__(self, feature: SparseFeature | dict, **kwargs):
        super().__init__(**kwargs)
        self.feature = check_domain_feature("DomainIndex", feature_from_config(feature))
        self.lookup = make_lookup(self.feature)
        self.supports_jit = self.feature.supports_jit
        #: XLA-compatible once a string domain arrives as rows (a MultiTaskModel
        #: looks strings up outside the compiled step).
        self.supports_jit_beside_strings = (
            self.feature.dtype == "string" or self.feature.supports_jit
        )

    @property
    def num_domains(self) -> int:
        """The number of known domains."""
        f = self.feature
        return len(f.vocabulary) if f.vocabulary is not None else f.vocabulary_size

    def string_lookups(self, inputs, **kwargs) -> list:
        """`(tensor, feature, lookup)` of a string domain in a call on `inputs`."""
        if self.feature.dtype != "string":
            return []
        return [(inputs, self.feature, self.lookup)]

    def build(self, input_shape):
        pass  # no weights: the lookup holds its vocabulary from the start

    def call(self, inputs):
        rows, mask = table_rows(self.feature, self.lookup, inputs)
        rows = ops.reshape(rows, (-1,))
        mask = ops.reshape(mask, (-1,))
        if self.feature.vocabulary is not None:
            index = rows - 1  # a vocabulary's row 0 is its OOV row
        else:  # vocabulary_size: rows are the ids, the OOV row is the last
            index = ops.where(ops.less(rows, self.num_domains), rows, -1)
        return ops.cast(ops.where(mask, index, -1), "int32")

    def compute_output_shape(self, input_shape):
        return (input_shape[0],)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor((inputs.shape[0],), dtype="int32")

    def get_config(self):
        return {**super().get_config(), "feature": feature_to_config(self.feature)}
