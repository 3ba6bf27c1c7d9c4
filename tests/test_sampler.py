"""MixupSampler (mixaug as an imbalanced-learn over-sampler) and LogitAdjustedClassifier (the prior correction)."""

from __future__ import annotations

import json
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from mixaug import LogitAdjustedClassifier, MixupSampler
from mixaug.errors import MixaugError

ROOT = Path(__file__).resolve().parents[1]
ROWS = [json.loads(line) for line in (ROOT / "examples" / "intents.jsonl").read_text().splitlines()]


def rows(sizes: dict) -> tuple[list, list]:
    """The example intents cut to `sizes` rows per class (texts, labels), classes in the file's order."""
    texts, labels = [], []
    for r in ROWS:
        if Counter(labels)[r["label"]] < sizes.get(r["label"], 0):
            texts.append(r["text"])
            labels.append(r["label"])
    return texts, labels


X, Y = rows({"travel": 10, "weather": 7, "music": 4, "food": 3})


@pytest.fixture
def sampler(tiny_checkpoint):
    def make(**params):
        return MixupSampler(checkpoint=str(tiny_checkpoint), **params)

    return make


@pytest.mark.parametrize(
    "strategy, added",
    [
        ("auto", {"travel": 0, "weather": 3, "music": 6, "food": 7}),
        ("not majority", {"travel": 0, "weather": 3, "music": 6, "food": 7}),
        ("not minority", {"travel": 0, "weather": 3, "music": 6, "food": 0}),
        ("minority", {"travel": 0, "weather": 0, "music": 0, "food": 7}),
        ("all", {"travel": 0, "weather": 3, "music": 6, "food": 7}),
        (0.5, {"travel": 0, "weather": 0, "music": 1, "food": 2}),  # every class up to int(0.5 x 10)
        ({"food": 5, "music": 4}, {"travel": 0, "weather": 0, "music": 0, "food": 2}),
        (lambda y: {"food": int(np.sum(y == "food")) * 2}, {"travel": 0, "weather": 0, "music": 0, "food": 3}),
    ],
)
def test_each_strategy_makes_the_rows_it_promises(sampler, strategy, added):
    s = sampler(sampling_strategy=strategy).fit(X, Y)
    assert s.sampling_strategy_ == dict(sorted(added.items()))
    _, y_res = s.fit_resample(X, Y)
    assert Counter(y_res) == Counter(Y) + Counter(added) and s.stats_["shortfall"] == 0


def test_binary_float_is_imbalanced_learns_ratio_and_refuses_to_shrink(sampler):
    x, y = rows({"travel": 10, "food": 3})
    assert sampler(sampling_strategy=0.6).fit(x, y).sampling_strategy_ == {"food": 3, "travel": 0}  # 6 / 10
    with pytest.raises(MixaugError, match="asks the minority class for 2 rows; it has 3"):
        sampler(sampling_strategy=0.2).fit(x, y)


def test_ties_and_rounding_as_imbalanced_learn_has_them(sampler):
    x, y = rows({"travel": 10, "weather": 3, "music": 3})
    assert sampler(sampling_strategy="minority").fit(x, y).sampling_strategy_["music"] == 7  # sorted: music first
    x, y = rows({"travel": 10, "food": 6})
    assert sampler(sampling_strategy=0.55).fit(x, y).sampling_strategy_ == {"food": 0, "travel": 0}  # int(-0.5)


def test_resampled_rows_match_the_plan_originals_first(sampler):
    s = sampler(sampling_strategy={"food": 6, "music": 6}, random_state=3)
    x_res, y_res = s.fit_resample(X, Y)
    assert x_res[: len(X)] == X and y_res[: len(Y)] == Y  # imbalanced-learn's order: originals, then new rows
    assert Counter(y_res) == Counter(Y) + Counter({"food": 3, "music": 2})
    prov = s.provenance_
    assert len(prov) == len(x_res) and list(prov["mixaug_source"]) == ["original"] * len(X) + ["mixup"] * 5
    assert list(prov["mixaug_parent_a_label"][len(X) :]) == y_res[len(Y) :]  # parent labels: the planned class
    assert s.sample_weight_.shape == (len(x_res),) and (s.sample_weight_[: len(X)] == 1).all()
    assert ((s.sample_weight_[len(X) :] >= 0) & (s.sample_weight_[len(X) :] <= 1)).all()
    assert s.stats_["new_rows"] == 5 and s.stats_["rows_read"] == len(X)


def test_same_random_state_same_rows_another_other_rows(sampler):
    first = sampler(random_state=7).fit_resample(X, Y)
    assert sampler(random_state=7).fit_resample(X, Y) == first
    assert sampler(random_state=np.random.RandomState(1)).fit_resample(X, Y)[0] != first[0]  # one seed drawn


