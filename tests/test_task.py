"""The task model (mixaug/task.py) and `augment(task_model="finetune")`: stage 2 in full on a tiny stack."""

import json

import numpy as np
import pandas as pd
import pytest

from mixaug.errors import MixaugError


@pytest.fixture
def encoder(tiny_checkpoint):
    from mixaug.stacks import load_stack

    return load_stack(tiny_checkpoint, "cpu").encoder


def test_fit_trains_exactly_the_steps_and_predicts_known_classes(encoder, sample_rows):
    import torch

    from mixaug.training.task import Row, fit

    rows = [Row(r["text"], r["text"], 1.0, r["label"], r["label"]) for r in sample_rows]
    before = [p.detach().clone() for p in encoder.model.parameters()]
    model = fit(encoder.model, rows, seed=0, steps=3)
    assert all(torch.equal(a, b) for a, b in zip(before, encoder.model.parameters()))  # the base is untouched
    assert any(not torch.equal(a, b) for a, b in zip(before, model.model.parameters()))  # the copy moved
    assert model.classes == list(dict.fromkeys(r["label"] for r in sample_rows))
    preds = model.predict([r["text"] for r in sample_rows[:5]])
    assert set(preds) <= set(model.classes)
    proba = model.proba(encoder.encode([r["text"] for r in sample_rows[:4]]))
    assert proba.shape == (4, 3) and np.allclose(proba.sum(1), 1)
    again = fit(encoder.model, rows, seed=0, steps=3)  # seeded: the same model
    assert torch.equal(again.head.weight, model.head.weight)


def test_augment_with_a_task_model(tmp_path, sample_rows, tiny_checkpoint, monkeypatch):
    from mixaug.pipeline import augment
    from mixaug.stacks import checkpoint_path

    monkeypatch.setenv("MIXAUG_CACHE", str(tmp_path / "cache"))
    df = pd.DataFrame(sample_rows)
    opts = dict(checkpoint=str(tiny_checkpoint), num_augmented=6, max_new_tokens=6, only_new=True, seed=3)
    out = augment(df, task_model="finetune", task_steps=2, adapt_steps=2, **opts)
    stats = out.attrs["mixaug_stats"]
    adapted = checkpoint_path(stats["checkpoint"])
    manifest = json.loads((adapted / "manifest.json").read_text())
    task_dirs = list((tmp_path / "cache" / "task").iterdir())
    assert len(task_dirs) == 1 and manifest["encoder"] == str(task_dirs[0] / "encoder")  # decoded in its space
    meta = json.loads((task_dirs[0] / "task.json").read_text())
    assert meta["steps"] == 2 and meta["classes"] == list(dict.fromkeys(df["label"]))
    assert (task_dirs[0] / "head.safetensors").is_file() and (task_dirs[0] / "encoder" / "model.safetensors").is_file()
    assert len(out) == stats["new_rows"] and set(out["label"]) <= set(df["label"])
    again = augment(df, task_model="finetune", task_steps=2, adapt_steps=2, **opts)  # from the cache
    assert again.drop(columns=[]).equals(out)
    assert len(list((tmp_path / "cache" / "task").iterdir())) == 1


def test_task_model_needs_labels(sample_rows, tiny_checkpoint):
    from mixaug.pipeline import augment

    df = pd.DataFrame(sample_rows).drop(columns=["label"])
    with pytest.raises(MixaugError, match="needs labelled rows"):
        augment(df, task_model="finetune", checkpoint=str(tiny_checkpoint))
    with pytest.raises(MixaugError, match="--task-model must be one of none, finetune"):
        augment(df, task_model="lora", checkpoint=str(tiny_checkpoint))
