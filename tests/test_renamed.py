"""The configs' renamed fields (issue 35): `batch_size` was decode slots in AugmentConfig and EvalConfig and the
optimizer's batch in TrainConfig; now `decode_batch` and `train_batch`. The CLI's --batch-size is unchanged,
the old keyword still works in code (with a DeprecationWarning), and what old runs saved still reads."""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, fields
from pathlib import Path

import pandas as pd
import pytest

import mixaug
from mixaug import AugmentConfig, MixupSampler
from mixaug.config import TrainConfig
from mixaug.errors import MixaugError
from mixaug.evaluation.config import EvalConfig

SHIPPED = Path(mixaug.__file__).parent / "checkpoints" / "default" / "manifest.json"


def test_the_fields_are_named_for_what_they_mean():
    assert "decode_batch" in {f.name for f in fields(AugmentConfig)} & {f.name for f in fields(EvalConfig)}
    assert "train_batch" in {f.name for f in fields(TrainConfig)}
    for cls in (AugmentConfig, TrainConfig, EvalConfig):
        assert "batch_size" not in {f.name for f in fields(cls)} and "RENAMED" not in {f.name for f in fields(cls)}
    assert "batch_size" not in MixupSampler().get_params() and MixupSampler().get_params()["decode_batch"] == 64


@pytest.mark.parametrize(
    "make,new",
    [
        (lambda **kw: AugmentConfig(**kw), "decode_batch"),
        (lambda **kw: TrainConfig(out="run", **kw), "train_batch"),
        (lambda **kw: EvalConfig(train="a", test="b", out="c", **kw), "decode_batch"),
    ],
)
def test_a_config_still_takes_the_old_keyword(make, new):
    with pytest.warns(DeprecationWarning, match=f"batch_size is now {new}") as caught:
        cfg = make(batch_size=8)
    assert getattr(cfg, new) == 8 and "batch_size" not in asdict(cfg)
    assert caught[0].filename == __file__  # the warning names the caller's line
    with pytest.raises(MixaugError, match=f"batch_size is the old name of {new}: give {new} alone"):
        make(batch_size=8, **{new: 8})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert getattr(make(**{new: 8}), new) == 8  # the new name: no warning


def test_augment_still_takes_batch_size_as_an_override():
    """mixaug.augment(df, batch_size=...) (and preview, augment_file: the same run_config) reads it as
    decode_batch, checked as --batch-size, with the warning at the caller's line."""
    df = pd.DataFrame({"text": ["one", "two"]})
    with pytest.warns(DeprecationWarning, match="decode_batch") as caught:
        with pytest.raises(MixaugError, match="--batch-size must be >= 1"):
            mixaug.augment(df, batch_size=0)
    assert caught[0].filename == __file__
    with pytest.raises(MixaugError, match="give decode_batch alone"):
        mixaug.augment(df, batch_size=4, decode_batch=4)


def test_the_sampler_names_the_new_keyword():
    """MixupSampler came after the rename: batch_size is refused at fit_resample (as any unknown keyword,
    get_params/clone keep it), naming decode_batch."""
    with pytest.raises(MixaugError, match=r"no parameter 'batch_size' \(now decode_batch\)"):
        MixupSampler(batch_size=4).fit_resample(["a b", "c d", "e f"], [0, 0, 1])


def test_the_shipped_checkpoints_training_config_reads_as_a_train_config():
    """The shipped manifest records its run with the old key (batch_size: 16); its file stays as shipped."""
    from mixaug.training.train import saved_config

    recorded = json.loads(SHIPPED.read_text())["training"]["config"]
    assert recorded["batch_size"] == 16 and "train_batch" not in recorded
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a saved run reads silently: the user did not write it
        assert saved_config(SHIPPED.parent, {"config": recorded}).train_batch == 16


def test_an_eval_journal_from_before_the_rename_keeps_its_key(tmp_path, monkeypatch):
    """The journal's key hashes the settings less `out` and the batch size (which never changes a result), so
    the rename leaves it as it was: an eval interrupted before it resumes from its journal. The hash below was
    computed by mixaug before the rename (2e09129) for this config; a change to EvalConfig's fields or
    defaults changes it rightly (a journal of other settings starts afresh): pin it again then."""
    from mixaug.evaluation.journal import _journal_key

    (tmp_path / "train.csv").write_text("text,label\na,x\n")
    (tmp_path / "test.csv").write_text("text,label\nb,y\n")
    monkeypatch.setattr(mixaug, "__version__", "0.1.0")
    monkeypatch.chdir(tmp_path)
    before = "a42643fe1d3f17244ec43783de3ba998f4135ff23c46231dc870a334e443a91e"  # EvalConfig(..., batch_size=8)
    assert _journal_key(EvalConfig(train="train.csv", test="test.csv", out="o", decode_batch=8)) == before
    assert _journal_key(EvalConfig(train="train.csv", test="test.csv", out="o", decode_batch=1)) == before
