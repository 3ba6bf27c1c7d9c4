import numpy as np
import pytest

from mixaug.errors import MixaugError
from mixaug.mix import mix, plan_pairs

LABELS = ["a"] * 5 + ["b"] * 4 + ["c"] * 3


def test_plan_is_deterministic_and_seed_dependent():
    p1 = plan_pairs(LABELS, 50, "intra", 0.4, seed=3)
    p2 = plan_pairs(LABELS, 50, "intra", 0.4, seed=3)
    p3 = plan_pairs(LABELS, 50, "intra", 0.4, seed=4)
    assert p1.equals(p2) and not p1.equals(p3)
    assert not plan_pairs(LABELS, 50, "intra", 0.4, seed=3, round_=1).equals(p1)


@pytest.mark.parametrize("pairing", ["intra", "inter", "random"])
def test_pairing_strategies(pairing):
    plan = plan_pairs(LABELS, 300, pairing, 0.4, seed=0)
    a, b = plan["a"].to_numpy(), plan["b"].to_numpy()
    assert (a != b).all()
    same = np.array([LABELS[i] == LABELS[j] for i, j in zip(a, b)])
    if pairing == "intra":
        assert same.all()
    elif pairing == "inter":
        assert not same.any()
    else:
        assert 0 < same.mean() < 1
    lam = plan["lam"].to_numpy()
    assert ((lam >= 0) & (lam <= 1)).all()
    assert np.mean((lam < 0.2) | (lam > 0.8)) > 0.4  # Beta(0.4, 0.4) is U-shaped


def test_singleton_class_is_named():
    with pytest.raises(MixaugError, match="class 'lonely' has only 1"):
        plan_pairs(["x", "x", "lonely"], 5, "intra", 0.4, 0)


def test_inter_needs_two_classes_and_unlabelled_needs_random():
    with pytest.raises(MixaugError, match="at least 2 classes"):
        plan_pairs(["x", "x", "x"], 5, "inter", 0.4, 0)
    with pytest.raises(MixaugError, match="needs a label column"):
        plan_pairs([None] * 4, 5, "intra", 0.4, 0)
    assert len(plan_pairs([None] * 4, 5, "random", 0.4, 0)) == 5


def test_mix_interpolates_and_renormalises():
    emb = np.eye(2, dtype=np.float32)
    raw = mix(emb, np.array([0]), np.array([1]), np.array([0.5]), renormalize=False)
    np.testing.assert_allclose(raw, [[0.5, 0.5]])
    unit = mix(emb, np.array([0]), np.array([1]), np.array([0.5]), renormalize=True)
    np.testing.assert_allclose(np.linalg.norm(unit), 1.0, rtol=1e-6)
    np.testing.assert_allclose(mix(emb, np.array([0]), np.array([1]), np.array([1.0])), [[1.0, 0.0]])
