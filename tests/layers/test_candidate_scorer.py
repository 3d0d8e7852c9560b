import numpy as np
import pytest

from keras_mtl.layers import CandidateScorer
from tests.helpers import run_layer_test, to_numpy

RNG = np.random.default_rng(0)
USER = RNG.normal(size=(3, 4)).astype("float32")
ITEMS = RNG.normal(size=(3, 5, 2)).astype("float32")  # 5 candidates per example


def _random_scorer(task_type, units=(6,)):
    scorer = CandidateScorer(units, task_type)
    scorer([USER, ITEMS])
    for v in scorer.weights:
        v.assign(RNG.normal(size=v.shape).astype("float32"))
    return scorer


@pytest.mark.parametrize("task_type", ["binary", "regression", "ranking"])
def test_list_form_scores_each_candidate_alone(task_type):
    scorer = _random_scorer(task_type)
    listed = to_numpy(scorer([USER, ITEMS]))
    assert listed.shape == (3, 5)
    alone = np.stack([to_numpy(scorer([USER, ITEMS[:, j]])) for j in range(5)], axis=1)
    np.testing.assert_allclose(listed, alone, rtol=1e-5, atol=1e-6)
    # A candidate's score does not depend on the others in its list.
    reordered = to_numpy(scorer([USER, ITEMS[:, ::-1]]))
    np.testing.assert_allclose(reordered, listed[:, ::-1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "task_type, link",
    [
        ("binary", lambda z: 1 / (1 + np.exp(-z))),
        ("regression", lambda z: z),
        ("ranking", lambda z: z),
    ],
)
def test_hand_computed_scores(task_type, link):
    scorer = CandidateScorer((), task_type)  # no hidden layer: w . [user; item] + b
    scorer.build([(None, 2), (None, 3, 1)])
    scorer.tower.output_unit.kernel.assign([[1.0], [-2.0], [0.5]])
    scorer.tower.output_unit.bias.assign([0.25])
    user = np.array([[1.0, 1.0], [0.0, 2.0]], "float32")
    items = np.array([[[2.0], [0.0], [-4.0]], [[1.0], [1.0], [3.0]]], "float32")
    z = (user @ [1.0, -2.0])[:, None] + 0.5 * items[..., 0] + 0.25
    np.testing.assert_allclose(to_numpy(scorer([user, items])), link(z), rtol=1e-6)
    np.testing.assert_allclose(
        to_numpy(scorer([user, items[:, 0]])), link(z[:, 0]), rtol=1e-6
    )


def test_binary_scores_are_probabilities():
    scores = to_numpy(_random_scorer("binary")([USER, ITEMS]))
    assert ((scores > 0) & (scores < 1)).all()


@pytest.mark.parametrize("list_form", [True, False])
def test_layer_contract(list_form, tmp_path):
    run_layer_test(
        CandidateScorer,
        {"units": (8, 4), "task_type": "ranking" if list_form else "binary"},
        [USER, ITEMS if list_form else ITEMS[:, 0]],
        expected_output_shape=(None, 5) if list_form else (None,),
        tmp_path=tmp_path,
    )


def test_bad_arguments_and_shapes():
    with pytest.raises(ValueError, match="task_type must be one of"):
        CandidateScorer((4,), "multiclass")
    with pytest.raises(ValueError, match=r"expected \[user \(batch, dim\)"):
        CandidateScorer((4,))([ITEMS, ITEMS])
    with pytest.raises(ValueError, match=r"expected \[user \(batch, dim\)"):
        CandidateScorer((4,))([USER, ITEMS[..., None]])
