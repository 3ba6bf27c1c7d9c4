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

from ..config import ANCHOR_WEIGHTINGS as WEIGHTINGS

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
    so the most telling word weighs 1 (a word of one row weighs ~0.4 in a 6-class, 10-shot sample); the
    cost is the word's own classes, not all classes. idf (no labels, one class, or asked for):
    log((n + 1) / (df + 1)) / log(n + 1), 0 for a word in every row. Words are compared lower-cased; a word
    the dataset never held gets the weight of a word seen once."""

    def __init__(self, texts: Sequence[str], labels: Sequence | None = None, weighting: str = "salience"):
        if weighting not in WEIGHTINGS:
            raise ValueError(f"unknown anchor weighting {weighting!r}: choose {', '.join(WEIGHTINGS)}")
        rows = [{w.lower() for w in words_of(t)} for t in texts]
        self.n = len(rows)
        df = Counter(w for r in rows for w in r)
        classes = sorted(set(labels), key=repr) if labels is not None else []
        self.weighting = weighting if len(classes) > 1 else "idf"  # one class: no word tells it apart
        if self.weighting == "idf":
            top = math.log(self.n + 1) or 1.0
            self.table = {w: math.log((self.n + 1) / (c + 1)) / top for w, c in df.items()}
            self.unseen = math.log((self.n + 1) / 2) / top
            return
        index = {c: k for k, c in enumerate(classes)}
        counts: dict[str, Counter] = {}  # sparse: a word's rows per class it occurs in
        for r, y in zip(rows, labels):
            for w in r:
                counts.setdefault(w, Counter())[index[y]] += 1
        prior = Counter(index[y] for y in labels)
        q = {c: m / self.n for c, m in prior.items()}
        salience = _Salience(q, len(classes))
        raw = {w: salience(c) for w, c in counts.items()}
        top = max(raw.values(), default=0.0) or 1.0  # the dataset's most telling word weighs 1
        self.table = {w: v / top for w, v in raw.items()}
        self.unseen = min(1.0, salience(Counter({prior.most_common(1)[0][0]: 1})) / top)

    def __getitem__(self, word: str) -> float:
        return self.table.get(word.lower(), self.unseen)


class _Salience:
    """1 − H(p) / log(k) for p_c = (n_c + q_c) / (n + 1), in the time of the word's own classes: the classes
    it never occurs in contribute (H(q) + log T) / T − Σ over its classes of −(q_c/T)·log(q_c/T), T = n + 1."""

    def __init__(self, prior: dict[int, float], k: int):
        self.q, self.k = prior, k
        self.h0 = -sum(x * math.log(x) for x in prior.values() if x > 0)

    def __call__(self, counts: Counter) -> float:
        t = sum(counts.values()) + 1.0
        h = (self.h0 + math.log(t)) / t  # every class at its prior share alone
        for c, m in counts.items():
            p, base = (m + self.q[c]) / t, self.q[c] / t
            h += -p * math.log(p) + base * math.log(base)
        return max(0.0, 1.0 - h / math.log(self.k))


Anchors = tuple[tuple[str, float], ...]  # one row's words (as written in a parent) and their bonuses


def row_anchors(text_a: str, text_b: str, lam: float, strength: float, weights: WordWeights) -> Anchors:
    """A mixed row's anchors: each word of either parent with bonus strength x (λ·[in a] + (1−λ)·[in b]) x
    weight, words equal up to case merged (the first spelling seen kept), those under MIN_BONUS x strength
    left out; in a stable order (the bonuses rounded to 1e-4, so the cache key is the same on every machine)."""
    if strength <= 0:
        return ()
    share: dict[str, list] = {}  # lower-cased word -> [its first spelling, λ share]
    for text, part in ((text_a, lam), (text_b, 1.0 - lam)):
        seen: set[str] = set()
        for w in words_of(text):
            entry = share.setdefault(w.lower(), [w, 0.0])
            if w.lower() not in seen:
                seen.add(w.lower())
                entry[1] += part
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
    spellings: tuple[tuple[int, ...], ...]  # after a space: " word", " Word" as token ids
    openings: tuple[tuple[int, ...], ...]  # as a row's first token: "word", "Word"


class TokenBias:
    """A row's anchors as token ids; `__call__(tokens)` -> {next token: bonus} for the row's tokens so far.

    A spelling's *key* is its first piece, or its second where the first is a bare space (the tokenizer
    writes " 2026" as " ", "2", ...): the bare space is never boosted (every number would share it), the key
    is, right after a space. Writing a key spends the word for all its spellings; an unspaced spelling (an
    opening) counts, and is offered, only as the row's first token."""

    def __init__(self, anchors: Anchors, spell):
        space = spell(" ")
        self.space = space[0] if len(space) == 1 else None
        words = []
        for word, bonus in anchors:
            forms = dict.fromkeys((word, word.lower(), word[:1].upper() + word[1:]))
            spellings = tuple(s for s in dict.fromkeys(spell(" " + f) for f in forms) if s and s != space)
            openings = tuple(s for s in dict.fromkeys(spell(f) for f in forms) if s)
            words.append(_Word(bonus, spellings, openings))
        self.words = words
        self.keys: dict[tuple[int, ...], list[int]] = {}  # a key with what must come right before it -> words
        self.opening: dict[int, list[int]] = {}  # a row's first token -> the words it opens
        for k, w in enumerate(words):
            for sp in w.spellings:
                self.keys.setdefault(sp[: self._lead(sp) + 1], []).append(k)
            for sp in w.openings:
                self.opening.setdefault(sp[0], []).append(k)

    def _lead(self, spelling: tuple[int, ...]) -> int:
        """1 where the spelling starts with a bare space that another piece follows, else 0."""
        return int(len(spelling) > 1 and spelling[0] == self.space)

    def _spent(self, tokens: Sequence[int]) -> set[int]:
        spent = set(self.opening.get(tokens[0], ())) if tokens else set()
        for pos, t in enumerate(tokens):
            spent.update(self.keys.get((t,), ()))
            if pos and tokens[pos - 1] == self.space:
                spent.update(self.keys.get((self.space, t), ()))
        return spent

    def __call__(self, tokens: Sequence[int]) -> dict[int, float]:
        out: dict[int, float] = {}

        def boost(token: int, bonus: float) -> None:
            out[token] = max(out.get(token, 0.0), bonus)

        n = len(tokens)
        spent = self._spent(tokens)
        after_space = n > 0 and tokens[-1] == self.space
        for k, w in enumerate(self.words):
            if k not in spent:
                for sp in w.spellings:
                    lead = self._lead(sp)
                    if not lead or after_space:
                        boost(sp[lead], w.bonus)
                for sp in w.openings if not n else ():
                    boost(sp[0], w.bonus)
                continue
            for sp in w.spellings:  # a word being written: its next piece, right after the one before
                for j in range(self._lead(sp) + 1, min(len(sp), n + 1)):
                    if tuple(tokens[n - j :]) == sp[:j]:
                        boost(sp[j], w.bonus)
            for sp in w.openings:  # an opening continues only from the row's first token
                if 0 < n < len(sp) and tuple(tokens) == sp[:n]:
                    boost(sp[n], w.bonus)
        return out


def speller(tokenizer):
    """text -> its token ids (no special tokens), remembered per text."""
    memo: dict[str, tuple[int, ...]] = {}

    def spell(text: str) -> tuple[int, ...]:
        if text not in memo:
            memo[text] = tuple(tokenizer(text, add_special_tokens=False)["input_ids"])
        return memo[text]

    return spell
