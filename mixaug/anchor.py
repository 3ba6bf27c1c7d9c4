"""Lexical anchoring: decoding a mixture with a soft pull toward its parents' own words (training-free).

When mixaug decodes h = λ·h_a + (1−λ)·h_b it has both parents' texts. The mixture still decides what the
sentence means (the soft prompt); anchoring adds, at each step of that row's decode, a bonus to the logits
of the tokens that would begin one of the parents' words (K2T's soft shift, HF's SequenceBiasLogitsProcessor
as an additive bias):

    bonus(word) = strength x (λ·[word in a] + (1−λ)·[word in b]) x weight(word)

- one bonus per *word*: " Gangster", " gangster" and (as a row's first token) "Gangster" share it, and
  emitting the first piece of any spelling spends it for all of them, so a word is not written twice;
- the first piece only: a word of several pieces gets its next piece boosted only right after the piece
  before it (its continuation), so pieces of different words are not glued into non-words; a spelling
  without the leading space is only offered as the row's first token, where no space is written;
- weights by how much a word tells the classes apart (`salience`: 1 − the normalised entropy of its
  smoothed class distribution over the dataset's rows), or by its rarity where there are no labels
  (`idf`), instead of a stop list: "the" weighs ~0 everywhere, "who" weighs much in a question-type task.

Two layers: `WordWeights` + `row_anchors` are pure text (the pipeline builds a row's `Anchors`: words and
bonuses, which also enter the row's decode-cache key); `TokenBias` turns them into token ids with the LM's
tokenizer and gives the decode engine, for a row's tokens so far, the bonuses of its next token.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from .config import ANCHOR_WEIGHTINGS as WEIGHTINGS

MAX_WORDS = 48  # per parent: bounded before anything is allocated (a row is untrusted text)
MAX_WORD_CHARS = 40
MIN_BONUS = 0.05  # as a share of the strength: lighter words are left out of a row's anchors
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")


def words_of(text: str) -> list[str]:
    """The words of a text (letters and digits, inner apostrophes kept), first occurrence order, at most
    MAX_WORDS, each at most MAX_WORD_CHARS long."""
    seen: dict[str, None] = {}
    for m in _WORD.finditer(text[: MAX_WORDS * (MAX_WORD_CHARS + 2) * 4]):
        w = m.group()
        if len(w) <= MAX_WORD_CHARS:
            seen.setdefault(w, None)
            if len(seen) >= MAX_WORDS:
                break
    return list(seen)


class WordWeights:
    """How much each word of a dataset is worth anchoring, in [0, 1], from the dataset's own rows.

    salience (labels given): the word's class distribution over the rows holding it, smoothed toward the
    class prior by one pseudo-row; 1 − H(p(class | word)) / log(classes), divided by the dataset's largest,
    so the most telling word weighs 1 (a word of one row weighs ~0.4 in a 6-class, 10-shot sample). idf (no
    labels, or asked for): log((n + 1) / (df + 1)) / log(n + 1), 0 for a word in every row. Words are compared lower-cased;
    a word the dataset never held gets the weight of a word seen once."""

    def __init__(self, texts: Sequence[str], labels: Sequence | None = None, weighting: str = "salience"):
        if weighting not in WEIGHTINGS:
            raise ValueError(f"unknown anchor weighting {weighting!r}: choose {', '.join(WEIGHTINGS)}")
        rows = [{w.lower() for w in words_of(t)} for t in texts]
        self.n = len(rows)
        df = Counter(w for r in rows for w in r)
        self.weighting = weighting if labels is not None else "idf"
        if self.weighting == "idf":
            top = math.log(self.n + 1) or 1.0
            self.table = {w: math.log((self.n + 1) / (c + 1)) / top for w, c in df.items()}
            self.unseen = math.log((self.n + 1) / 2) / top
            return
        classes = sorted(set(labels), key=repr)
        index = {c: k for k, c in enumerate(classes)}
        prior = Counter(index[y] for y in labels)
        k = len(classes)
        counts: dict[str, list[float]] = {}
        for r, y in zip(rows, labels):
            for w in r:
                counts.setdefault(w, [0.0] * k)[index[y]] += 1
        p0 = [prior[j] / self.n for j in range(k)]
        raw = {w: _salience(c, p0) for w, c in counts.items()}
        top = max(raw.values(), default=0.0) or 1.0  # the dataset's most telling word weighs 1
        self.table = {w: v / top for w, v in raw.items()}
        self.unseen = (_salience([1.0 if j == 0 else 0.0 for j in range(k)], p0) if k > 1 else 0.0) / top

    def __getitem__(self, word: str) -> float:
        return self.table.get(word.lower(), self.unseen)


def _salience(counts: Sequence[float], prior: Sequence[float]) -> float:
    k = len(counts)
    if k < 2:
        return 0.0
    total = sum(counts) + 1.0
    p = [(c + q) / total for c, q in zip(counts, prior)]
    h = -sum(x * math.log(x) for x in p if x > 0)
    return max(0.0, 1.0 - h / math.log(k))


Anchors = tuple[tuple[str, float], ...]  # one row's words (as written in a parent) and their bonuses


def row_anchors(text_a: str, text_b: str, lam: float, strength: float, weights: WordWeights) -> Anchors:
    """A mixed row's anchors: each word of either parent with bonus strength x (λ·[in a] + (1−λ)·[in b]) x
    weight, words equal up to case merged (the first spelling seen kept), those under MIN_BONUS x strength
    left out; in a stable order (the bonuses rounded to 1e-4, so the cache key is the same on every machine)."""
    if strength <= 0:
        return ()
    share: dict[str, list] = {}  # lower-cased word -> [its first spelling, λ share]
    for text, part in ((text_a, lam), (text_b, 1.0 - lam)):
        for low in dict.fromkeys(w.lower() for w in words_of(text)):
            share.setdefault(low, [None, 0.0])[1] += part
        for w in words_of(text):
            if share[w.lower()][0] is None:
                share[w.lower()][0] = w
    out = []
    for low, (word, part) in share.items():
        bonus = round(strength * min(part, 1.0) * weights[low], 4)
        if bonus >= MIN_BONUS * strength:
            out.append((word, bonus))
    return tuple(out)


# -- tokens ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Word:
    bonus: float
    spellings: tuple[tuple[int, ...], ...]  # after a space: " word", " Word", " WORD"... as token ids
    openings: tuple[tuple[int, ...], ...]  # as a row's first token: "word", "Word"


class TokenBias:
    """A row's anchors as token ids; `__call__(tokens)` -> {next token: bonus} for the row's tokens so far."""

    def __init__(self, anchors: Anchors, spell):
        words = []
        for word, bonus in anchors:
            forms = dict.fromkeys((word, word.lower(), word[:1].upper() + word[1:]))
            spellings = tuple(dict.fromkeys(spell(" " + f) for f in forms if f))
            openings = tuple(dict.fromkeys(spell(f) for f in forms if f))
            words.append(_Word(bonus, tuple(s for s in spellings if s), tuple(s for s in openings if s)))
        self.words = words
        self.first: dict[int, list[int]] = {}  # first piece -> the words it begins (emitting it spends them)
        for k, w in enumerate(words):
            for s in w.spellings + w.openings:
                self.first.setdefault(s[0], []).append(k)

    def __call__(self, tokens: Sequence[int]) -> dict[int, float]:
        out: dict[int, float] = {}
        spent = {k for t in tokens for k in self.first.get(t, ())}
        n = len(tokens)
        for k, w in enumerate(self.words):
            if k not in spent:
                for s in w.spellings if n else w.spellings + w.openings:
                    out[s[0]] = max(out.get(s[0], 0.0), w.bonus)
            if not n or k not in spent:
                continue
            for s in w.spellings + w.openings:  # a word being written: its next piece, right after the last
                for j in range(1, min(len(s), n + 1)):
                    if tuple(tokens[n - j :]) == s[:j]:
                        out[s[j]] = max(out.get(s[j], 0.0), w.bonus)
        return out


def speller(tokenizer):
    """text -> its token ids (no special tokens), remembered per text."""
    memo: dict[str, tuple[int, ...]] = {}

    def spell(text: str) -> tuple[int, ...]:
        if text not in memo:
            memo[text] = tuple(tokenizer(text, add_special_tokens=False)["input_ids"])
        return memo[text]

    return spell