def test_types_come_back_as_they_came(sampler):
    s = sampler(sampling_strategy={"food": 4})
    x, y = s.fit_resample(np.array(X), np.array(Y))
    assert isinstance(x, np.ndarray) and x.ndim == 1 and len(x) == len(X) + 1 and isinstance(y, np.ndarray)
    x, y = s.fit_resample(np.array(X, dtype=object).reshape(-1, 1), pd.Series(Y, name="intent"))
    assert x.shape == (len(X) + 1, 1) and x.dtype == object and y.name == "intent" and len(y) == len(X) + 1
    x, y = s.fit_resample(pd.DataFrame({"utterance": X}), pd.Series(Y).astype("category"))
    assert list(x.columns) == ["utterance"] and list(x.index) == list(range(len(X) + 1))
    assert y.dtype == "category" and y.iloc[-1] == "food"
    x, _ = s.fit_resample(pd.Series(X).astype("category"), Y)  # a new text is no category: kept, not NaN
    assert x.iloc[-1] not in X and isinstance(x.iloc[-1], str) and x.notna().all()
    codes = {c: k for k, c in enumerate(dict.fromkeys(Y))}
    x, y = s.set_params(sampling_strategy={3: 4}).fit_resample(pd.Series(X, name="t"), np.array([codes[c] for c in Y]))
    assert x.name == "t" and y.dtype == np.int64 and y[-1] == 3


def test_sklearn_contract_clone_and_params(sampler):
    s = sampler(sampling_strategy={"food": 5}, k_neighbors=2, random_state=4, alpha=0.7, pairing="neighbours")
    params = s.get_params()
    assert params["alpha"] == 0.7 and params["k_neighbors"] == 2 and params["num_candidates"] == 1
    c = clone(s)
    assert c is not s and c.get_params() == params
    assert "alpha=0.7" in repr(s) and "num_candidates" not in repr(s)  # only what differs from the defaults
    assert c.set_params(alpha=0.3) is c and c.alpha == 0.3 and s.alpha == 0.7
    assert clone(s).fit_resample(X, Y) == s.fit_resample(X, Y)


def test_bad_parameters_are_refused_at_fit_not_construction(sampler):
    bad = [
        (dict(alpha=-1), "--alpha must be > 0"),
        (dict(k_neighbors=0), "k_neighbors must be >= 1"),
        (dict(random_state="x"), "random_state must be a finite whole number"),
        (dict(sampling_strategy="most"), "sampling_strategy must be one of auto"),
        (dict(sampling_strategy=1.5), "sampling_strategy must be <= 1"),
        (dict(sampling_strategy={"pizza": 9}), "names class 'pizza', which y does not hold"),
        (dict(sampling_strategy={"food": 2}), "asks 2 rows of class 'food', which has 3"),
        (dict(sampling_strategy=[1, 2]), "sampling_strategy must be a string, a float, a dict or a callable"),
        (dict(sampling_strategy=lambda y: 0.5), "the sampling_strategy callable must return a dict"),
        (dict(sampling_strategy={"food": 10**8}), r"sampling_strategy\['food'\] must be <= 10000000"),
        (dict(label_policy="soft"), "label_policy 'soft' gives no single class per row"),
        (dict(alhpa=0.3), "MixupSampler has no parameter 'alhpa'"),
    ]
    for params, message in bad:
        s = sampler(**params)  # built without a check (sklearn's rule) ...
        with pytest.raises(MixaugError, match=message):
            clone(s).fit_resample(X, Y)  # ... refused at fit, a typo kept by clone rather than dropped


def test_refused_inputs(sampler):
    s = sampler()
    for x, y, message in [
        (np.random.default_rng(0).normal(size=(len(Y), 3)), Y, r"one column of texts; got an array of shape"),
        (np.arange(len(Y)).reshape(-1, 1), Y, "X must hold texts; row 1 is a int"),
        (pd.DataFrame({"a": X, "b": X}), Y, "this DataFrame has 2 columns"),
        (X, Y[:-1], f"X has {len(X)} rows and y {len(Y) - 1}"),
        (X, [None] + Y[1:], "y row 1 has no label"),
        (X, pd.Series(Y).where(pd.Series(Y) != "food"), f"y row {Y.index('food') + 1} has no label"),
        (X, ["a"] * len(Y), "at least 2 classes in y; found 1"),
        (X, pd.Series(Y, dtype="string").where(pd.Series(Y) != "food"), "has no label"),  # pandas' NA
        (X, [""] + Y[1:], "y row 1 has no label"),
        (X, [1, True] + Y[2:], r"holds 1 \(row 1\) and True \(row 2\)"),
        (X, np.eye(len(Y))[:, :2], "y must be one label per row"),
    ]:
        with pytest.raises(MixaugError, match=message):
            s.fit_resample(x, y)


