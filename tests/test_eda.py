"""EDA at full strength: WordNet synonyms read from the database files, the four ops, stop words kept."""

import os

import pytest

from mixaug.evaluation.baselines import EDA_OPS, EDA_OPS_NO_SYNONYMS, eda, eda_ops, wordnet_dir, wordnet_synonyms

LICENCE = "  1 This software and database is being provided to you, the LICENSEE, by\n"


def fake_wordnet(folder):
    """Four data files in WordNet 3.0's format: offset lex_filenum ss_type w_cnt(hex) word lex_id ..."""
    lines = {
        "noun": ["00001740 03 n 03 film 0 movie 0 motion_picture 0 000 | a story told in moving pictures"],
        "verb": ["00002000 29 v 02 run 0 operate 1 000 | direct or control"],
        "adj": ["00003000 00 a 02 good(a) 0 beneficial 0 000 | having desirable qualities"],
        "adv": ["00004000 02 r 01 alone 0 000 | without others"],
    }
    for pos, rows in lines.items():
        (folder / f"data.{pos}").write_text(LICENCE + "\n".join(rows) + "\n", encoding="utf-8")
    return folder


def test_synonyms_are_read_from_the_database_format(tmp_path):
    syn = wordnet_synonyms(fake_wordnet(tmp_path))
    assert syn["film"] == ("motion picture", "movie") and syn["good"] == ("beneficial",)
    assert syn["run"] == ("operate",) and "alone" not in syn  # a synset of one word gives no synonym


def test_synonym_replacement_and_insertion_use_synonyms_and_spare_stop_words(tmp_path):
    syn = wordnet_synonyms(fake_wordnet(tmp_path))
    assert eda_ops(syn) == EDA_OPS and eda_ops({}) == EDA_OPS_NO_SYNONYMS
    texts, labels = eda(["the good film"] * 40, ["x"] * 40, 40, seed=1, alpha=0.5, synonyms=syn)
    assert labels == ["x"] * 40
    words = {w for t in texts for w in t.split()}
    assert {"beneficial", "movie"} & words  # replaced or inserted synonyms appear
    assert all(t.split().count("the") <= 1 for t in texts)  # 'the' has no synonyms and is never inserted
    assert eda(["the good film"] * 5, ["x"] * 5, 5, seed=1, synonyms=syn) == eda(
        ["the good film"] * 5, ["x"] * 5, 5, seed=1, synonyms=syn
    )


@pytest.mark.skipif(
    wordnet_dir() is None and not os.environ.get("MIXAUG_REQUIRE_WORDNET"), reason="wordnet-base not installed"
)
def test_real_wordnet_is_found_and_read():
    syn = wordnet_synonyms()
    assert len(syn) > 100_000 and "flick" in syn["movie"] and "beneficial" in syn["good"]
