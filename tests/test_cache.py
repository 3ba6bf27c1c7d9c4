"""Issue 34: the cache is safe in a shared CI cache and in parallel jobs. Each test builds the hostile input:
a cache file another user owns or could write, a forged int8 calibration, a huge or FIFO cache file, a
truncated or NaN embeddings file, two processes adapting the same texts at once, a models folder the user
linked in. Every one is a cache miss (with one warning) or a shared result, never an error or a hang."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from mixaug import cache
from mixaug.errors import MixaugWarning
from mixaug.inversion import calibration, decode_cache
from mixaug.inversion.decode_cache import DecodeCache, decode_cache_path
from mixaug.inversion.invert import DecodeOptions, load_inverter

ROOT = Path(__file__).resolve().parents[1]
OTHER_UID = 12345


@pytest.fixture
def cache_root(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("MIXAUG_CACHE", str(root))
    monkeypatch.delenv("MIXAUG_NO_DECODE_CACHE", raising=False)
    return root


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def ours(seen) -> list[str]:
    return [str(w.message) for w in seen if issubclass(w.category, MixaugWarning)]


# -- the trust rule ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spoil, why",
    [
        (lambda p: os.chown(p, OTHER_UID, -1), "owned by another user, uid 12345"),
        (lambda p: os.chmod(p, 0o664), "writable by group or others"),
        (lambda p: os.chmod(p.parent, 0o777), "decodes is writable by group or others"),
        (lambda p: os.chown(p.parent, OTHER_UID, -1), "decodes is owned by another user"),
    ],
)
def test_a_cache_file_another_user_could_write_is_neither_read_nor_written(cache_root, spoil, why):
    """A forged line (its checksum right: a checksum is no authentication) in a file or folder another user
    owns or may write is never served: one warning, then memory only."""
    path = cache_root / "decodes" / "ckpt-cpu-v3.jsonl"
    cache.make_folder(path.parent)
    DecodeCache(path).add(["k"], ["a decoded text"])
    path.write_bytes(decode_cache._line(path.name, "k", "rm -rf / # forged"))
    spoil(path)
    before = path.read_bytes()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        found = DecodeCache(path)
        found.add(["j"], ["another text"])
        DecodeCache(path)  # a second look in the same process: no second warning
    assert "k" not in found and found.path is None and path.read_bytes() == before
    (message,) = ours(seen)
    assert message.startswith(f"decode cache {path} unusable (") and why in message, message


def test_cache_folders_are_0700_and_files_0600(cache_root, tiny_checkpoint):
    """Created by mixaug for the user alone, whatever the umask; an old file of looser mode is tightened."""
    old = os.umask(0o022)
    try:
        path = decode_cache_path(tiny_checkpoint, "cpu")
        DecodeCache(path).add(["k"], ["text"])
        inverter = load_inverter(tiny_checkpoint, precision="int8")
        inverter.calibration_id()  # measured and kept
        from mixaug.training.train import cached_embeddings

        class Encoder:
            name, normalize, dim = "fake", True, 2

            def encode(self, texts, batch_size=32, on_batch=None):
                return np.ones((len(texts), 2), dtype=np.float32)

        cached_embeddings(Encoder(), ["a", "b"])
    finally:
        os.umask(old)
    folders = [cache_root / kind for kind in ("decodes", "int8", "embeddings")]
    files = [f for folder in folders for f in folder.iterdir()]
    assert len(files) == 3 and mode(cache_root) == 0o700
    assert all(mode(f) == 0o700 for f in folders) and all(mode(f) == 0o600 for f in files), [
        (f, oct(mode(f))) for f in folders + files
    ]
    os.chmod(path, 0o644)  # a file of an older mixaug
    DecodeCache(path).add(["j"], ["more"])
    assert mode(path) == 0o600


# -- item 3: the int8 calibration ------------------------------------------------------------------------


def test_a_forged_calibration_is_measured_again_and_never_shares_decoded_rows(cache_root, tiny_checkpoint):
    """All values 1.0, of the right names and shapes: without this checkpoint's source in its metadata, or in
    a file another user owns, it is measured again; kept by the user with the right source it is used, but
    the decode cache's file is then another, so rows decoded under one calibration never serve the other."""
    from safetensors.torch import save_file

    opts = DecodeOptions(max_new_tokens=8)
    emb = np.random.default_rng(0).normal(size=(4, 384)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    cold = load_inverter(tiny_checkpoint, precision="int8")
    rows, genuine = cold.decode(emb, options=opts), cold.calibration_id()
    file = cold.calibration_cache
    ones = {f"{i}.{k}": torch.ones_like(t) for (i, k), t in calibration.load(file, cold.lm).items()}

    other_source = {**file.source, "checkpoint": "0" * 64}
    for name, meta, spoil in (
        ("no metadata", None, None),
        ("another checkpoint's", other_source, None),
        ("another user's", file.source, lambda p: os.chown(p, OTHER_UID, -1)),
        ("group-writable", file.source, lambda p: os.chmod(p, 0o660)),
    ):
        file.path.unlink()
        save_file(ones, str(file.path), metadata=meta)
        os.chmod(file.path, 0o600)
        if spoil:
            spoil(file.path)
        again = load_inverter(tiny_checkpoint, precision="int8")
        assert again.calibration_id() == genuine and again.decode(emb, options=opts) == rows, name

    file.path.unlink()
    save_file(ones, str(file.path), metadata=file.source)
    os.chmod(file.path, 0o600)
    forged = load_inverter(tiny_checkpoint, precision="int8")
    assert forged.calibration_id() != genuine  # used: the user's own file, made from this checkpoint
    paths = {decode_cache_path(tiny_checkpoint, "cpu", "int8", c) for c in (genuine, forged.calibration_id())}
    assert len(paths) == 2


# -- item 5: the decode cache is bounded -------------------------------------------------------------------


def test_a_huge_sparse_decode_cache_is_not_read_but_started_afresh(cache_root, monkeypatch):
    import tracemalloc

    path = cache.make_folder(cache_root / "decodes") / "ckpt-cpu-v3.jsonl"
    DecodeCache(path).add(["k"], ["kept text"])
    with open(path, "r+b") as fh:
        fh.truncate(decode_cache.MAX_BYTES + 1)  # sparse: costs no disk, would cost all of it in memory
    tracemalloc.start()
    with pytest.warns(MixaugWarning, match="larger than .*started afresh"):
        found = DecodeCache(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 << 20 and "k" not in found and path.stat().st_size == 0 and mode(path) == 0o600
    found.add(["j"], ["new text"])
    assert DecodeCache(path).texts == {"j": "new text"}


def test_a_decode_cache_line_past_its_bound_is_skipped_unread(cache_root, monkeypatch):
    monkeypatch.setattr(decode_cache, "MAX_LINE_BYTES", 200)
    path = cache.make_folder(cache_root / "decodes") / "ckpt-cpu-v3.jsonl"
    DecodeCache(path).add(["a", "long", "b"], ["first", "x" * 1000, "last"])
    assert DecodeCache(path).texts == {"a": "first", "b": "last"}


# -- item 6: the embeddings cache ----------------------------------------------------------------------------


class _Encoder:
    name, normalize, dim = "fake", True, 3

    def __init__(self):
        self.calls = 0

    def encode(self, texts, batch_size=32, on_batch=None):
        self.calls += 1
        return np.full((len(texts), self.dim), 0.5, dtype=np.float32)


def _no_hang(seconds: int):
    def fail(*_):
        raise AssertionError("blocked on the cache file")

    signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)


@pytest.mark.parametrize(
    "spoil",
    [
        "fifo",
        "truncated",
        "nan",
        "wrong shape",
        "too large",
        "pickle",
        "another user's",
        "group-writable",
        "a link",
    ],
)
def test_a_hostile_embeddings_file_is_a_miss_never_an_error_or_a_hang(cache_root, tmp_path, spoil):
    from mixaug.training.train import cached_embeddings

    texts = ["one", "two"]
    encoder = _Encoder()
    good = cached_embeddings(encoder, texts)
    (path,) = (cache_root / "embeddings").iterdir()
    data = path.read_bytes()
    path.unlink()
    if spoil == "fifo":
        os.mkfifo(path, 0o600)
    elif spoil == "truncated":
        path.write_bytes(data[:-5])
    elif spoil == "nan":
        np.save(path, np.full((2, 3), np.nan, dtype=np.float32))
    elif spoil == "wrong shape":
        np.save(path, np.ones((3, 2), dtype=np.float32))
    elif spoil == "too large":
        path.write_bytes(data + b"\0" * 10_000)
    elif spoil == "pickle":
        np.save(path, np.array([{"a": 1}, {"b": 2}], dtype=object), allow_pickle=True)
    elif spoil == "a link":  # to an intact file of the user's: still not read (a link at a cache file)
        (tmp_path / "elsewhere.npy").write_bytes(data)
        path.symlink_to(tmp_path / "elsewhere.npy")
    else:
        path.write_bytes(data)
        os.chmod(path, 0o600)
        if spoil == "another user's":
            os.chown(path, OTHER_UID, -1)
        else:
            os.chmod(path, 0o620)
    _no_hang(30)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            again = cached_embeddings(encoder, texts)
    finally:
        signal.alarm(0)
    assert encoder.calls == 2 and np.array_equal(again, good), spoil  # encoded again
    assert np.array_equal(np.load(path), good) and not path.is_symlink() and mode(path) == 0o600  # replaced
    assert cached_embeddings(encoder, texts).shape == (2, 3) and encoder.calls == 2  # and read from now on


# -- item 7: two runs adapting the same texts at once ---------------------------------------------------------

_ADAPT = """
import json, sys
from mixaug.training.train import adapt
out = adapt(json.loads(sys.argv[1]), sys.argv[2], steps=2, batch_size=4, seed=int(sys.argv[3]), progress=False)
print("RESULT", out)
"""


def test_two_processes_adapting_the_same_texts_both_get_one_finished_checkpoint(cache_root, tiny_checkpoint):
    """Two real processes at once: neither deletes the other's folder; both return the same finished, private
    checkpoint; an unrelated run's temp folder beside it is left alone; no optimizer state is kept."""
    from mixaug.inversion.checkpoint import validate_checkpoint

    texts = [f"sentence number {i} about the weather today" for i in range(12)]
    stranger = cache.make_folder(cache_root / "adapted") / ".abc.xyz.building"
    stranger.mkdir()
    (stranger / "train_log.jsonl").write_text("another run in progress\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MIXAUG_CACHE": str(cache_root)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _ADAPT, json.dumps(texts), str(tiny_checkpoint), "0"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in results]
    outs = {line.split(" ", 1)[1] for out, _ in results for line in out.splitlines() if line.startswith("RESULT")}
    assert len(outs) == 1
    folder = Path(outs.pop())
    entry = folder.parent
    assert validate_checkpoint(folder).training["config"]["out"] == str(entry)  # not the temp folder it was built in
    assert (entry / "done").is_file() and not (entry / "state.safetensors").exists()
    assert all(mode(p) == (0o700 if p.is_dir() else 0o600) for p in [entry, *entry.rglob("*")])
    assert sorted(p.name for p in entry.parent.iterdir()) == sorted([entry.name, stranger.name])
    assert (stranger / "train_log.jsonl").read_text() == "another run in progress\n"


def test_an_adapted_checkpoint_another_user_could_change_is_adapted_again(cache_root, tiny_checkpoint):
    from mixaug.training.train import adapt

    texts = [f"a short line {i}" for i in range(10)]
    first = adapt(texts, tiny_checkpoint, steps=2, batch_size=4, progress=False)
    os.chown(first / "adaptor.safetensors", OTHER_UID, -1)
    logs = []
    with pytest.warns(MixaugWarning, match="adapted checkpoint .* owned by another user"):
        again = adapt(texts, tiny_checkpoint, steps=2, batch_size=4, progress=False, log=logs.append)
    assert again == first and not any("reusing" in m for m in logs)
    assert os.stat(again / "adaptor.safetensors").st_uid == os.getuid()


# -- item 10: a models folder the user linked in ------------------------------------------------------------


def test_a_models_folder_the_user_linked_in_is_read_and_never_written(cache_root, tmp_path, monkeypatch):
    """lm/ is the user's link to a folder on a bigger disk: a converted LM there is found through it; one a
    link by another user leads to is not; and a new conversion is never written through the link."""
    import transformers

    from mixaug.inversion import models

    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF not really")
    name = f"model-{models._file_sha256(gguf)[:16]}"
    bigger = tmp_path / "bigger-disk" / "lm"
    (bigger / name).mkdir(parents=True, mode=0o700)
    (bigger / name / models._SOURCE_FILE).write_text("{}")
    cache.make_folder(cache_root)
    (cache_root / "lm").symlink_to(bigger)
    assert models._convert_gguf(gguf) == cache_root / "lm" / name  # found through the link, not converted

    def converting(*args, **kwargs):
        raise RuntimeError("converting")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", converting)
    os.lchown(cache_root / "lm", OTHER_UID, -1)  # now a link another user made
    with pytest.warns(MixaugWarning) as seen, pytest.raises(RuntimeError, match="converting"):
        models._convert_gguf(gguf)
    assert any("symbolic link another user made" in m for m in ours(seen)), ours(seen)
    assert sorted(os.listdir(bigger)) == [name]  # nothing written through the link


def test_a_task_model_another_user_could_change_is_fitted_again(cache_root, tiny_checkpoint, monkeypatch):
    from mixaug.stacks import load_stack
    from mixaug.training import task

    encoder = load_stack(tiny_checkpoint, "cpu").encoder
    real, fits = task.fit, []
    monkeypatch.setattr(task, "fit", lambda *a, **k: fits.append(1) or real(*a, **k))
    texts, labels = ["good film", "bad film", "fine film"], ["pos", "neg", "pos"]
    folder = task.fit_cached(encoder, texts, labels, steps=1)
    assert task.fit_cached(encoder, texts, labels, steps=1) == folder and len(fits) == 1  # reused
    assert all(mode(p) == (0o700 if p.is_dir() else 0o600) for p in [folder, *folder.rglob("*")])
    (folder / "task.json").write_text(json.dumps({"classes": ["forged"]}))
    os.chmod(folder / "task.json", 0o666)
    with pytest.warns(MixaugWarning, match="task model cache .*writable by group or others"):
        assert task.fit_cached(encoder, texts, labels, steps=1) == folder
    assert len(fits) == 2 and json.loads((folder / "task.json").read_text())["classes"] == ["pos", "neg"]


def test_a_conversion_is_kept_private_in_the_cache_and_never_written_through_the_users_link(
    cache_root, tmp_path, monkeypatch
):
    """The GGUF conversion (faked: no real model) lands in lm/ as a private folder; where lm/ is the user's
    link, it is made in a temporary folder for this run instead, with one warning, and the link's folder is
    left as it was."""
    import types

    import transformers

    from mixaug.inversion import models

    class Tokenizer:
        def save_pretrained(self, folder):
            (Path(folder) / "tokenizer.json").write_text("{}")

    class Model(torch.nn.Linear):
        def __init__(self):
            super().__init__(2, 2)
            self.config, self.hf_quantizer = types.SimpleNamespace(quantization_config=1), 1

        def save_pretrained(self, folder, safe_serialization=True):
            (Path(folder) / "model.safetensors").write_bytes(b"weights")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: Tokenizer())
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", lambda *a, **k: Model())
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF not really")
    kept = models._convert_gguf(gguf)
    assert kept.parent == cache_root / "lm" and (kept / models._SOURCE_FILE).is_file()
    assert all(mode(p) == (0o700 if p.is_dir() else 0o600) for p in [cache_root / "lm", kept, *kept.rglob("*")])

    os.rename(cache_root / "lm", tmp_path / "bigger")
    (tmp_path / "bigger" / kept.name / models._SOURCE_FILE).unlink()  # unfinished there: a conversion is needed
    (cache_root / "lm").symlink_to(tmp_path / "bigger")
    before = sorted(p.name for p in (tmp_path / "bigger").rglob("*"))
    with pytest.warns(MixaugWarning, match=r"lm/model-\w+ not kept in the cache .*symbolic link.*for this run only"):
        scratch = models._convert_gguf(gguf)
    assert cache_root not in scratch.parents and (scratch / models._SOURCE_FILE).is_file()
    assert sorted(p.name for p in (tmp_path / "bigger").rglob("*")) == before


