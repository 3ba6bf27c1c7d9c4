"""Reconstruction metrics shared by training, `invert` and `eval`."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

_TOKEN = re.compile(r"\w+|[^\w\s]")
_WORD = re.compile(r"\w+")


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def token_f1(reference: str, hypothesis: str, split=tokens) -> float:
    """Bag-of-tokens F1 (lower-cased words and punctuation), as in vec2text's token-F1; with split=words,
    over lower-cased words only (punctuation excluded)."""
    ref, hyp = Counter(split(reference)), Counter(split(hypothesis))
    common = sum((ref & hyp).values())
    if not ref and not hyp:
        return 1.0
    if common == 0:
        return 0.0
    precision, recall = common / sum(hyp.values()), common / sum(ref.values())
    return 2 * precision * recall / (precision + recall)


def bleu(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus BLEU (sacrebleu, default tokenisation), 0-100."""
    import sacrebleu

    return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score)


def reconstruction_report(
    references: Sequence[str], hypotheses: Sequence[str], cosines: np.ndarray
) -> dict[str, float]:
    """Mean cosine (re-encoded reconstruction vs original embedding), token-F1 (words and punctuation),
    word-F1 (words only), BLEU, exact-match rate."""
    f1 = [token_f1(r, h) for r, h in zip(references, hypotheses)]
    word_f1 = [token_f1(r, h, words) for r, h in zip(references, hypotheses)]
    exact = [r.strip().lower() == h.strip().lower() for r, h in zip(references, hypotheses)]
    return {
        "n": len(references),
        "cosine": round(float(np.mean(cosines)), 4),
        "token_f1": round(float(np.mean(f1)), 4),
        "word_f1": round(float(np.mean(word_f1)), 4),
        "bleu": round(bleu(references, hypotheses), 2),
        "exact": round(float(np.mean(exact)), 4),
    }
