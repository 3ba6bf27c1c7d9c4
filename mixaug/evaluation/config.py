"""`mixaug eval`'s configuration, apart from the code that runs it: the arms and classifiers by name,
`EvalConfig` (which checks itself), the methods (`Method`, `parse_method`), mixaug's variants and --shots.
Light to import, as `mixaug.config` is: the CLI reads its defaults here."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import ClassVar

from ..config import (
    DEFAULT_DECODE_BATCH,
    DEFAULT_PRECISION,
    MAX_ANCHOR,
    MAX_SEED,
    PAIRINGS,
    TASK_STEPS,
    AugmentConfig,
    check_number,
    old_names_accepted,
)
from ..errors import MixaugError

# The arms and classifiers of `mixaug eval`, each named here and only here: evaluation.arms.ARMS holds the
# function arm_<name> of each arm, evaluation.classifiers.CLASSIFIERS the function <name> of each classifier,
# so a config is checked without importing the benchmark.
EVAL_ARMS = ("none", "class-weights", "oversample", "eda", "embed-mixup", "smote", "paraphrase", "mixaug")
EVAL_CLASSIFIERS = ("logreg", "tfidf", "finetune")
FINETUNE_STEPS = TASK_STEPS  # measured: 100 steps of batch 16 beat the frozen-embedding regression at 10-shot

DEFAULT_METHODS = (
    "none",
    "eda",
    "embed-mixup",
    "paraphrase",
    "mixaug",
    "mixaug:parent:intra",
    "mixaug:soft:intra",
    "mixaug:hard:inter",
)
# with --rare-classes: what a user reaches for when a class is rare, and each way mixaug can pair
IMBALANCED_METHODS = (
    "none",
    "class-weights",
    "oversample",
    "eda",
    "smote",
    "embed-mixup",
    "mixaug",  # under --balance: parent labels, intra
    "mixaug:hard:intra",
    "mixaug:parent:neighbours",
    "mixaug:parent:boundary",
)


@old_names_accepted
@dataclass
class EvalConfig:
    """One `mixaug eval` run: which arms, classifiers, shots and seeds, on which TRAIN/TEST files."""

    RENAMED: ClassVar[dict[str, str]] = {"batch_size": "decode_batch"}  # old name -> field (config.new_names)

    train: str
    test: str
    out: str
    text_column: str | None = None
    label_column: str | None = None
    shots: list = field(default_factory=lambda: [10, 20, "all"])
    seeds: int = 5
    methods: list = field(default_factory=lambda: list(DEFAULT_METHODS))
    classifiers: list = field(default_factory=lambda: ["logreg"])  # each scores every method's rows
    finetune_steps: int = FINETUNE_STEPS  # optimizer steps of the finetune classifier (and of mixaug+task's task model)
    ratio: float = 1.0  # new rows per original row
    max_new_rows: int = 200  # cap per run, so "all" stays affordable on a CPU
    # the imbalanced setting: per seed, rare_classes classes (drawn at random) keep rare_shots rows while the
    # others keep `shots`; every arm then makes its rows for the rare classes only, as many as bring each up
    # to the largest (mixaug: --balance equal), and macro-F1 and the rare classes' recall are the headline
    rare_classes: int = 0
    rare_shots: int = 3
    max_test: int | None = 1000
    fidelity_n: int = 100
    control_pairs: int = 10
    checkpoint: str | None = None
    device: str = "auto"
    decode_batch: int = DEFAULT_DECODE_BATCH  # --batch-size: rows decoding (and encoding) at once
    precision: str = DEFAULT_PRECISION
    seed: int = 0

    def validate(self) -> None:
        """Every setting checked before a file is read or a model loads, one line naming the option (the
        CLI's own checks are these)."""
        for name, value, low, high in (
            ("--seeds", self.seeds, 1, 1000),
            ("--max-new-rows", self.max_new_rows, 1, 1_000_000),
            ("--rare-classes", self.rare_classes, 0, 100_000),
            ("--rare-shots", self.rare_shots, 1, 1_000_000),
            ("--fidelity-n", self.fidelity_n, 0, 1_000_000),
            ("--control-pairs", self.control_pairs, 0, 10_000),
            ("--finetune-steps", self.finetune_steps, 1, 1_000_000),
            ("--seed", self.seed, 0, MAX_SEED),
        ):
            check_number(name, value, low, high, integer=True)
        if self.max_test is not None:
            check_number("--max-test", self.max_test, 1, 10_000_000, integer=True)
        check_number("--ratio", self.ratio, 0, 100, low_open=True)
        AugmentConfig(decode_batch=self.decode_batch, precision=self.precision, device=self.device).validate()
        if not isinstance(self.shots, list) or not self.shots:
            raise MixaugError(f"--shots takes positive numbers or 'all' (got {self.shots!r})")
        for shot in self.shots:
            if shot != "all":
                check_number("--shots", shot, 1, 10_000_000, integer=True)
        for name, value in (("--train", self.train), ("--test", self.test), ("--out", self.out)):
            if not isinstance(value, str) or not value:
                raise MixaugError(f"{name} must name a file or folder (got {value!r})")
        bad = [c for c in self.classifiers if c not in EVAL_CLASSIFIERS] or ([] if self.classifiers else ["(none)"])
        if bad:
            raise MixaugError(
                f"--classifier takes one or more of {', '.join(EVAL_CLASSIFIERS)} (got {', '.join(map(str, bad))})"
            )
        if not self.methods:
            raise MixaugError("--methods names no method")
        for method in self.methods:
            parse_method(method)


def parse_shots(text: str) -> list:
    """--shots as a list: "10,20,all" -> [10, 20, "all"]."""
    shots = []
    for part in str(text).split(","):
        part = part.strip()
        if part == "all":
            shots.append("all")
        elif part.isdigit() and int(part) > 0:
            shots.append(int(part))
        else:
            raise MixaugError(f"--shots takes positive numbers or 'all' (got '{part}')")
    return shots


def shots_text(shots: list) -> str:
    """The inverse of parse_shots: how --shots writes a list (the CLI's default)."""
    return ",".join(map(str, shots))


# mixaug variants by name: the augment options each one sets
VARIANTS = {
    "adapt": {"adapt": True},
    "task": {"task_model": "finetune"},
    "guided": {"search": "guided", "search_width": 3},
}


WEIGHTED = "weighted"  # eval only: each new row weighted by its mixaug_weight (how rows are used)
POOL = "pool"  # eval only: --adapt-on TRAIN, every TRAIN text as the unlabelled pool (labels unused)


def variant_options(variant: str | None) -> dict | None:
    """The augment options of a mixaug variant, parts joined by '+': VARIANTS by name, anchor<β> (--anchor
    β, e.g. anchor3 or anchor1.5), `weighted` (no option: eval weights the rows) or `pool` (--adapt-on
    TRAIN, which eval names); None for a name that is none of them."""
    options: dict = {}
    for part in (variant or "").split("+"):
        m = re.fullmatch(r"anchor(\d{1,2}(?:\.\d{1,2})?)", part)
        if part in VARIANTS:
            options.update(VARIANTS[part])
        elif m and float(m.group(1)) <= MAX_ANCHOR:
            options["anchor"] = float(m.group(1))
        elif part not in ("", WEIGHTED, POOL):
            return None
    return options


@dataclass(frozen=True)
class Method:
    """An augmentation arm by name. mixaug arms: `mixaug[+adapt|+pool|+task|+guided|+anchor<β>|+weighted][:policy:pairing[:keep|drop]]`."""

    name: str
    kind: str  # one of EVAL_ARMS (evaluation.arms.ARMS runs each)
    policy: str | None = None  # mixaug: None = augment's default
    pairing: str | None = None
    # mixaug only: None or parts joined by "+" (variant_options): adapt, pool, task, guided, anchor<β>, weighted
    variant: str | None = None
    intrusion: str = "keep"  # mixaug only: --intrusion (drop: rows whose label is neither parent's are replanned)

    @property
    def variant_parts(self) -> tuple[str, ...]:
        """The variant's parts ('anchor6+weighted' -> ('anchor6', 'weighted')); () for none."""
        return tuple(self.variant.split("+")) if self.variant else ()


def parse_method(name: str) -> Method:
    """'mixaug' -> augment's defaults; 'mixaug+task:soft:inter' -> the task-model variant, soft, inter;
    'mixaug:hard:intra:drop' -> intrusions dropped; others as is."""
    head, _, rest = name.partition(":")
    kind, _, variant = head.partition("+")
    if kind == "mixaug":
        if variant_options(variant) is None:
            raise MixaugError(
                f"bad method '{name}': mixaug variants are +adapt, +pool, +task, +guided, +anchor<β> (e.g. "
                "mixaug+anchor3) and +weighted, joined by '+' (mixaug+pool+weighted)"
            )
        if not rest:  # the product's defaults (hard labels, intra pairs; parent labels under --balance)
            return Method(name, "mixaug", None, None, variant or None)
        parts = rest.split(":")
        if (
            len(parts) not in (2, 3)
            or parts[0] not in ("hard", "parent", "soft")
            or parts[1] not in PAIRINGS
            or parts[2:] not in ([], ["keep"], ["drop"])
        ):
            raise MixaugError(
                f"bad method '{name}': use mixaug[+adapt|+pool|+task|+guided|+anchor<β>|+weighted][:<hard|parent|soft>:<{'|'.join(PAIRINGS)}>[:keep|drop]]"
            )
        return Method(name, "mixaug", parts[0], parts[1], variant or None, (parts[2:] or ["keep"])[0])
    if name not in EVAL_ARMS:
        raise MixaugError(
            f"unknown method '{name}': use {', '.join(a for a in EVAL_ARMS if a != 'mixaug')}, "
            "mixaug[+adapt|+pool|+task|+guided|+anchor<β>|+weighted][:policy:pairing[:keep|drop]]"
        )
    return Method(name, name)