def test_a_folder_an_older_mixaug_made_under_the_umask_is_made_private_again(tmp_path, monkeypatch):
    from mixaug.cache import make_folder, why_untrusted

    monkeypatch.setenv("MIXAUG_CACHE", str(tmp_path / "cache"))
    old = tmp_path / "cache" / "decodes"
    old.mkdir(parents=True)
    os.chmod(old, 0o775)  # umask 002, as older releases made it
    (old / "x.jsonl").write_bytes(b"")
    os.chmod(old / "x.jsonl", 0o600)
    assert "writable by group or others" in why_untrusted(old / "x.jsonl")
    make_folder(old)
    assert stat.S_IMODE(old.stat().st_mode) == 0o700 and why_untrusted(old / "x.jsonl") is None


def test_a_folder_entry_under_the_users_link_is_built_for_the_run_not_refused(tmp_path, monkeypatch):
    from mixaug.cache import build_entry
    from mixaug.errors import MixaugWarning

    monkeypatch.setenv("MIXAUG_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir(mode=0o700)
    (tmp_path / "bigger").mkdir(mode=0o700)
    (tmp_path / "cache" / "adapted").symlink_to(tmp_path / "bigger")  # adapted/ kept on a bigger disk

    def build(folder):
        (folder / "done").write_text("ok")

    with pytest.warns(MixaugWarning, match=r"adapted/abc not kept in the cache .*for this run only"):
        got = build_entry(tmp_path / "cache" / "adapted" / "abc", build, lambda f: (f / "done").is_file(), wait=1)
    assert (got / "done").read_text() == "ok" and list((tmp_path / "bigger").iterdir()) == []
