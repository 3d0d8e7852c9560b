import numpy as np
import pytest

from keras_mtl.layers.star_tower import StarTower
from tests.helpers import run_layer_test, to_numpy

RNG = np.random.default_rng(0)
X = RNG.normal(size=(5, 4)).astype("float32")
DOMAIN = np.array([0, 1, 2, -1, 1])
AUX = RNG.normal(size=(5, 3)).astype("float32")


def _np(x):
    return to_numpy(x)


def test_layer_contract_binary_with_aux(tmp_path):
    run_layer_test(
        StarTower,
        {"num_domains": 3, "units": (4,), "aux_units": (2,), "dropout": 0.1},
        [X, DOMAIN, AUX],
        expected_output_shape=(None,),
        tmp_path=tmp_path,
    )


def test_layer_contract_multiclass_without_aux(tmp_path):
    run_layer_test(
        StarTower,
        {"num_domains": 3, "task_type": "multiclass", "num_classes": 3},
        [X, DOMAIN],
        expected_output_shape=(None, 3),
        tmp_path=tmp_path,
    )


@pytest.mark.parametrize("task_type", ["binary", "regression", "multiclass"])
def test_the_auxiliary_logit_is_added_before_the_output(task_type):
    classes = 3 if task_type == "multiclass" else None
    tower = StarTower(
        3, (4,), task_type, num_classes=classes, aux_units=(2,), name="tower"
    )
    out = _np(tower([X, DOMAIN, AUX]))
    h = tower.hidden[0]([X, DOMAIN])
    main = _np(tower.logit([h, DOMAIN]))
    aux = _np(tower.aux_logit(tower.aux_hidden(AUX)))
    logits = main + aux
    if task_type == "multiclass":
        e = np.exp(logits - logits.max(-1, keepdims=True))
        want = e / e.sum(-1, keepdims=True)
    else:
        logits = logits[:, 0]
        want = 1 / (1 + np.exp(-logits)) if task_type == "binary" else logits
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)
    assert np.abs(aux).max() > 0  # the check is not against a zero aux logit


def test_hand_computed_sum_of_biases():
    # No hidden layers, zero kernels: sigmoid(b + b_p + aux bias).
    tower = StarTower(2, aux_units=())
    tower.build([(None, 4), (None,), (None, 3)])
    tower.logit.kernel.assign(np.zeros((4, 1), "float32"))
    tower.logit.bias.assign(np.array([0.3], "float32"))
    tower.logit.domain_bias.assign(np.array([[0.5], [-1.0]], "float32"))
    tower.aux_logit.kernel.assign(np.zeros((3, 1), "float32"))
    tower.aux_logit.bias.assign(np.array([0.2], "float32"))
    out = _np(tower([X[:3], np.array([0, 1, -1]), AUX[:3]]))
    logits = np.array([0.3 + 0.5 + 0.2, 0.3 - 1.0 + 0.2, 0.3 + 0.2])
    np.testing.assert_allclose(out, 1 / (1 + np.exp(-logits)), rtol=1e-6)


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="StarTower: task_type must be one of"):
        StarTower(2, task_type="ranking")
    with pytest.raises(ValueError, match="StarTower: num_classes"):
        StarTower(2, task_type="multiclass")
    with pytest.raises(
        ValueError, match="StarTower: aux_units must hold positive ints"
    ):
        StarTower(2, aux_units=(0,))
    with pytest.raises(ValueError, match=r"inputs must be \[x, domain, aux\]"):
        StarTower(2, aux_units=(2,))([X, DOMAIN])
