"""The exported signatures: raw features, tf.Example, the fused ranking score,
and the named errors of bad requests (loaded with TensorFlow, as a server would)."""

import json

import numpy as np
import pytest
import tensorflow as tf

import keras_mtl as km
from keras_mtl.serving.signatures import (
    EXAMPLES_INPUT,
    SIGNATURES,
    RankingScore,
    ServingInput,
    serving_inputs,
)

FEATURES = [
    km.SparseFeature("item", vocabulary_size=10, embedding_dim=2),
    km.SparseFeature("tags", hash_bins=16, embedding_dim=2, max_len=3),
    km.DenseFeature("price", dim=2),
    km.DenseFeature("age", allow_missing=True, transform="log", mean=3.6, std=0.3),
]
TASKS = [km.Task("click"), km.Task("buy"), km.Task("minutes", "regression")]
SCORE = RankingScore({"click": 1.0, "buy": 0.5})


@pytest.fixture(scope="module")
def model():
    return km.build_mmoe(FEATURES, TASKS, num_experts=2, expert_units=(4,))


@pytest.fixture(scope="module")
def export(model, tmp_path_factory):
    base = tmp_path_factory.mktemp("served")
    return km.export_saved_model(model, base, ranking_score=SCORE)


@pytest.fixture(scope="module")
def served(export):
    return tf.saved_model.load(str(export)).signatures


RAW = {
    "item": np.array([3, 99, -1], np.int64),  # 99: OOV row; -1: no item
    "tags": np.array([["red", "", ""], ["blue", "red", "green"], ["", "", ""]]),
    "price": np.array([[1.0, 2.0], [0.5, 0.0], [3.0, -1.0]], np.float32),
    "age": np.array([31.0, np.nan, 58.0], np.float32),  # NaN: missing, allowed
}


def call(signature, **values):
    return {k: v.numpy() for k, v in signature(**values).items()}


def expected(model, x):
    return {k: np.asarray(v) for k, v in model.predict(x, verbose=0).items()}


def test_signatures_and_recorded_contract(served, export):
    assert sorted(served) == sorted(SIGNATURES)
    contract = json.loads((export / "assets.extra" / "keras_mtl.json").read_text())
    assert contract["signatures"] == list(SIGNATURES)
    assert contract["inputs"]["tags"] == {
        "dtype": "string",
        "shape": [3],
        "allow_missing": False,
        "pad": "",
    }
    assert contract["inputs"]["age"]["allow_missing"] is True
    assert contract["inputs"]["age"]["above"] == 0.0  # (its log is taken)
    assert contract["ranking_score"]["formula"] == "click^1 * buy^0.5"


def test_serving_inputs_follow_the_specs(model):
    specs = serving_inputs(model)
    assert specs == {
        "item": ServingInput("item", "int64", ()),
        "tags": ServingInput("tags", "string", (3,)),
        "price": ServingInput("price", "float32", (2,)),
        "age": ServingInput("age", "float32", (), allow_missing=True, domain_floor=0.0),
    }
    assert specs["tags"].signature_shape == (None, None)
    assert specs["item"].pad == -1 and specs["tags"].pad == ""


def test_default_signature_matches_predict_and_adds_the_score(model, served):
    out = call(served["serving_default"], **RAW)
    want = expected(model, RAW)
    assert sorted(out) == ["buy", "click", "minutes", "ranking_score"]
    for task in want:
        np.testing.assert_allclose(out[task], want[task], atol=1e-6)
    # The score is the formula of the outputs, computed by hand.
    np.testing.assert_allclose(
        out["ranking_score"], want["click"] * want["buy"] ** 0.5, rtol=1e-5
    )
    alone = call(served["ranking_score"], **RAW)
    assert list(alone) == ["ranking_score"]
    np.testing.assert_allclose(alone["ranking_score"], out["ranking_score"])