def test_a_shortfall_is_a_warning_not_silence(sampler, monkeypatch):
    from mixaug import filter as filtermod

    monkeypatch.setattr(filtermod.Filter, "check", lambda self, text, fid, intr: "duplicate")  # every row rejected
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        x, _ = sampler(sampling_strategy={"food": 4}).fit_resample(X, Y)
    assert x == X and any("made 0 of 1 planned rows" in str(w.message) for w in caught)


def test_in_an_imbalanced_learn_pipeline_rows_come_from_the_training_fold_only(sampler):
    from imblearn.pipeline import Pipeline
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score, cross_validate

    model = Pipeline([("mixaug", sampler(random_state=0)), ("tfidf", TfidfVectorizer()), ("clf", LogisticRegression())])
    assert set(model.fit(X, Y).predict(["Is it going to snow?", "Play some jazz"])) <= set(Y)
    folds = StratifiedKFold(3, shuffle=True, random_state=0)
    scores = cross_val_score(model, X, Y, cv=folds, scoring="f1_macro", error_score="raise")
    assert len(scores) == 3 and np.isfinite(scores).all()
    fitted = cross_validate(model, X, Y, cv=folds, return_estimator=True, return_indices=True, error_score="raise")
    for pipe, train, test in zip(fitted["estimator"], fitted["indices"]["train"], fitted["indices"]["test"]):
        prov = pipe.named_steps["mixaug"].provenance_
        new = prov[prov["mixaug_source"] == "mixup"]
        assert len(new) == sum(pipe.named_steps["mixaug"].sampling_strategy_.values()) > 0
        parents = set(new["mixaug_parent_a"]) | set(new["mixaug_parent_b"])  # row numbers in the fold's X
        assert parents <= set(range(len(train)))
        assert {X[train[p]] for p in parents}.isdisjoint({X[t] for t in test})


# -- LogitAdjustedClassifier ------------------------------------------------------------------------------
def _tail(seed: int = 0, sizes=(200, 20)):
    """Two overlapping Gaussian classes, the second rare: a threshold the head pulls its way."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(0, 1, (sizes[0], 2)), rng.normal(1.2, 1, (sizes[1], 2))])
    return x, np.array(["head"] * sizes[0] + ["tail"] * sizes[1])


def test_logit_adjustment_moves_the_threshold_toward_the_rare_class():
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score, recall_score

    x, y = _tail()
    xt, yt = _tail(seed=1, sizes=(300, 300))  # a balanced test, where a prior correction pays
    plain = LogisticRegression().fit(x, y)
    adjusted = LogitAdjustedClassifier(LogisticRegression()).fit(x, y)
    assert np.allclose(adjusted.prior_, [200 / 220, 20 / 220]) and list(adjusted.classes_) == ["head", "tail"]
    tail_recall = lambda m: recall_score(yt, m.predict(xt), pos_label="tail")
    assert tail_recall(adjusted) > tail_recall(plain) + 0.2
    assert f1_score(yt, adjusted.predict(xt), average="macro") > f1_score(yt, plain.predict(xt), average="macro")
    assert np.allclose(adjusted.predict_proba(xt).sum(axis=1), 1)
    assert (adjusted.predict(xt) == adjusted.classes_[adjusted.predict_proba(xt).argmax(axis=1)]).all()
    none = LogitAdjustedClassifier(LogisticRegression(), tau=0).fit(x, y)
    assert (none.predict(xt) == plain.predict(xt)).all()  # τ = 0: no correction
    given = LogitAdjustedClassifier(LogisticRegression(), prior={"head": 1, "tail": 1}).fit(x, y)
    assert (given.predict(xt) == plain.predict(xt)).all()  # a flat prior corrects nothing


def test_logit_adjustment_tau_tunes_in_a_grid_search_and_refuses_bad_settings():
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV

    x, y = _tail()
    search = GridSearchCV(LogitAdjustedClassifier(LogisticRegression()), {"tau": [0.0, 1.0, 2.0]}, cv=3)
    search.fit(x, y, sample_weight=np.ones(len(y)))  # fit parameters reach the inner estimator
    assert len(search.cv_results_["params"]) == 3 and search.best_estimator_.tau == search.best_params_["tau"]
    for model, message in [
        (LogitAdjustedClassifier(LogisticRegression(), tau=-1), "tau must be >= 0"),
        (LogitAdjustedClassifier(LogisticRegression(), prior={"head": 5}), "prior gives no count for class 'tail'"),
        (LogitAdjustedClassifier(LogisticRegression(), prior={"head": 5, "tail": 0}), "finite and > 0"),
        (LogitAdjustedClassifier(object()), "object has no predict_proba"),
    ]:
        with pytest.raises(MixaugError, match=message):
            model.fit(x, y)
