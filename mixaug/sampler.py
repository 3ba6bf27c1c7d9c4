"""`MixupSampler`: mixaug as an imbalanced-learn over-sampler, the SMOTE that writes sentences.

    from imblearn.pipeline import make_pipeline
    model = make_pipeline(MixupSampler(random_state=0), TfidfVectorizer(), LogisticRegression())

Shaped like imbalanced-learn's over-samplers (`fit_resample(X, y) -> (X_res, y_res)`, `sampling_strategy`,
`k_neighbors`, `random_state`, fitted attributes ending in `_`) without depending on imbalanced-learn, and
an sklearn estimator (`get_params` / `set_params` / `clone`): nothing is checked when it is built, every bad
parameter is a one-line MixaugError at `fit_resample`. In a pipeline the new rows are made from each training
fold alone, so none of a validation fold's text leaks into them. The rows come from `pipeline.augment` with
an explicit per-class quota (`AugmentConfig.quota`): parent labels and `--balance`'s pairing by default.
"""

from __future__ import annotations

import inspect
import numbers
import warnings
from collections import Counter
from dataclasses import MISSING, fields

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from .config import DEFAULT_NEIGHBOURS, MAX_NEW_ROWS, MAX_SEED, AugmentConfig, check_number
from .errors import MixaugError, MixaugWarning

# AugmentConfig's fields that the sampler sets itself (X and y are the columns; the strategy is the plan;
# k_neighbors and random_state are imbalanced-learn's names for neighbours and seed): every other is a keyword
OWN = {
    "text_column",
    "label_column",
    "id_column",
    "num_augmented",
    "balance",
    "quota",
    "only_new",
    "neighbours",
    "seed",
}
OPTIONS = {f.name: f.default for f in fields(AugmentConfig) if f.name not in OWN and f.default is not MISSING}
STRATEGIES = ("auto", "not majority", "not minority", "minority", "all")


class MixupSampler(BaseEstimator):
    """Over-sample rare classes with new sentences decoded from mixed embeddings.

    sampling_strategy: which classes get rows, and how many (imbalanced-learn's meanings, each class topped
    up to the size asked): "auto" = "not majority" (every class up to the largest: `--balance equal`),
    "not minority", "minority", "all"; a float r: every class up to int(r x the largest) (for two classes,
    imbalanced-learn's minority/majority ratio after resampling; a ratio the minority already passes is
    refused there, as imbalanced-learn refuses it); a dict {class: rows after resampling}; or a callable
    y -> such a dict. k_neighbors: `--neighbours`. random_state: `--seed` (None = 0: mixaug is deterministic
    by default; a numpy RandomState or Generator gives one seed). Every other AugmentConfig field is a keyword.

    Fitted: sampling_strategy_ (class -> rows planned), sample_weight_ (each returned row's mixaug_weight),
    provenance_ (the mixaug_* columns, one row per returned row), stats_ (the run's summary)."""

    def __init__(self, sampling_strategy="auto", k_neighbors=DEFAULT_NEIGHBOURS, random_state=None, **options):
        self.sampling_strategy = sampling_strategy
        self.k_neighbors = k_neighbors
        self.random_state = random_state
        for name, default in OPTIONS.items():
            setattr(self, name, options.pop(name, default))
        self._unknown = options  # refused at fit_resample, and kept by get_params so that clone keeps them

    def get_params(self, deep=True):
        return {**super().get_params(deep), **self._unknown}

    def set_params(self, **params):
        known = set(self._get_param_names())
        for name, value in params.items():
            if name in known:
                setattr(self, name, value)
            else:
                self._unknown[name] = value
        return self

    def fit(self, X, y):
        """Check X, y and the parameters and plan the rows per class (sampling_strategy_); decodes nothing."""
        self._plan(X, y)
        return self

    def fit_resample(self, X, y):
        """(X_res, y_res): the originals as given, then the new rows; each in the type it came in."""
        texts, labels, cfg = self._plan(X, y)
        from .pipeline import augment

        table = pd.DataFrame({"text": pd.Series(texts, dtype=object), "label": pd.Series(labels, dtype=object)})
        out = augment(table, cfg, text_column="text", label_column="label")
        self.stats_ = out.attrs["mixaug_stats"]
        if self.stats_["shortfall"]:
            warnings.warn(
                MixaugWarning(
                    f"MixupSampler made {self.stats_['new_rows']} of {self.stats_['requested']} planned rows "
                    f"(rejected: {self.stats_['rejected']})"
                ),
                stacklevel=2,
            )
        self.provenance_ = out[[c for c in out.columns if c.startswith("mixaug_")]].reset_index(drop=True)
        self.sample_weight_ = self.provenance_["mixaug_weight"].to_numpy(dtype=float)
        return _like(X, out["text"].tolist()), _like(y, out["label"].tolist())

    def _plan(self, X, y):
        texts, labels = _texts(X), _labels(y)
        if len(texts) != len(labels):
            raise MixaugError(f"X has {len(texts)} rows and y {len(labels)}; they must match")
        counts = Counter(labels)
        if len(counts) < 2:
            raise MixaugError(f"MixupSampler needs at least 2 classes in y; found {len(counts)}")
        if self._unknown:  # an old name (batch_size) too, named: sklearn's __init__ stores parameters as given
            name = sorted(self._unknown)[0]
            now = f" (now {AugmentConfig.RENAMED[name]})" if name in AugmentConfig.RENAMED else ""
            raise MixaugError(f"MixupSampler has no parameter {name!r}{now}; see mixaug.AugmentConfig")
        if self.label_policy == "soft":
            raise MixaugError("label_policy 'soft' gives no single class per row: use 'parent' or 'hard'")
        check_number("k_neighbors", self.k_neighbors, 1, 1000, integer=True)
        self.sampling_strategy_ = _rows_to_add(self.sampling_strategy, counts, labels)
        options = {name: getattr(self, name) for name in OPTIONS}
        cfg = AugmentConfig(**options, neighbours=self.k_neighbors, seed=_seed(self.random_state))
        cfg.quota = dict(self.sampling_strategy_)
        cfg.validate()
        return texts, labels, cfg