def test_short_lists_are_padded_inside_the_graph(model, served):
    short = dict(RAW, tags=np.array([["red"], ["blue"], [""]]))
    padded = dict(RAW, tags=np.array([["red", "", ""], ["blue", "", ""]] + [[""] * 3]))
    out = call(served["serving_default"], **short)
    want = expected(model, padded)
    for task in want:
        np.testing.assert_allclose(out[task], want[task], atol=1e-6)
    empty = call(served["serving_default"], **dict(RAW, tags=np.zeros((3, 0), str)))
    want = expected(model, dict(RAW, tags=np.full((3, 3), "")))
    np.testing.assert_allclose(empty["click"], want["click"], atol=1e-6)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"tags": np.array([["a", "b", "c", "d"]] * 3)}, r"`tags`: lists of at most"),
        ({"price": np.array([[1.0, 2.0, 3.0]] * 3, np.float32)}, r"`price`: \[2\]"),
        (
            {"price": np.array([[1.0, 2.0], [np.nan, 0.0], [0, 0]], np.float32)},
            r"`price`: finite values \(NaN is a missing value only for a "
            r"DenseFeature with allow_missing=True\); bad values in rows\] \[1\]",
        ),
        (
            {"age": np.array([np.inf, 30.0, 30.0], np.float32)},
            r"`age`: finite values > 0 \(the graph takes a logarithm\) or NaN "
            r"\(missing\); bad values in rows\] \[0\]",
        ),
        (
            {"age": np.array([30.0, 0.0, -2.0], np.float32)},
            r"`age`: finite values > 0 .*bad values in rows\] \[1 2\]",
        ),
    ],
)
def test_bad_requests_name_the_input(served, change, message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        served["serving_default"](**dict(RAW, **change))


def example(**features) -> bytes:
    def feature(values):
        values = np.atleast_1d(values)
        if values.dtype.kind in "US":
            return tf.train.Feature(
                bytes_list=tf.train.BytesList(value=[v.encode() for v in values])
            )
        if values.dtype.kind == "f":
            return tf.train.Feature(float_list=tf.train.FloatList(value=values))
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))

    return tf.train.Example(
        features=tf.train.Features(feature={k: feature(v) for k, v in features.items()})
    ).SerializeToString()


def test_examples_signature_parses_with_the_same_rules(model, served):
    examples = [
        example(item=3, tags=["red"], price=np.float32([1, 2]), age=np.float32(31)),
        # No item, no tags, no age: padding and a missing value.
        example(price=np.float32([0.5, 0.0])),
    ]
    out = call(served["serving_examples"], **{EXAMPLES_INPUT: examples})
    x = {
        "item": np.array([3, -1]),
        "tags": np.array([["red", "", ""], ["", "", ""]]),
        "price": np.float32([[1, 2], [0.5, 0]]),
        "age": np.float32([31, np.nan]),
    }
    want = expected(model, x)
    assert sorted(out) == ["buy", "click", "minutes", "ranking_score"]
    for task in want:
        np.testing.assert_allclose(out[task], want[task], atol=1e-6)
    # A dense feature without missing values is required and named.
    with pytest.raises(tf.errors.InvalidArgumentError, match="price"):
        served["serving_examples"](**{EXAMPLES_INPUT: [example(item=3)]})


def test_ranking_score_formulas():
    outputs = {"ctr": tf.constant([0.5, 0.2]), "time": tf.constant([3.0, 0.0])}
    product = RankingScore({"ctr": 2.0, "time": 1.0})
    np.testing.assert_allclose(product(outputs), [0.75, 0.0])
    fused = RankingScore({"ctr": 1.0, "time": 0.5}, "sum", {"time": "log1p"})
    np.testing.assert_allclose(fused(outputs), [0.5 + 0.5 * np.log(4.0), 0.2])
    assert fused.formula == "1*ctr + 0.5*log1p(time)"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"weights": {}}, "non-empty dict"),
        ({"weights": {"ctr": "1"}}, "weight of 'ctr' must be a number"),
        ({"weights": {"ctr": 1}, "combine": "max"}, "'product' or 'sum'"),
        ({"weights": {"ctr": 1}, "transforms": {"ctr": "log1p"}}, "'sum' only"),
        (
            {"weights": {"ctr": 1}, "combine": "sum", "transforms": {"ctr": "exp"}},
            "must be one of",
        ),
    ],
)
def test_ranking_score_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RankingScore(**kwargs)


