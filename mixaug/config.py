"""The configurations, apart from the code that runs them: `augment`'s and `train`'s, each one a dataclass that
checks itself (named strategies, not interacting flags); `eval`'s is `mixaug.evaluation.config`. Light to
import: the CLI reads its defaults here."""

from __future__ import annotations

import functools
import math
import numbers
import os
import warnings
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from .errors import MixaugError

Pairing = Literal["intra", "inter", "random", "neighbours", "boundary", "transfer"]
LabelPolicy = Literal["hard", "parent", "soft"]
IntrusionPolicy = Literal["keep", "drop"]
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "int8")  # auto + decode.PRECISIONS (here, so checking options never imports torch)
# auto = int8 on CPU, fp32 on a GPU. Measured on 500 news rows, 2 CPU cores (README "Speed"): int8 decodes
# 1.75x faster than fp32 with the same fidelity within noise (paired cosine -0.004 +- 0.004 on 700
# sentences); 64 rows at once is ~15% faster than 32 and stays under 2 GiB of memory.
DEFAULT_PRECISION = "auto"
DEFAULT_DECODE_BATCH = 64
DEFAULT_SEARCH_WIDTH = 3  # --search guided: the width the README measured (0.64 sentences/s on 2 cores)
MAX_SEED = 2**32 - 1  # numpy, torch and scikit-learn all take seeds in [0, 2**32)
MAX_NEW_ROWS = 10_000_000  # a plan is held in memory; a larger request is almost surely a typo
MAX_ALPHA = 1e6
ADAPT_ON_SEED = 0  # --adapt-on's adaptation seed: the adapted checkpoint depends on the texts, not on --seed
DEFAULT_NEIGHBOURS = 5  # k of --pairing neighbours/boundary: SMOTE's (and imbalanced-learn's) default
PAIRINGS = ("intra", "inter", "random", "neighbours", "boundary", "transfer")  # mix.py plans each


def _parse_balance(balance) -> float | None:
    """--balance as a ratio: None (off), "equal" = 1.0, or a number (or its text) in (0, 1]. Read only through
    `AugmentConfig.balance_ratio`."""
    if balance is None:
        return None
    if balance == "equal":
        return 1.0
    try:
        value = float(balance)
    except (TypeError, ValueError):
        value = math.nan
    if isinstance(balance, bool) or not math.isfinite(value) or not 0 < value <= 1:
        raise MixaugError(f"--balance takes 'equal' or a ratio in (0, 1] of the largest class (got {balance!r})")
    return value


def np_bool() -> type:
    try:
        import numpy

        return numpy.bool_
    except ImportError:  # pragma: no cover
        return bool


def check_number(name: str, value, low=None, high=None, low_open: bool = False, integer: bool = False) -> None:
    """One option's value: a finite number (a whole one if `integer`) in [low, high] (or (low, high])."""
    kind = numbers.Integral if integer else numbers.Real  # numpy's int64/float32 too (notebooks hand those in)
    if (
        isinstance(value, (bool, np_bool()))
        or not isinstance(value, kind)
        or (not integer and not math.isfinite(value))
    ):
        raise MixaugError(f"{name} must be a finite {'whole ' if integer else ''}number (got {value})")
    if low is not None and (value <= low if low_open else value < low):
        raise MixaugError(f"{name} must be {'>' if low_open else '>='} {low} (got {value})")
    if high is not None and value > high:
        raise MixaugError(f"{name} must be <= {high} (got {value})")


def check_bools(*options: tuple[str, object]) -> None:
    """Each (name, value): a real bool (not 0/1, not "false"), else one line naming the option."""
    for name, value in options:
        if not isinstance(value, bool):
            raise MixaugError(f"{name} must be true or false (got {value!r})")


def check_whole_numbers(*options: tuple[str, object, int | None, int | None]) -> None:
    """check_number(name, value, low, high, integer=True) for each (name, value, low, high)."""
    for name, value, low, high in options:
        check_number(name, value, low, high, integer=True)


