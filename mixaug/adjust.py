"""`LogitAdjustedClassifier`: post-hoc logit adjustment (Menon et al., ICLR 2021), the free prior correction.

A classifier trained on a long tail learns the tail is rare and leaves its threshold where the head put it.
At prediction, subtracting τ·log prior(class) from its log-probabilities moves the threshold itself: no new
rows, no retraining. On our long-tail measurements (README *Rare classes*) it beats class weights and
mixaug's rows with embedding classifiers, so it is the remedy to try first and the baseline rows must beat.

    model = LogitAdjustedClassifier(LogisticRegression(max_iter=1000))          # τ = 1, prior from y
    GridSearchCV(model, {"tau": [0.5, 1.0, 1.5]}, scoring="f1_macro")            # τ tuned on validation

Not after a resampler with the counts from before resampling: a classifier fitted on balanced rows has moved
its threshold already, and the correction would move it twice (README *With imbalanced-learn*).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone

from .config import check_number
from .errors import MixaugError


class LogitAdjustedClassifier(ClassifierMixin, MetaEstimatorMixin, BaseEstimator):
    """Any classifier with predict_proba, its predictions corrected by the class prior.

    estimator: fitted (a clone) on X, y by `fit`. tau: the correction's strength (0 = none, 1 = Menon et al.'s
    Bayes-optimal correction for a balanced test). prior: None = the class frequencies of the y given to
    `fit`; or a dict class -> count (or frequency) covering every class: the prior of the data the test will
    look like, where the rows given to `fit` do not show it.

    Fitted: estimator_, classes_, prior_ (one per class of classes_, summing to 1)."""

    def __init__(self, estimator, tau=1.0, prior=None):
        self.estimator = estimator
        self.tau = tau
        self.prior = prior

    def fit(self, X, y, **fit_params):
        check_number("tau", self.tau, 0, 100)
        if not hasattr(self.estimator, "predict_proba"):
            raise MixaugError(f"{type(self.estimator).__name__} has no predict_proba to adjust")
        self.estimator_ = clone(self.estimator).fit(X, y, **fit_params)
        self.classes_ = self.estimator_.classes_
        counts = Counter(np.asarray(y).tolist()) if self.prior is None else self.prior
        if not isinstance(counts, dict):
            raise MixaugError(f"prior must be a dict of class -> count (got a {type(counts).__name__})")
        try:
            weights = np.array([counts[c] for c in self.classes_.tolist()], dtype=float)
        except KeyError as e:
            raise MixaugError(f"prior gives no count for class {e.args[0]!r}") from None
        if not np.all(np.isfinite(weights)) or np.any(weights <= 0):
            raise MixaugError("prior's counts must be finite and > 0 for every class")
        self.prior_ = weights / weights.sum()
        return self

    def _adjusted(self, X) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(self.estimator_.predict_proba(X)) - self.tau * np.log(self.prior_)

    def predict(self, X):
        return self.classes_[np.argmax(self._adjusted(X), axis=1)]

    def predict_proba(self, X):
        z = self._adjusted(X)
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