@pytest.mark.parametrize(
    "score",
    [
        RankingScore({"ctr": 1.0, "cvr": 0.5}),
        RankingScore({"ctr": -0.25}),
        RankingScore({"ctr": 1.0, "x": -0.2, "t": 1e6}, "sum", {"t": "log"}),
        RankingScore({"ctr": 0.9, "time": 0.1}, "sum", {"time": "log1p"}),
    ],
)
def test_ranking_score_round_trips_through_text_and_json(score):
    assert RankingScore.from_formula(score.formula) == score
    assert RankingScore.from_json(score.to_json()) == score
    assert RankingScore.from_json(json.dumps(score.to_json())) == score
    assert RankingScore.from_json({"formula": score.formula}) == score


def test_ranking_score_reads_edited_text():
    edited = RankingScore.from_formula(" 2 * ctr - 0.5*dislike+3*log1p( time ) ")
    assert edited == RankingScore(
        {"ctr": 2.0, "dislike": -0.5, "time": 3.0}, "sum", {"time": "log1p"}
    )
    assert RankingScore.from_formula("ctr^1*cvr^2.5").weights == {
        "ctr": 1.0,
        "cvr": 2.5,
    }
    record = {"formula": "1*ctr + 2*cvr", "combine": "sum"}
    record["weights"] = {"ctr": 1, "cvr": 3}  # edited, the formula not
    with pytest.raises(ValueError, match="'1\\*ctr \\+ 2\\*cvr' and weights"):
        RankingScore.from_json(record)
    for text, message in [
        ("1*ctr + 2*exp(cvr)", "cannot read '2\\*exp\\(cvr\\)'"),
        ("1*ctr + 2*ctr", "'ctr' appears twice"),
        ("ctr^1 + cvr^2", "unexpected '\\+'"),
    ]:
        with pytest.raises(ValueError, match=message):
            RankingScore.from_formula(text)


def test_ranking_score_must_fit_the_model(model, tmp_path):
    with pytest.raises(ValueError, match=r"\['cvr'\] are not outputs"):
        km.export_saved_model(model, tmp_path, ranking_score=RankingScore({"cvr": 1}))
    genre = km.Task("genre", "multiclass", num_classes=3)
    multi = km.build_shared_bottom(FEATURES, [TASKS[0], genre], hidden_units=(4,))
    with pytest.raises(ValueError, match="one shape"):
        km.export_saved_model(
            multi, tmp_path, ranking_score=RankingScore({"click": 1, "genre": 1})
        )
    assert list(tmp_path.iterdir()) == []