def new_names(cls, data: dict, stacklevel: int | None = 1) -> dict:
    """`data` (a config's keywords, or a saved config) with `cls`'s old field names (cls.RENAMED: old -> new)
    read as the new ones. An old keyword in code warns (DeprecationWarning; stacklevel as warnings.warn's,
    counted from new_names' caller: 1 = the caller itself); stacklevel None reads silently: a saved run's
    file (state.json), which the user did not write. An old name beside its new one is refused (which would
    win is a guess)."""
    old = [name for name in data if name in cls.RENAMED]
    if not old:
        return data
    data = dict(data)
    for name in old:
        new = cls.RENAMED[name]
        if new in data:
            raise MixaugError(f"{name} is the old name of {new}: give {new} alone")
        data[new] = data.pop(name)
        if stacklevel is not None:
            message = f"{cls.__name__}'s {name} is now {new} (the CLI's flag is unchanged)"
            warnings.warn(message, DeprecationWarning, stacklevel=stacklevel + 1)
    return data


def old_names_accepted(cls):
    """A config dataclass whose constructor still takes its fields' old names (`new_names`, with a
    DeprecationWarning); the fields, asdict and everything generated from them know the new names only."""
    init = cls.__init__

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        init(self, *args, **new_names(cls, kwargs, stacklevel=2))

    cls.__init__ = __init__
    return cls


TASK_MODELS = ("none", "finetune")
SEARCHES = ("none", "guided")
ANCHOR_WEIGHTINGS = ("salience", "idf")  # --anchor-weights (anchor.WordWeights)
MAX_ANCHOR = 50.0


