"""Rejecting bad generations: empty, degenerate (loops), copies of inputs, duplicates, low fidelity."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

REASONS = ("empty", "degenerate", "copy_of_input", "duplicate", "low_fidelity", "intrusion")


def normalise(text: str) -> str:
    """Case- and whitespace-insensitive form used to detect copies."""
    return " ".join(str(text).lower().split())


def is_degenerate(text: str) -> bool:
    """A repetition loop: a word 4+ times in a row, or (8+ words) under half of them distinct."""
    words = text.lower().split()
    run = 1
    for prev, cur in zip(words, words[1:]):
        run = run + 1 if cur == prev else 1
        if run >= 4:
            return True
    if len(words) >= 8 and len(set(words)) / len(words) < 0.5:
        return True
    most = Counter(text.replace(" ", "")).most_common(1)
    return bool(most) and len(text) >= 12 and most[0][1] / len(text.replace(" ", "")) > 0.6


class Filter:
    """Stateful across planning rounds: remembers inputs and accepted rows to reject copies and repeats."""

    def __init__(self, input_texts: Iterable[str], min_fidelity: float | None = None, drop_intrusions: bool = False):
        self.inputs = {normalise(t) for t in input_texts}
        self.accepted: set[str] = set()
        self.min_fidelity = min_fidelity
        self.drop_intrusions = drop_intrusions
        self.rejected: Counter = Counter()

    def check(self, text: str, fidelity: float, intrusion: bool) -> str | None:
        """The rejection reason, or None (and the text is remembered as accepted)."""
        key = normalise(text)
        if not key:
            reason = "empty"
        elif is_degenerate(text):
            reason = "degenerate"
        elif key in self.inputs:
            reason = "copy_of_input"
        elif key in self.accepted:
            reason = "duplicate"
        elif self.min_fidelity is not None and fidelity < self.min_fidelity:
            reason = "low_fidelity"
        elif self.drop_intrusions and intrusion:
            reason = "intrusion"
        else:
            self.accepted.add(key)
            return None
        self.rejected[reason] += 1
        return reason
