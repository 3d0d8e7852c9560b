import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_mtl import DenseFeature, SparseFeature
from keras_mtl.layers import FieldEmbedding
from tests.helpers import STRINGS_TF_ONLY, run_layer_test, to_numpy

FIELDS = [
    SparseFeature("item", vocabulary_size=4, embedding_dim=2),
    SparseFeature("shop", vocabulary=("a", "b"), embedding_dim=3),
    SparseFeature("tags", vocabulary_size=3, embedding_dim=2, max_len=2),
    SparseFeature("brand", hash_bins=5, embedding_dim=1),
]
# Two examples of three steps; the last step of each is padding.
ITEM = np.array([[0, 5, -1], [3, 1, -1]])  # 5 is out of range -> OOV row 4
SHOP = np.array([["b", "z", ""], ["a", "a", ""]], dtype=object)  # z -> OOV row 0
TAGS = np.array(  # 7 -> OOV row 3; -1 slots add nothing
    [[[0, 2], [1, -1], [-1, -1]], [[7, -1], [2, 2], [-1, -1]]]
)
BRAND = np.array([["x", "y", ""], ["zz", "x", "q"]], dtype=object)
INPUTS = [ITEM, SHOP, TAGS, BRAND]


def _layer_with_known_tables():
    emb = FieldEmbedding(FIELDS)
    emb(INPUTS)  # build
    tables = [
        (1 + i) * 100 + np.arange(np.prod(t.shape), dtype="float32").reshape(t.shape)
        for i, t in enumerate(emb.tables)
    ]
    for variable, value in zip(emb.tables, tables):
        variable.assign(value)
    return emb, tables


@STRINGS_TF_ONLY
def test_hand_computed_embeddings():
    emb, (t_item, t_shop, t_tags, t_brand) = _layer_with_known_tables()
    out = to_numpy(emb(INPUTS))
    assert emb.output_dim == 8 and out.shape == (2, 3, 8)
    # The hashing row is the FarmHash bucket of the raw string.
    brand_rows = tf.strings.to_hash_bucket_fast(BRAND.astype(str), 5).numpy()
    zeros = np.zeros(8, "float32")
    expected = np.array(
        [
            [
                np.concatenate(
                    [
                        t_item[0],
                        t_shop[2],
                        t_tags[0] + t_tags[2],
                        t_brand[brand_rows[0, 0]],
                    ]
                ),
                np.concatenate(
                    [t_item[4], t_shop[0], t_tags[1], t_brand[brand_rows[0, 1]]]
                ),
                zeros,  # item, shop and tags padded, brand "" is padding too
            ],
            [
                np.concatenate(
                    [t_item[3], t_shop[1], t_tags[3], t_brand[brand_rows[1, 0]]]
                ),
                np.concatenate(
                    [t_item[1], t_shop[1], 2 * t_tags[2], t_brand[brand_rows[1, 1]]]
                ),
                # only the brand is present: a padded item id masks the step, not
                # the other fields' embeddings
                np.concatenate([np.zeros(7, "float32"), t_brand[brand_rows[1, 2]]]),
            ],
        ]
    )
    np.testing.assert_allclose(out, expected)


@STRINGS_TF_ONLY
def test_mask_is_the_item_id_not_padding():
    emb, _ = _layer_with_known_tables()
    want = [[True, True, False], [True, True, False]]
    assert to_numpy(emb.compute_mask(INPUTS)).tolist() == want
    # Keras attaches it to the output, so the next layer receives it.
    out = emb(INPUTS)
    assert to_numpy(out._keras_mask).tolist() == want
    symbolic = [keras.Input((3,), dtype="int64"), keras.Input((3,), dtype="string")]
    symbolic += [keras.Input((3, 2), dtype="int64"), keras.Input((3,), dtype="string")]
    assert tuple(emb(symbolic)._keras_mask.shape) == (None, 3)


@STRINGS_TF_ONLY
def test_string_fields_given_as_rows():
    emb, _ = _layer_with_known_tables()
    # shop: a=1, b=2, unknown=0; padding "" -> -1. brand: its hash buckets.
    shop_rows = np.array([[2, 0, -1], [1, 1, -1]], "int32")
    brand_rows = to_numpy(emb.lookups[3](BRAND)).astype("int32")
    brand_rows[BRAND == ""] = -1
    rows = [ITEM, shop_rows, TAGS, brand_rows]
    np.testing.assert_array_equal(to_numpy(emb(rows)), to_numpy(emb(INPUTS)))
    # The mask of a string item field given as rows: -1 is padding.
    first = FieldEmbedding([FIELDS[1]])
    assert to_numpy(first.compute_mask([shop_rows])).tolist() == [
        [True, True, False],
        [True, True, False],
    ]


@STRINGS_TF_ONLY
def test_same_tables_at_every_leading_shape():
    emb, _ = _layer_with_known_tables()
    steps = to_numpy(emb(INPUTS))
    # A single target item per example (batch,) ...
    single = to_numpy(emb([x[:, 1] for x in INPUTS]))
    assert single.shape == (2, 8)
    np.testing.assert_allclose(single, steps[:, 1])
    # ... and a (batch, candidates, steps) list of lists read the same rows.
    nested = to_numpy(emb([np.stack([x, x], axis=1) for x in INPUTS]))
    assert nested.shape == (2, 2, 3, 8)
    np.testing.assert_allclose(nested[:, 1], steps)
    assert len(emb.weights) == 4


@STRINGS_TF_ONLY
def test_multi_valued_sum_ignores_slot_order_and_padding_slots():
    emb, _ = _layer_with_known_tables()
    swapped = [ITEM, SHOP, TAGS[..., ::-1], BRAND]
    np.testing.assert_allclose(to_numpy(emb(swapped)), to_numpy(emb(INPUTS)))


@STRINGS_TF_ONLY
def test_layer_contract(tmp_path):
    run_layer_test(
        FieldEmbedding,
        {"fields": FIELDS},
        INPUTS,
        expected_output_shape=(None, 3, 8),
        tmp_path=tmp_path,
    )


def test_config_holds_plain_field_configs():
    emb = FieldEmbedding(FIELDS)
    clone = FieldEmbedding.from_config(emb.get_config())
    assert clone.fields == FIELDS
    assert clone.output_dim == 8
    assert not emb.supports_jit  # string lookups and hashing inside
    assert FieldEmbedding([FIELDS[0], FIELDS[2]]).supports_jit


@STRINGS_TF_ONLY
def test_bad_fields_and_inputs_are_explained():
    with pytest.raises(ValueError, match="non-empty list of SparseFeature"):
        FieldEmbedding([])
    with pytest.raises(ValueError, match="non-empty list of SparseFeature"):
        FieldEmbedding([FIELDS[0], DenseFeature("price")])
    emb = FieldEmbedding(FIELDS)
    with pytest.raises(ValueError, match=r"expected a list of 4 tensors"):
        emb(INPUTS[:3])
    with pytest.raises(ValueError, match=r"field 'tags' expects shape .*max_len"):
        emb([ITEM, SHOP, TAGS[..., 0], BRAND])
