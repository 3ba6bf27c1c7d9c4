import numpy as np

from mixaug.filter import Filter, is_degenerate
from mixaug.label import Labeller, assign_labels


def test_labeller_learns_separable_classes():
    rng = np.random.default_rng(0)
    emb = np.vstack([rng.normal(0, 0.1, (20, 4)) + [1, 0, 0, 0], rng.normal(0, 0.1, (20, 4)) + [0, 1, 0, 0]])
    labels = [3] * 20 + [7] * 20
    lab = Labeller(emb, labels)
    assert lab.classes == [3, 7]
    p = lab.proba(np.array([[1, 0, 0, 0], [0, 1, 0, 0]], dtype=float))
    assert p[0, 0] > 0.9 and p[1, 1] > 0.9


def test_label_policies_and_intrusion():
    classes = ["pos", "neg", "neu"]
    proba = np.array([[0.1, 0.8, 0.1], [0.1, 0.1, 0.8]])
    la, lb, lam = ["pos", "pos"], ["neg", "neg"], np.array([0.7, 0.3])
    hard = assign_labels("hard", proba, classes, la, lb, lam)
    assert hard.labels == ["neg", "neu"]
    assert hard.intrusion.tolist() == [False, True]  # "neu" is neither parent's label
    np.testing.assert_allclose(hard.confidence, [0.8, 0.8])
    parent = assign_labels("parent", proba, classes, la, lb, lam)
    assert parent.labels == ["pos", "neg"]
    np.testing.assert_allclose(parent.confidence, [0.1, 0.1])
    soft = assign_labels("soft", proba, classes, la, lb, lam)
    assert soft.soft[0] == {"pos": 0.7, "neg": 0.3}
    assert soft.labels == ["pos", "neg"]


def test_filter_reasons():
    f = Filter(["The cat sat."], min_fidelity=0.5, drop_intrusions=True)
    assert f.check("", 0.9, False) == "empty"
    assert f.check("no no no no way", 0.9, False) == "degenerate"
    assert f.check("the  CAT sat.", 0.9, False) == "copy_of_input"
    assert f.check("A dog ran.", 0.9, False) is None
    assert f.check("a dog ran.", 0.9, False) == "duplicate"
    assert f.check("A bird flew.", 0.2, False) == "low_fidelity"
    assert f.check("A fish swam.", 0.9, True) == "intrusion"
    assert f.rejected == {
        "empty": 1,
        "degenerate": 1,
        "copy_of_input": 1,
        "duplicate": 1,
        "low_fidelity": 1,
        "intrusion": 1,
    }


def test_degenerate_detector():
    assert is_degenerate("the film the film the film the film was")
    assert not is_degenerate("What time does the train to Edinburgh leave tomorrow?")