@old_names_accepted
@dataclass
class AugmentConfig:
    """How to augment a dataset. Defaults follow the paper: intra-class pairs, Beta(0.4, 0.4), hard labels."""

    RENAMED: ClassVar[dict[str, str]] = {"batch_size": "decode_batch"}  # old name -> field (new_names)

    text_column: str | None = None  # default: first of text, sentence, content
    label_column: str | None = None  # default: "label" if present; None = unlabelled
    id_column: str | None = None  # default: the row number
    num_augmented: int | None = None  # default: as many as input rows
    pairing: Pairing | None = None  # default: intra when labelled, random when not
    # --balance: plan new rows per class, rare classes first: "equal" (= 1.0) or a ratio r in (0, 1] (every
    # class up to r x the largest); num_augmented, if given, is then the total (see mix.class_quota)
    balance: str | float | None = None
    # new rows per class, as given (label -> count): the per-class plan of the Python face (MixupSampler's
    # sampling_strategy), planned like --balance's (parent labels and its pairing by default); not with
    # balance or num_augmented. Classes left out get none
    quota: dict | None = None
    # --max-per-row: a --balance plan gives a class at most this many new rows per row it has (None: no cap).
    # Measured (docs/imbalanced.md *A real long tail*): beside a prior correction more rows per original
    # lowered macro-F1 (TREC: best at 1), alone they rose with it but stayed below the correction, and at 5 a
    # 5-row class's 10 pairs give ~5-10 % duplicate decodes (33 % at 20)
    max_per_row: int | None = 5
    neighbours: int = DEFAULT_NEIGHBOURS  # k of --pairing neighbours/boundary
    alpha: float = 0.4
    seed: int = 0
    renormalize: bool = True  # project the mixture back onto the unit sphere the adaptor was trained on
    num_candidates: int = 1
    # "guided": a beam search over the inverter's continuations, scored every 4 tokens by the encoder's cosine
    # to the target (search.py); search_width hypotheses kept, each extended search_width ways. Slow: opt-in.
    search: str = "none"
    search_width: int = DEFAULT_SEARCH_WIDTH
    # --anchor β: while a mixture decodes, each parent's words get a logit bonus β x its λ share x the word's
    # weight (anchor.py: one bonus per word, spent once written; --anchor-weights salience or idf). 0 = off
    anchor: float = 0.0
    anchor_weights: str = "salience"
    temperature: float = 0.0  # 0 = greedy; with num_candidates > 1, extra candidates sample at candidate_temperature
    candidate_temperature: float = 0.8
    top_p: float = 1.0
    max_new_tokens: int = 48
    label_policy: LabelPolicy | None = None  # default: hard, or parent with --balance (see `policy`)
    intrusion: IntrusionPolicy = "keep"
    min_fidelity: float | None = None
    max_rounds: int = 3  # planning rounds: the first plans N rows, later ones replace rejected rows
    only_new: bool = False
    checkpoint: str | None = None  # default: the checkpoint shipped in the package
    adapt: bool = False  # stage 2: first refine the checkpoint on this dataset's texts (cached by dataset hash)
    adapt_steps: int = 60
    adapt_minutes: float | None = None
    # --adapt-on FILE: stage 2 on an unlabelled file of the user's own text (its labels, if any, unused) plus
    # the rows' texts, adapt_steps steps; one adapted checkpoint per (checkpoint, texts, budget) whatever
    # --seed (ADAPT_ON_SEED), so runs with other seeds reuse it. adapt_on_column: FILE's text column
    # (default: --text-column where FILE has it, else text, sentence or content)
    adapt_on: str | None = None
    adapt_on_column: str | None = None
    # stage 2 in full: "finetune" fine-tunes the encoder + a head on the labelled rows (task_steps optimizer
    # steps), refines the adaptor on that encoder's embeddings (adapt_steps), then mixes, decodes and labels
    # in the fine-tuned space; both cached by dataset hash + settings
    task_model: str = "none"
    task_steps: int = 100
    device: str = "auto"
    # --batch-size: rows decoding at once (the decode engine's slots; also the groups that encoder-guided
    # search, re-encoding and the decode cache's writes take). The output never depends on it
    decode_batch: int = DEFAULT_DECODE_BATCH
    precision: str = DEFAULT_PRECISION  # the LM's Linear layers while decoding: auto, fp32 or int8
    engine: str = "local"  # where decoding runs: this process, or Ray actors (same output)
    num_workers: int | None = None  # Ray actors (default: one per CPU of the cluster)

    def pairing_for(self, labels) -> str:
        """The pairing in force for these labels (None: unlabelled): as set, else random for unlabelled rows
        and intra for labelled ones, --balance's too. A per-class plan spreads intra (mix.plan_pairs: each of
        a class's pairs once before any again, λ in QUOTA_LAMBDAS). Two classes had boundary under --balance
        (it won 8 of 9 few-shot cells), but at a real tail its targets repeat: its k nearest partners and
        10-step λ grid give a row a handful, and 49 % of its decodes were duplicates on movies 1000/50 at 5
        rows per original (81 % at 4,000/200) against 2 % for the spread intra plan (docs/imbalanced.md)."""
        if self.pairing is not None:
            return self.pairing
        return "random" if labels is None else "intra"

    @property
    def policy(self) -> str:
        """The label policy in force: as set, else `hard` (the classifier's label), or `parent` with --balance.
        Measured (README "Rare classes"): a labeller fitted on every class gives most rows planned for a rare
        class a common class's label (60-100 % intrusions), so the rows no longer top the rare class up."""
        return self.label_policy or ("parent" if self.per_class else "hard")

    @property
    def balance_ratio(self) -> float | None:
        """--balance as the ratio every class is planned up to (of the largest): None (off), 1.0 for "equal";
        the one reading of `balance`, which validate() checks through it."""
        return _parse_balance(self.balance)

    @property
    def per_class(self) -> bool:
        """Whether the plan is per class (--balance or an explicit quota), rare classes first."""
        return self.balance is not None or self.quota is not None

    def validate(self) -> None:
        """Every option checked before a model loads or a row is read: one line naming the option."""
        number = check_number
        number("--alpha", self.alpha, 0, MAX_ALPHA, low_open=True)
        number("--seed", self.seed, 0, MAX_SEED, integer=True)
        if self.num_augmented is not None:
            number("--num-augmented", self.num_augmented, 0, MAX_NEW_ROWS, integer=True)
        number("--num-candidates", self.num_candidates, 1, 64, integer=True)
        number("--search-width", self.search_width, 1, 64, integer=True)
        number("--anchor", self.anchor, 0, MAX_ANCHOR)
        number("--neighbours", self.neighbours, 1, 1000, integer=True)
        self.balance_ratio  # noqa: B018 - raises on a value that is no ratio
        if self.max_per_row is not None:
            number("--max-per-row", self.max_per_row, 1, MAX_NEW_ROWS, integer=True)
        if self.quota is not None:
            self._check_quota()
        number("--batch-size", self.decode_batch, 1, 4096, integer=True)
        if self.num_workers is not None:
            number("--num-workers", self.num_workers, 1, 4096, integer=True)
        number("--top-p", self.top_p, 0, 1, low_open=True)
        number("--temperature", self.temperature, 0, 100)
        number("candidate_temperature", self.candidate_temperature, 0, 100, low_open=True)
        number("--max-new-tokens", self.max_new_tokens, 1, 1024, integer=True)
        number("--max-rounds", self.max_rounds, 1, 100, integer=True)
        number("--adapt-steps", self.adapt_steps, 1, 1_000_000, integer=True)
        number("--task-steps", self.task_steps, 1, 1_000_000, integer=True)
        if self.adapt_minutes is not None:
            number("--adapt-minutes", self.adapt_minutes, 0, 60 * 24 * 365, low_open=True)
        if self.min_fidelity is not None:
            number("--min-fidelity", self.min_fidelity)
            if not -1 <= self.min_fidelity <= 1:
                raise MixaugError("--min-fidelity is a cosine: use a value in [-1, 1]")
        for name, value, allowed in (
            ("--pairing", self.pairing, PAIRINGS + (None,)),
            ("--label-policy", self.label_policy, ("hard", "parent", "soft", None)),
            ("--intrusion", self.intrusion, ("keep", "drop")),
            ("--device", self.device, DEVICES),
            ("--precision", self.precision, PRECISIONS),
            ("--engine", self.engine, ("local", "ray")),
            ("--task-model", self.task_model, TASK_MODELS),
            ("--search", self.search, SEARCHES),
            ("--anchor-weights", self.anchor_weights, ANCHOR_WEIGHTINGS),
        ):
            if value not in allowed:
                raise MixaugError(f"{name} must be one of {', '.join(a for a in allowed if a)} (got {value})")
        check_bools(("--renormalize", self.renormalize), ("--only-new", self.only_new), ("--adapt", self.adapt))
        if self.adapt_on is not None and (
            not isinstance(self.adapt_on, (str, os.PathLike)) or str(self.adapt_on) in ("", "-")
        ):
            raise MixaugError(f"--adapt-on must name a file, not stdin (got {self.adapt_on!r})")
        for name, value in (
            ("--text-column", self.text_column),
            ("--label-column", self.label_column),
            ("--id-column", self.id_column),
            ("--adapt-on-column", self.adapt_on_column),
        ):
            if value is not None and (not isinstance(value, str) or value == ""):
                raise MixaugError(f"{name} must name a column (got {value!r})")

    def _check_quota(self) -> None:
        if not isinstance(self.quota, dict):
            raise MixaugError(f"quota must be a dict of class -> new rows (got a {type(self.quota).__name__})")
        if self.balance is not None or self.num_augmented is not None:
            raise MixaugError("quota gives the rows per class: not with --balance or --num-augmented")
        for label, rows in self.quota.items():
            check_number(f"quota[{label!r}]"[:80], rows, 0, MAX_NEW_ROWS, integer=True)  # the total: pipeline