def test_sequences_parse_from_examples_and_pad(tmp_path):
    """DUPN's history: lists of steps, a multi-valued field sending `k` values
    per step in tf.Example; short histories are padded inside the graph."""
    item = [
        km.SparseFeature("item", vocabulary_size=20, embedding_dim=4),
        km.SparseFeature("genres", vocabulary_size=5, embedding_dim=2, max_len=2),
    ]
    action = km.SparseFeature("action", vocabulary_size=3, embedding_dim=2)
    history = km.SequenceFeature("history", item=item, properties=[action], max_len=4)
    model = km.build_dupn(
        [history, *item],
        [km.Task("buy")],
        item_tasks=["buy"],
        units=4,
        attention_units=4,
        profile_units=4,
    )
    served = tf.saved_model.load(str(km.export_saved_model(model, tmp_path)))
    full = {
        "history_item": np.array([[5, 7, -1, -1]]),
        "history_genres": np.array([[[1, 2], [3, -1], [-1, -1], [-1, -1]]]),
        "history_action": np.array([[0, 2, -1, -1]]),
        "item": np.array([9]),
        "genres": np.array([[4, -1]]),
    }
    want = expected(model, full)["buy"]
    short = {
        "history_item": full["history_item"][:, :2],
        "history_genres": full["history_genres"][:, :2, :2],
        "history_action": full["history_action"][:, :2],
        "item": full["item"],
        "genres": np.array([[4]]),
    }
    out = call(served.signatures["serving_default"], **short)
    np.testing.assert_allclose(out["buy"], want, atol=1e-6)
    record = example(
        history_item=[5, 7],
        history_genres=[1, 2, 3, -1],
        history_action=[0, 2],
        item=9,
        genres=[4],
    )
    out = call(served.signatures["serving_examples"], examples=[record])
    np.testing.assert_allclose(out["buy"], want, atol=1e-6)
    too_long = dict(short, history_item=np.arange(5)[None])
    with pytest.raises(tf.errors.InvalidArgumentError, match="`history_item`"):
        served.signatures["serving_default"](**too_long)


def small_dupn():
    item = [km.SparseFeature("item", vocabulary_size=20, embedding_dim=4)]
    action = km.SparseFeature("action", vocabulary_size=3, embedding_dim=2)
    history = km.SequenceFeature("history", item=item, properties=[action], max_len=4)
    candidates = km.SequenceFeature("candidates", item=item, max_len=3)
    tasks = [
        km.Task("ctr"),
        km.Task("l2r", type="ranking", list_size=3),
        km.Task("genre", type="multiclass", num_classes=4),
    ]
    return km.build_dupn(
        [history, *item, candidates],
        tasks,
        units=4,
        attention_units=4,
        profile_units=4,
        tower_units=(4,),
    )


def test_dupn_scorer_signatures_need_only_their_inputs_and_tile_the_user(tmp_path):
    """Ranking candidates needs no target item, and one user representation
    serves the whole batch (tiled inside the scorer's graph)."""
    model = small_dupn()
    paths = km.export_dupn(model, tmp_path)
    encoder, scorer = km.dupn_serving_models(model)
    x = {
        "history_item": np.array([[5, 7, 2, -1]]),
        "history_action": np.array([[0, 2, 1, -1]]),
    }
    user = np.asarray(encoder(x)["user_representation"])  # (1, dim)
    served = tf.saved_model.load(str(paths["scorer"])).signatures
    assert sorted(served) == sorted(
        [*SIGNATURES[:2], "score_ctr", "score_l2r", "score_genre"]
    )
    inputs = {k: sorted(f.structured_input_signature[1]) for k, f in served.items()}
    assert inputs["score_l2r"] == ["candidates_item", "user_representation"]
    assert inputs["score_ctr"] == ["item", "user_representation"]
    assert inputs["score_genre"] == ["user_representation"]
    # Two candidate lists, four target items, one user row for all of them.
    lists = np.array([[3, 9, 11], [4, -1, -1]])
    targets = np.array([3, 9, 11, 4])
    ranked = call(served["score_l2r"], user_representation=user, candidates_item=lists)
    scored = call(served["score_ctr"], user_representation=user, item=targets)
    genre = call(served["score_genre"], user_representation=user)
    want = scorer(
        {
            "user_representation": np.repeat(user, 4, axis=0),
            "item": targets,
            "candidates_item": np.concatenate([lists, lists]),
        }
    )
    np.testing.assert_allclose(ranked["l2r"], np.asarray(want["l2r"])[:2], atol=1e-6)
    np.testing.assert_allclose(scored["ctr"], np.asarray(want["ctr"]), atol=1e-6)
    np.testing.assert_allclose(genre["genre"], np.asarray(want["genre"])[:1], atol=1e-6)
    # The full model groups its tasks the same way.
    full = tf.saved_model.load(str(paths["full"])).signatures
    assert sorted(full["score_l2r"].structured_input_signature[1]) == [
        "candidates_item",
        "history_action",
        "history_item",
    ]
    # One row or one per example; anything else is named.
    with pytest.raises(tf.errors.InvalidArgumentError, match="`user_representation`"):
        served["score_ctr"](user_representation=np.repeat(user, 2, 0), item=targets)


