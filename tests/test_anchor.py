"""Lexical anchoring (--anchor): words weighted by the dataset, one bonus per word spent once written, the
first piece only with its continuation right after it; anchored decoding stays independent of the batch,
is part of a row's cache key, and reaches the decode through augment, guided search and the static path."""

import numpy as np
import pandas as pd
import pytest

from mixaug import pipeline, stacks
from mixaug.config import AugmentConfig
from mixaug.errors import MixaugError
from mixaug.evaluation.config import parse_method
from mixaug.inversion.anchor import MAX_WORDS, TokenBias, WordWeights, row_anchors, speller, words_of
from mixaug.inversion.decode import DecodeOptions
from mixaug.inversion.decode_cache import DecodeCache
from mixaug.inversion.invert import load_inverter

EMB = np.random.default_rng(3).normal(size=(7, 384)).astype(np.float32)


def test_words_are_first_seen_unique_and_bounded():
    assert words_of("The cat's hat, the cat_s HAT! 3.5") == ["The", "cat's", "hat", "the", "cat", "s", "HAT", "3", "5"]
    assert len(words_of(" ".join(f"w{i}" for i in range(10_000)))) == MAX_WORDS
    assert words_of("x" * 41 + " ok") == ["ok"]  # a 41-letter "word" is not anchored


def test_salience_weighs_what_tells_the_classes_apart_and_idf_what_is_rare():
    texts = ["who is the king", "who was the queen", "where is the river", "where was the lake"]
    labels = ["HUM", "HUM", "LOC", "LOC"]
    sal = WordWeights(texts, labels)
    assert sal["the"] == pytest.approx(0.0) and sal["is"] == pytest.approx(0.0)  # in both classes alike
    assert sal["Who"] > 0.3 and sal["who"] == sal["where"]  # case-blind; each names one class
    assert sal["king"] < sal["who"]  # one row's evidence is weaker than two rows'
    idf = WordWeights(texts)  # no labels: idf
    assert idf.weighting == "idf" and idf["the"] == 0.0 and idf["king"] > idf["who"] > 0
    with pytest.raises(ValueError):
        WordWeights(texts, labels, "tfidf")


def test_a_row_shares_its_bonuses_by_lambda():
    w = WordWeights(["red apple", "green pear", "blue sky"])
    got = dict(row_anchors("Red apple", "green apple", 0.75, 2.0, w))
    assert got["Red"] == pytest.approx(2.0 * 0.75 * w["red"], abs=1e-4)
    assert got["green"] == pytest.approx(2.0 * 0.25 * w["green"], abs=1e-4)
    assert got["apple"] == pytest.approx(2.0 * w["apple"], abs=1e-4)  # in both parents: the whole bonus
    assert row_anchors("Red apple", "green apple", 0.75, 0.0, w) == ()


@pytest.fixture(scope="module")
def inverter(tiny_checkpoint):
    return load_inverter(tiny_checkpoint)


def test_one_bonus_per_word_spent_by_any_spelling_and_pieces_only_in_order(inverter):
    spell = speller(inverter.tokenizer)
    word = "gangsterism"
    bias = TokenBias(((word, 2.0),), spell)
    mid, cap, opening = spell(" " + word), spell(" Gangsterism"), spell(word)
    assert len(mid) > 1  # a word of several pieces
    first = bias([])
    assert first[mid[0]] == first[cap[0]] == first[opening[0]] == 2.0  # the first token may be unspaced
    assert mid[1] not in first  # a later piece is not boosted on its own
    later = bias([inverter.eos_id - 1])
    assert mid[0] in later and opening[0] not in later  # unspaced spellings only open a row
    after = bias([mid[0]])
    assert after.get(mid[1]) == 2.0  # its continuation, right after its first piece
    assert mid[0] not in after and cap[0] not in after  # spent for every spelling
    assert mid[1] not in bias([mid[0], 11])  # not once something else came between


def test_numbers_are_keyed_after_the_bare_space_and_openings_count_only_first(inverter):
    spell = speller(inverter.tokenizer)
    space, year = spell(" ")[0], spell(" 2026")
    assert year[0] == space and len(year) > 2  # SmolLM2 writes " 2026" as " ", "2", "0", ...
    bias = TokenBias((("2026", 3.0), ("tax", 2.0)), spell)
    first = bias([11])
    assert space not in first  # a bare space would be every number's bonus
    assert bias([11, space])[year[1]] == 3.0  # the number's key, right after a space
    assert year[2] in bias([11, space, year[1]])  # then its continuation
    assert year[1] not in bias([11, space, year[1], 13, space])  # spent
    tax = spell("tax")
    mid_word = bias([11, tax[0]])  # "tax" inside another word ("syntax") neither spends " tax" ...
    assert mid_word.get(spell(" tax")[0]) == 2.0
    if len(tax) > 1:
        assert tax[1] not in mid_word  # ... nor continues as an opening


def test_one_class_and_many_classes_weigh_fast_and_sensibly():
    import time

    one = WordWeights(["a cat", "a dog"], ["x", "x"])
    assert one.weighting == "idf" and one["cat"] > 0  # one class: salience would weigh every word 0
    texts = [f"row {i} word{i} shared" for i in range(20_000)]
    started = time.perf_counter()
    many = WordWeights(texts, list(range(20_000)))  # a label per row: cost is per word's own classes
    assert time.perf_counter() - started < 10
    assert many["shared"] < many["word7"] <= 1.0 and 0 <= many.unseen <= 1.0