# every AugmentConfig keyword in the signature, so that help(), sklearn's get_params, repr and clone see them
MixupSampler.__init__.__signature__ = inspect.signature(MixupSampler.__init__).replace(
    parameters=[
        *list(inspect.signature(MixupSampler.__init__).parameters.values())[:4],
        *(inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=d) for n, d in OPTIONS.items()),
        inspect.Parameter("options", inspect.Parameter.VAR_KEYWORD),
    ]
)


def _rows_to_add(strategy, counts: Counter, labels: list) -> dict:
    """sampling_strategy as class -> new rows (every class of y, sorted as imbalanced-learn sorts them)."""
    largest = max(counts.values())
    ranked = _sorted(counts)  # ties go to the first class in sorted order, as imbalanced-learn's np.unique has it
    minority, majority = min(ranked, key=counts.get), max(ranked, key=counts.get)
    if callable(strategy):
        strategy = strategy(np.asarray(labels, dtype=object))
        if not isinstance(strategy, dict):
            raise MixaugError(
                f"the sampling_strategy callable must return a dict (it returned a {type(strategy).__name__})"
            )
    if isinstance(strategy, str):
        if strategy not in STRATEGIES:
            raise MixaugError(
                f"sampling_strategy must be one of {', '.join(STRATEGIES)}, a float, a dict or a callable (got {strategy!r})"
            )
        skip = {"auto": {majority}, "not majority": {majority}, "not minority": {minority}, "all": set()}
        chosen = {minority} if strategy == "minority" else set(counts) - skip[strategy]
        add = {c: largest - n if c in chosen else 0 for c, n in counts.items()}
    elif isinstance(strategy, numbers.Real) and not isinstance(strategy, bool):
        check_number("sampling_strategy", strategy, 0, 1, low_open=True)
        add = {c: int(strategy * largest - n) for c, n in counts.items()}  # imbalanced-learn's rounding
        if len(counts) == 2 and add[minority] < 0:
            raise MixaugError(
                f"sampling_strategy {strategy} asks the minority class for {int(strategy * largest)} rows; it has "
                f"{counts[minority]} (an over-sampler only adds rows: raise the ratio)"
            )
        add = {c: max(0, k) for c, k in add.items()}
    elif isinstance(strategy, dict):
        add = dict.fromkeys(counts, 0)
        for c, want in strategy.items():
            c = c.item() if isinstance(c, np.generic) else c
            if c not in counts:
                raise MixaugError(f"sampling_strategy names class {c!r}, which y does not hold")
            check_number(f"sampling_strategy[{c!r}]", want, 0, MAX_NEW_ROWS, integer=True)
            if want < counts[c]:
                raise MixaugError(
                    f"sampling_strategy asks {want} rows of class {c!r}, which has {counts[c]}: an over-sampler only adds rows"
                )
            add[c] = int(want) - counts[c]
    else:
        raise MixaugError(
            f"sampling_strategy must be a string, a float, a dict or a callable (got a {type(strategy).__name__})"
        )
    return {c: add[c] for c in _sorted(add)}