def test_bucketised_numbers_pad_with_nan_and_refuse_inf(tmp_path):
    """A float32 bucketised SparseFeature is an id input whose "no value" is
    NaN: lists are padded with it, a tf.Example may leave it out, Inf is named."""
    features = [
        km.SparseFeature("price", boundaries=(10.0, 100.0), embedding_dim=2),
        km.SparseFeature("seen", boundaries=(1.0, 5.0), embedding_dim=2, max_len=3),
    ]
    model = km.build_mmoe(features, [km.Task("click")], num_experts=2)
    specs = serving_inputs(model)
    assert specs["seen"].is_ids and np.isnan(specs["seen"].pad)
    served = tf.saved_model.load(str(km.export_saved_model(model, tmp_path)))
    short = {"price": np.float32([5, np.nan]), "seen": np.float32([[0.5], [7]])}
    padded = {"price": short["price"], "seen": np.float32([[0.5, np.nan, np.nan]] * 2)}
    padded["seen"][1, 0] = 7
    want = expected(model, padded)["click"]
    out = call(served.signatures["serving_default"], **short)
    np.testing.assert_allclose(out["click"], want, atol=1e-6)
    records = [
        example(price=np.float32(5), seen=np.float32([0.5])),
        example(seen=np.float32([7])),
    ]
    out = call(served.signatures["serving_examples"], examples=records)
    np.testing.assert_allclose(out["click"], want, atol=1e-6)
    with pytest.raises(
        tf.errors.InvalidArgumentError, match="`price`: finite values or NaN"
    ):
        served.signatures["serving_default"](
            **dict(short, price=np.float32([np.inf, 1]))
        )
    contract = json.loads(
        (tmp_path / "1" / "assets.extra" / "keras_mtl.json").read_text()
    )
    assert contract["inputs"]["seen"]["pad"] == "NaN"


def test_a_preprocessor_takes_raw_timestamps_in_place_of_what_it_derives(tmp_path):
    """`TimeFeatures` in front of the model: the signatures take Unix times
    instead of the hour, weekday and gaps, in every signature and the contract."""
    features = [
        km.SparseFeature("item", vocabulary_size=10, embedding_dim=2),
        km.SparseFeature("hour", vocabulary_size=24, embedding_dim=2),
        km.SparseFeature("weekday", vocabulary_size=7, embedding_dim=2),
        km.SparseFeature(
            "gap", boundaries=(60, 3_600), dtype="int64", embedding_dim=2, max_len=3
        ),
    ]
    model = km.build_mmoe(features, [km.Task("click")], num_experts=2)
    times = km.layers.TimeFeatures(elapsed={"gap": "seen_at"})
    path = km.export_saved_model(model, tmp_path, preprocessor=times)
    served = tf.saved_model.load(str(path)).signatures
    default = served["serving_default"]
    assert sorted(default.structured_input_signature[1]) == [
        "item",
        "seen_at",
        "timestamp",
    ]
    contract = json.loads((path / "assets.extra" / "keras_mtl.json").read_text())
    assert sorted(contract["inputs"]) == ["item", "seen_at", "timestamp"]
    assert contract["inputs"]["seen_at"] == {
        "dtype": "int64",
        "shape": [3],
        "allow_missing": False,
        "pad": -1,
    }
    assert contract["preprocessor"]["config"]["elapsed"] == {"gap": "seen_at"}
    # Thursday 1970-01-01 01:00, Friday 1970-01-02 00:00; seen 30 s, 2 h and
    # 1 day before; a short list is padded with "no time".
    t = np.array([3_600, 86_400], np.int64)
    seen = np.array([[3_570, -1], [79_200, 0]], np.int64)
    want = expected(
        model,
        {
            "item": np.array([3, 4]),
            "hour": np.array([1, 0]),
            "weekday": np.array([3, 4]),
            "gap": np.array([[30, -1, -1], [7_200, 86_400, -1]]),
        },
    )
    got = call(default, item=np.array([3, 4]), timestamp=t, seen_at=seen)
    np.testing.assert_allclose(got["click"], want["click"], atol=1e-6)
    # tf.Examples carry the same raw values; a missing time is no value.
    records = [
        example(item=[3], timestamp=[3_600], seen_at=[3_570]),
        example(item=[3]),
    ]
    parsed = call(served["serving_examples"], examples=tf.constant(records))
    none = expected(
        model,
        {
            "item": np.array([3]),
            "hour": np.array([-1]),
            "weekday": np.array([-1]),
            "gap": np.array([[-1, -1, -1]]),
        },
    )
    np.testing.assert_allclose(parsed["click"][0], want["click"][0], atol=1e-6)
    np.testing.assert_allclose(parsed["click"][1:], none["click"], atol=1e-6)
    with pytest.raises(tf.errors.InvalidArgumentError, match="`seen_at`"):
        default(item=np.array([3]), timestamp=t[:1], seen_at=np.zeros((1, 4), np.int64))


