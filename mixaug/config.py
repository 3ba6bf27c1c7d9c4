"""The one configuration object of `augment`: named strategies, not interacting flags."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Pairing = Literal["intra", "inter", "random"]
LabelPolicy = Literal["hard", "parent", "soft"]
IntrusionPolicy = Literal["keep", "drop"]


@dataclass
class AugmentConfig:
    """How to augment a dataset. Defaults follow the paper: intra-class pairs, Beta(0.4, 0.4), hard labels."""

    text_column: str | None = None  # default: first of text, sentence, content
    label_column: str | None = None  # default: "label" if present; None = unlabelled
    id_column: str | None = None  # default: the row number
    num_augmented: int | None = None  # default: as many as input rows
    pairing: Pairing | None = None  # default: intra when labelled, random when not
    alpha: float = 0.4
    seed: int = 0
    renormalize: bool = True  # project the mixture back onto the unit sphere the adaptor was trained on
    num_candidates: int = 1
    temperature: float = 0.0  # 0 = greedy; with num_candidates > 1, extra candidates sample at candidate_temperature
    candidate_temperature: float = 0.8
    top_p: float = 1.0
    max_new_tokens: int = 48
    label_policy: LabelPolicy = "hard"
    intrusion: IntrusionPolicy = "keep"
    min_fidelity: float | None = None
    max_rounds: int = 3  # planning rounds: the first plans N rows, later ones replace rejected rows
    only_new: bool = False
    checkpoint: str | None = None  # default: the checkpoint shipped in the package
    adapt: bool = False  # stage 2: first refine the checkpoint on this dataset's texts (cached by dataset hash)
    adapt_steps: int = 60
    adapt_minutes: float | None = None
    device: str = "auto"
    batch_size: int = 32

    def validate(self) -> None:
        from .errors import MixaugError

        if self.alpha <= 0:
            raise MixaugError(f"--alpha must be > 0 (got {self.alpha})")
        if self.num_augmented is not None and self.num_augmented < 0:
            raise MixaugError(f"--num-augmented must be >= 0 (got {self.num_augmented})")
        if self.num_candidates < 1:
            raise MixaugError("--num-candidates must be >= 1")
        if self.batch_size < 1:
            raise MixaugError("--batch-size must be >= 1")
        if not 0 < self.top_p <= 1:
            raise MixaugError("--top-p must be in (0, 1]")
        if self.temperature < 0:
            raise MixaugError("--temperature must be >= 0")
        if self.min_fidelity is not None and not -1 <= self.min_fidelity <= 1:
            raise MixaugError("--min-fidelity is a cosine: use a value in [-1, 1]")
        for name, value, allowed in (
            ("--pairing", self.pairing, ("intra", "inter", "random", None)),
            ("--label-policy", self.label_policy, ("hard", "parent", "soft")),
            ("--intrusion", self.intrusion, ("keep", "drop")),
        ):
            if value not in allowed:
                raise MixaugError(f"{name} must be one of {', '.join(a for a in allowed if a)} (got {value})")