# -- training ------------------------------------------------------------------------------------------
MAX_STEPS = 1_000_000_000  # any step count or interval: far above a real run, far below an overflow


@old_names_accepted
@dataclass
class TrainConfig:
    """One training run. Everything here is recorded in the manifest's `training` section (a run saved before
    the rename names train_batch batch_size there and in state.json: `new_names` reads it)."""

    RENAMED: ClassVar[dict[str, str]] = {"batch_size": "train_batch"}  # old name -> field (new_names)

    out: str
    corpus: list[str] = field(default_factory=list)
    text_column: str | None = None
    split_sentences: bool = False
    min_words: int = 3
    max_words: int = 40
    max_sentences: int | None = None
    max_target_tokens: int = 40
    encoder: str | None = None
    lm: str | None = None
    num_soft_tokens: int = 8
    hidden_dim: int = 1024
    lora_r: int = 16  # 0 = adaptor only
    lora_alpha: int = 32
    lr: float = 2e-3
    warmup_steps: int = 30
    decay_from: int | None = None  # from this step lr falls linearly to 0 at max_steps (an annealing phase)
    train_batch: int = 16  # --batch-size: the optimizer's batch, sentences per step (the shipped checkpoint's)
    max_steps: int | None = None
    max_minutes: float | None = None
    eval_every: int = 100
    eval_size: int = 200
    save_every: int = 25
    log_every: int = 10
    noise_std: float = 0.0  # stage 3: Gaussian noise on the (renormalised) input embedding
    mix_prob: float = 0.0  # stage 3: fraction of rows replaced by mixtures of two embeddings, target = dominant parent
    seed: int = 0
    device: str = "auto"
    bf16: bool = False  # autocast bf16 measured 20x slower than fp32 on this CPU with torch 2.13
    init_checkpoint: str | None = None  # stage 2: start from this checkpoint's adaptor/LoRA
    resume: bool = False

    def validate(self) -> None:
        """Every setting checked, one line naming the option: a new run's (before a model loads) and a
        saved run's alike (`saved_config`), so a run folder's state.json cannot ask for what the CLI refuses."""
        from .inversion.checkpoint import MAX_DIM, MAX_LORA_R, MAX_SOFT_TOKENS

        whole = [
            ("--min-words", self.min_words, 1, 10_000),
            ("--max-words", self.max_words, self.min_words, 10_000),
            ("max_target_tokens", self.max_target_tokens, 1, 1024),
            ("--num-soft-tokens", self.num_soft_tokens, 1, MAX_SOFT_TOKENS),
            ("--hidden-dim", self.hidden_dim, 1, MAX_DIM),
            ("--lora-r", self.lora_r, 0, MAX_LORA_R),
            ("lora_alpha", self.lora_alpha, 1, 1_000_000),
            ("warmup_steps", self.warmup_steps, 0, MAX_STEPS),
            ("--batch-size", self.train_batch, 1, 4096),
            ("--eval-every", self.eval_every, 1, MAX_STEPS),
            ("--eval-size", self.eval_size, 1, 1_000_000),
            ("--save-every", self.save_every, 1, MAX_STEPS),
            ("log_every", self.log_every, 1, MAX_STEPS),
            ("--seed", self.seed, 0, MAX_SEED),
        ]
        optional = [("--max-sentences", self.max_sentences, 1), ("--max-steps", self.max_steps, 1)]
        optional.append(("--decay-from", self.decay_from, 0))
        for name, value, low, high in whole + [(n, v, lo, MAX_STEPS) for n, v, lo in optional if v is not None]:
            check_number(name, value, low, high, integer=True)
        check_number("--lr", self.lr, 0, 10, low_open=True)
        check_number("--noise-std", self.noise_std, 0, 10)
        check_number("--mix-prob", self.mix_prob, 0, 1)
        if self.max_minutes is not None:
            check_number("--max-minutes", self.max_minutes, 0, 60 * 24 * 365, low_open=True)
        if self.device not in DEVICES:
            raise MixaugError(f"--device must be one of {', '.join(DEVICES)} (got {self.device!r})")
        check_bools(("--split-sentences", self.split_sentences), ("bf16", self.bf16), ("--resume", self.resume))
        for name, value in (
            ("--out", self.out),
            ("--text-column", self.text_column),
            ("--encoder", self.encoder),
            ("--lm", self.lm),
            ("init_checkpoint", self.init_checkpoint),
        ):
            if (value is not None or name == "--out") and not (isinstance(value, str) and value):
                raise MixaugError(f"{name} must be a non-empty text (got {value!r})")
        if not isinstance(self.corpus, list) or not all(isinstance(c, str) and c for c in self.corpus):
            raise MixaugError(f"--corpus must be a list of file names (got {self.corpus!r})")
        if self.max_steps is None and self.max_minutes is None:
            raise MixaugError("pass --max-steps or --max-minutes to bound the run")
        if self.decay_from is not None and self.max_steps is None:
            raise MixaugError("--decay-from needs --max-steps: the step where the learning rate reaches 0")


# the task model's optimizer steps, whatever the number of rows (a fair budget for every eval arm)
TASK_STEPS = 100