def test_specs_are_found_through_nested_models():
    """DUPN's scorer embeds its item inputs in a nested model: a float32
    bucketised item field is still an id input there (padded with NaN), not a
    dense value that must be finite."""
    item = [
        km.SparseFeature("item", vocabulary_size=20, embedding_dim=4),
        km.SparseFeature("price", boundaries=(1.0, 10.0), embedding_dim=2),
    ]
    history = km.SequenceFeature(
        "history",
        item=item,
        properties=[km.SparseFeature("action", vocabulary_size=3, embedding_dim=2)],
        max_len=4,
    )
    candidates = km.SequenceFeature("candidates", item=item, max_len=3)
    tasks = [km.Task("ctr"), km.Task("l2r", type="ranking", list_size=3)]
    model = km.build_dupn(
        [history, *item, candidates],
        tasks,
        units=4,
        attention_units=4,
        profile_units=4,
        tower_units=(4,),
    )
    _, scorer = km.dupn_serving_models(model)
    specs = serving_inputs(scorer)
    for name in ("price", "candidates_price"):
        assert specs[name].is_ids and np.isnan(specs[name].pad), name
    assert not specs["user_representation"].is_ids


def test_a_preprocessor_needs_matching_dtypes_and_may_share_a_raw_input(tmp_path):
    """A float32 bucketised gap would read the preprocessor's -1 as a number
    (bucket 0), not as "no value": the export refuses it, naming the feature.
    A raw input the model also takes goes to both."""
    times = km.layers.TimeFeatures(hour=None, weekday=None, elapsed={"gap": "seen"})
    float_gap = [km.SparseFeature("gap", boundaries=(60.0,), embedding_dim=2)]
    model = km.build_mmoe(float_gap, [km.Task("click")], num_experts=2)
    with pytest.raises(ValueError, match=r"\['gap'\] as int64.*dtype='int64'"):
        km.export_saved_model(model, tmp_path / "a", preprocessor=times)
    shared = [
        km.SparseFeature("gap", boundaries=(60,), dtype="int64", embedding_dim=2),
        km.SparseFeature(
            "timestamp", boundaries=(86_400,), dtype="int64", embedding_dim=2
        ),
    ]
    model = km.build_mmoe(shared, [km.Task("click")], num_experts=2)
    path = km.export_saved_model(model, tmp_path / "b", preprocessor=times)
    served = tf.saved_model.load(str(path)).signatures["serving_default"]
    t, seen = np.array([100_000, 10]), np.array([99_990, 5])
    got = call(served, timestamp=t, seen=seen)
    want = expected(model, {"timestamp": t, "gap": np.array([10, 5])})
    np.testing.assert_allclose(got["click"], want["click"], atol=1e-6)