def _sorted(classes) -> list:
    """The classes sorted (imbalanced-learn's order), or in y's order where their types do not compare."""
    try:
        return sorted(classes)
    except TypeError:
        return list(classes)


def _texts(X) -> list:
    """X's texts: a list, a 1-D array (or one column), a Series or a one-column DataFrame of strings."""
    if isinstance(X, pd.DataFrame):
        if X.shape[1] != 1:
            raise MixaugError(f"X must be one column of texts; this DataFrame has {X.shape[1]} columns")
        values = X.iloc[:, 0].tolist()
    elif isinstance(X, np.ndarray):
        if X.ndim > 2 or (X.ndim == 2 and X.shape[1] != 1):
            raise MixaugError(f"X must be one column of texts; got an array of shape {X.shape}")
        values = X.reshape(-1).tolist()
    elif isinstance(X, (list, tuple, pd.Series)):
        values = list(X)
    else:
        raise MixaugError(f"X must be texts (a list, array, Series or one-column DataFrame); got a {type(X).__name__}")
    for i, t in enumerate(values):
        if not isinstance(t, str):
            raise MixaugError(f"X must hold texts; row {i + 1} is a {type(t).__name__}")
    return values


def _labels(y) -> list:
    """y's labels, as Python values: one per row, none missing (None, NaN, pandas' NA or ""), and held to a
    file's label column's rules (scalars; not 1 beside True or 1.0, which Python would merge)."""
    from .inputs import check_keys, is_blank

    if isinstance(y, pd.DataFrame) or (isinstance(y, np.ndarray) and y.ndim != 1):
        raise MixaugError("y must be one label per row (a list, a 1-D array or a Series)")
    values = [v.item() if isinstance(v, np.generic) else v for v in (y.tolist() if hasattr(y, "tolist") else list(y))]
    for i, v in enumerate(values):
        if is_blank(v):
            raise MixaugError(f"y row {i + 1} has no label: every row needs one")
    check_keys(values, "y", "label", unique=False)
    return values


def _seed(random_state) -> int:
    if random_state is None:
        return 0
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, 2**31 - 1))  # randint's bound is a C long: 32 bits on Windows
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, MAX_SEED))
    check_number("random_state", random_state, 0, MAX_SEED, integer=True)
    return int(random_state)


def _like(original, values: list):
    """values in the container type (and dtype, name) of `original`, as imbalanced-learn returns them."""
    if isinstance(original, pd.DataFrame):
        column = original.columns[0]
        return pd.DataFrame({column: _like(original[column], values)})
    if isinstance(original, pd.Series):
        # a category dtype would turn a new text that is not one of its categories into NaN: text goes object
        texts = isinstance(original.dtype, pd.CategoricalDtype) and not set(values) <= set(original.cat.categories)
        return pd.Series(values, dtype=object if texts else original.dtype, name=original.name)
    if isinstance(original, np.ndarray):
        dtype = original.dtype if original.dtype.kind not in "US" else None  # a longer text widens <U
        return np.asarray(values, dtype=dtype).reshape((-1,) + original.shape[1:])
    return values
