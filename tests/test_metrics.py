from mixaug.metrics import reconstruction_report, token_f1, words


def test_word_f1_ignores_punctuation_and_case():
    assert words("Hello, World!") == ["hello", "world"]
    assert token_f1("Hello, world!", "hello world", words) == 1.0
    assert token_f1("Hello, world!", "hello world") < 1.0  # the default counts punctuation tokens
    report = reconstruction_report(["A b."], ["a B"], [1.0])
    assert report["word_f1"] == 1.0 and report["token_f1"] < 1.0
