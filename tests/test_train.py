import json

import pytest

from mixaug.errors import MixaugError
from mixaug.training.train import TrainConfig, read_corpus, train

SENTENCES = [
    "The cat sat on the mat.",
    "A dog barked at the mailman.",
    "Rain is expected tomorrow morning.",
    "She bought fresh bread at the bakery.",
    "The train leaves at noon.",
    "He plays guitar in a band.",
    "Prices rose sharply last quarter.",
    "The museum opens at nine.",
    "We walked along the river.",
    "The soup needs more salt.",
    "Kids love the new playground.",
    "The meeting was moved to Friday.",
] * 2


def _cfg(tmp_path, lm_dir, **kw):
    base = dict(
        out=str(tmp_path / "run"),
        lm=str(lm_dir),
        num_soft_tokens=2,
        hidden_dim=32,
        lora_r=2,
        lr=1e-2,
        warmup_steps=1,
        train_batch=4,
        eval_every=1000,
        eval_size=4,
        save_every=5,
        log_every=1,
    )
    base.update(kw)
    return TrainConfig(**base)


def _losses(run):
    return [r["loss"] for r in map(json.loads, (run / "train_log.jsonl").read_text().splitlines()) if "loss" in r]


def test_loss_falls_and_resume_continues(tmp_path, tiny_lm_dir):
    texts = sorted(set(SENTENCES))
    ck = train(_cfg(tmp_path, tiny_lm_dir, max_steps=20), texts=texts, progress=False, log=lambda m: None)
    run = tmp_path / "run"
    losses = _losses(run)
    assert len(losses) == 20
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 1.0
    state = json.loads((run / "state.json").read_text())
    assert state["step"] == 20
    manifest = json.loads((ck / "manifest.json").read_text())
    assert manifest["training"]["steps"] == 20 and "cosine" in manifest["metrics"]
    with pytest.raises(MixaugError, match="--resume"):
        train(_cfg(tmp_path, tiny_lm_dir, max_steps=25), texts=texts, progress=False, log=lambda m: None)
    train(_cfg(tmp_path, tiny_lm_dir, max_steps=25, resume=True), texts=texts, progress=False, log=lambda m: None)
    resumed = _losses(run)
    assert len(resumed) == 25 and resumed[:20] == losses
    assert json.loads((run / "state.json").read_text())["step"] == 25
    assert resumed[20] < losses[0]  # resumed from trained weights, not from scratch


def test_resume_matches_uninterrupted_run(tmp_path, tiny_lm_dir):
    texts = sorted(set(SENTENCES))
    train(_cfg(tmp_path / "a", tiny_lm_dir, max_steps=6, save_every=3), texts=texts, progress=False, log=lambda m: None)
    train(_cfg(tmp_path / "b", tiny_lm_dir, max_steps=3, save_every=3), texts=texts, progress=False, log=lambda m: None)
    train(
        _cfg(tmp_path / "b", tiny_lm_dir, max_steps=6, save_every=3, resume=True),
        texts=texts,
        progress=False,
        log=lambda m: None,
    )
    a, b = _losses(tmp_path / "a" / "run"), _losses(tmp_path / "b" / "run")
    assert len(a) == len(b) == 6
    assert all(abs(x - y) < 1e-3 for x, y in zip(a, b))


def test_read_corpus(tmp_path):
    p = tmp_path / "c.txt"
    p.write_text("One two three four. Five six seven eight!\nshort\nOne two three four. Five six seven eight!\n")
    assert read_corpus([str(p)], min_words=2) == ["One two three four. Five six seven eight!"]
    assert read_corpus([str(p)], split_sentences=True, min_words=2) == ["One two three four.", "Five six seven eight!"]
    with pytest.raises(MixaugError, match="no sentences"):
        read_corpus([str(p)], min_words=50)