def test_anchored_decode_writes_the_word_and_does_not_depend_on_the_batch(inverter):
    anchors = [(("gangsterism", 60.0),)] * 4 + [()] * 3
    opts = DecodeOptions(max_new_tokens=8)
    plain = inverter.decode(EMB, options=opts, batch_size=7)
    ref = inverter.decode(EMB, options=opts, batch_size=7, anchors=anchors)
    assert all("gangsterism" in t.lower() for t in ref[:4]) and ref[4:] == plain[4:]
    for batch_size in (1, 3):
        assert inverter.decode(EMB, options=opts, batch_size=batch_size, anchors=anchors) == ref
    assert inverter._decode_batch(EMB, range(7), opts, bias=inverter._bias(anchors)) == ref  # the static path
    sampled = DecodeOptions(max_new_tokens=8, temperature=1.0)
    one = inverter.decode(EMB, seeds=range(7), options=sampled, batch_size=1, anchors=anchors)
    assert one == inverter.decode(EMB, seeds=range(7), options=sampled, batch_size=5, anchors=anchors)


def test_a_continued_prefix_counts_as_written(inverter):
    spell = speller(inverter.tokenizer)
    mid = spell(" gangsterism")
    bias = inverter._bias([(("gangsterism", 5.0),)], known=[list(mid[:1])])
    assert bias(0, []) == {mid[1]: 5.0}  # continuing the word, not opening it again
    out = inverter.continue_tokens(
        EMB[:1], [list(mid[:1])], [0], DecodeOptions(max_new_tokens=3), 1, [(("gangsterism", 60.0),)]
    )
    assert out[0][: len(mid) - 1] == list(mid[1:])


def test_anchors_are_part_of_the_cache_key():
    t, opts = EMB[0], DecodeOptions()
    plain = DecodeCache.key(t, 0, opts)
    assert DecodeCache.key(t, 0, opts, anchors=()) == plain  # unanchored rows keep their old keys
    keys = {DecodeCache.key(t, 0, opts, anchors=a) for a in ((("a", 1.0),), (("a", 1.5),), (("b", 1.0),))}
    assert len(keys) == 3 and plain not in keys


def test_augment_with_anchor_is_deterministic_across_batch_sizes(tmp_path, sample_rows, tiny_checkpoint, monkeypatch):
    monkeypatch.setenv("MIXAUG_NO_DECODE_CACHE", "1")
    monkeypatch.setattr(stacks, "_STACKS", {})
    df = pd.DataFrame(sample_rows)
    kw = dict(checkpoint=str(tiny_checkpoint), num_augmented=12, max_new_tokens=8, only_new=True, seed=2)
    ref = pipeline.augment(df, anchor=8.0, decode_batch=12, **kw)
    assert pipeline.augment(df, anchor=8.0, decode_batch=1, **kw)["text"].tolist() == ref["text"].tolist()
    plain = pipeline.augment(df, decode_batch=12, **kw)
    assert plain["text"].tolist() != ref["text"].tolist()
    parents = set(" ".join(df["text"]).lower().split())
    share = lambda out: np.mean([w in parents for t in out["text"] for w in t.lower().split()])  # noqa: E731
    assert share(ref) > share(plain)  # the tiny LM writes its parents' words once anchored
    guided = pipeline.augment(df, anchor=8.0, search="guided", search_width=2, **kw)
    assert share(guided) > share(plain)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"anchor": -1}, "--anchor must be >= 0"),
        ({"anchor": 51}, "--anchor must be <= 50"),
        ({"anchor_weights": "tf"}, "--anchor-weights must be one of"),
    ],
)
def test_anchor_options_are_checked(options, message):
    with pytest.raises(MixaugError, match=message):
        AugmentConfig(**options).validate()


def test_eval_names_anchored_variants():
    assert parse_method("mixaug+anchor3").variant == "anchor3"
    assert parse_method("mixaug+anchor1.5:hard:intra").pairing == "intra"
    for bad in ("mixaug+anchor", "mixaug+anchor99", "mixaug+anchorx"):
        with pytest.raises(MixaugError, match="anchor<β>"):
            parse_method(bad)


def test_the_weighted_variant_weighs_new_rows_by_fidelity_and_confidence(monkeypatch):
    from types import SimpleNamespace

    from mixaug.data.provenance import row_weight
    from mixaug.evaluation import arms
    from mixaug.evaluation.config import EvalConfig
    from mixaug.inversion.decode import DecodeStats

    seen = {}

    def fake_augment(frame, **kw):
        seen.update(kw)
        out = pd.DataFrame(
            {
                "text": ["new one", "new two"],
                "label": ["a", "b"],
                "mixaug_lambda": [0.5, 0.7],
                "mixaug_fidelity": [0.5, -0.2],
                "mixaug_label_confidence": [0.8, 0.9],
                "mixaug_intrusion": [False, False],
                "mixaug_parent_a_label": ["a", "b"],
                "mixaug_parent_b_label": ["a", "b"],
            }
        )
        out["mixaug_weight"] = [row_weight(f, c) for f, c in zip(out.mixaug_fidelity, out.mixaug_label_confidence)]
        out.attrs["mixaug_stats"] = {"label_policy": "hard", "pairing": "intra", "checkpoint": "x"}
        return out

    monkeypatch.setattr(pipeline, "augment", fake_augment)
    stack = SimpleNamespace(inverter=SimpleNamespace(totals=DecodeStats()))
    sub = arms.Subset(["x", "y"], ["a", "b"], 0, [], EvalConfig(train="t", test="t", out="o"), stack, None, {})
    rows = arms.arm_mixaug(parse_method("mixaug+anchor6+weighted"), sub).rows
    assert seen["anchor"] == 6.0
    assert [r.weight for r in rows] == [1.0, 1.0, pytest.approx(0.4), 0.0]  # originals 1; fidelity clipped at 0
    plain = arms.arm_mixaug(parse_method("mixaug+anchor6"), sub).rows
    assert [r.weight for r in plain] == [1.0] * 4