def test_adapt_refines_and_is_cached(tmp_path, tiny_checkpoint, monkeypatch):
    from mixaug.training.train import adapt

    monkeypatch.setenv("MIXAUG_CACHE", str(tmp_path / "cache"))
    texts = sorted(set(SENTENCES))
    logs = []
    first = adapt(texts, tiny_checkpoint, steps=4, batch_size=4, lr=1e-2, progress=False, log=logs.append)
    manifest = json.loads((first / "manifest.json").read_text())
    assert manifest["training"]["stage"] == "adapt" and manifest["training"]["steps"] == 4
    assert any("before adapting" in m for m in logs)
    again = adapt(texts, tiny_checkpoint, steps=4, batch_size=4, lr=1e-2, progress=False, log=logs.append)
    assert again == first and "reusing" in logs[-1]


def test_cli_resume_keeps_the_runs_settings_unless_given(tmp_path, tiny_lm_dir):
    """`--resume` without --lr/--noise-std continues with the run's own values, not the CLI defaults."""
    from typer.testing import CliRunner

    from mixaug.cli import app

    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(sorted(set(SENTENCES))) + "\n")
    run = tmp_path / "run"
    common = ["--out", str(run), "--save-every", "2", "--eval-every", "1000", "-q"]

    def cli(*args):
        result = CliRunner().invoke(app, ["train", *common, *map(str, args)])
        assert result.exit_code == 0, result.output
        return json.loads((run / "state.json").read_text())

    state = cli(
        "--corpus",
        corpus,
        "--lm",
        tiny_lm_dir,
        "--num-soft-tokens",
        "2",
        "--hidden-dim",
        "32",
        "--lora-r",
        "2",
        "--batch-size",
        "4",
        "--eval-size",
        "4",
        "--lr",
        "5e-3",
        "--noise-std",
        "0.05",
        "--max-steps",
        "2",
    )
    assert state["step"] == 2 and state["config"]["lr"] == 5e-3
    state = cli("--resume", "--max-steps", "4")
    assert state["step"] == 4
    assert (state["config"]["lr"], state["config"]["noise_std"], state["config"]["mix_prob"]) == (5e-3, 0.05, 0.0)
    state = cli("--resume", "--max-steps", "5", "--lr", "1e-3", "--noise-std", "0", "--mix-prob", "0.5")
    assert (state["step"], state["config"]["lr"], state["config"]["noise_std"], state["config"]["mix_prob"]) == (
        5,
        1e-3,
        0.0,
        0.5,
    )
    assert state["config"]["out"] == str(run)
    (run / "state.json").write_text("{not json")
    result = CliRunner().invoke(app, ["train", *common, "--resume", "--max-steps", "6"])
    assert result.exit_code != 0 and "state.json is not valid JSON" in result.output


def test_decay_from_anneals_lr_to_zero_and_survives_resume(tmp_path, tiny_lm_dir):
    texts = sorted(set(SENTENCES))
    train(_cfg(tmp_path / "a", tiny_lm_dir, max_steps=6, decay_from=2), texts=texts, progress=False, log=lambda m: None)
    train(_cfg(tmp_path / "b", tiny_lm_dir, max_steps=3), texts=texts, progress=False, log=lambda m: None)
    train(
        _cfg(tmp_path / "b", tiny_lm_dir, max_steps=6, decay_from=2, resume=True),
        texts=texts,
        progress=False,
        log=lambda m: None,
    )

    def lrs(run):
        return [r["lr"] for r in map(json.loads, (run / "train_log.jsonl").read_text().splitlines()) if "lr" in r]

    assert lrs(tmp_path / "a" / "run") == pytest.approx([1e-2, 1e-2, 1e-2, 7.5e-3, 5e-3, 2.5e-3])
    assert lrs(tmp_path / "b" / "run") == pytest.approx([1e-2, 1e-2, 1e-2, 7.5e-3, 5e-3, 2.5e-3])
    with pytest.raises(MixaugError, match="--decay-from needs --max-steps"):
        train(
            _cfg(tmp_path / "c", tiny_lm_dir, max_minutes=1, decay_from=2),
            texts=texts,
            progress=False,
            log=lambda m: None,
        )
