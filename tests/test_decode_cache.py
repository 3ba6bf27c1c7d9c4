"""The decode cache is an optimisation: damaged lines are skipped, and an unusable file or folder costs one
MixaugWarning and a memory-only cache, never the run."""

from __future__ import annotations

import errno
import json
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mixaug.errors import MixaugWarning
from mixaug.inversion import decode_cache
from mixaug.inversion.decode_cache import DecodeCache, decode_cache_path
from mixaug.inversion.invert import DecodeOptions

TEXTS = [
    "plain",
    "line\u2028separator",
    "next\u0085line",
    "para\u2029graph",
    "cr\rlf\r\n",
    "naïve 日本 🙂",
    "",
    '"q" \\ [',
]


def keys(n: int, offset: int = 0) -> list[str]:
    rng = np.random.default_rng(0)
    targets = rng.normal(size=(n + offset, 8)).astype(np.float32)
    return [DecodeCache.key(t, i, DecodeOptions(max_new_tokens=4)) for i, t in enumerate(targets)][offset:]


def filled(path: Path, texts: list[str] = TEXTS) -> dict[str, str]:
    """Write texts through a cache (two batches) and return what it holds."""
    cache = DecodeCache(path)
    ks = keys(len(texts))
    half = len(texts) // 2
    cache.add(ks[:half], texts[:half])
    cache.add(ks[half:], texts[half:])
    return dict(zip(ks, texts))


def test_texts_round_trip_through_the_file(tmp_path):
    path = tmp_path / "c.jsonl"
    want = filled(path)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        got = DecodeCache(path)
    assert got.texts == want and not seen
    assert all(k in got and got[k] == t for k, t in want.items())
    assert path.read_bytes().count(b"\n") == len(want)  # U+2028 / U+0085 stay inside their line


def test_damaged_lines_are_skipped_and_good_ones_served(tmp_path):
    path = tmp_path / "c.jsonl"
    want = filled(path)
    lines = path.read_bytes().split(b"\n")[:-1]
    bad_key, other_key = keys(2, offset=len(want))
    V = decode_cache.VERSION
    forged = json.loads(lines[0].decode())
    forged[2] = "something else"  # text changed, checksum kept
    damaged = [
        lines[0],
        b"\xff\xfe" + lines[1],  # not UTF-8
        lines[1][: len(lines[1]) // 2],  # cut short
        json.dumps(forged).encode(),
        json.dumps([V, bad_key, "x", "00000000"]).encode(),  # bad checksum
        json.dumps([bad_key, "x"]).encode(),  # old layout
        json.dumps([V, bad_key, 3, "x"]).encode(),  # wrong types
        json.dumps({"key": bad_key}).encode(),  # wrong shape
        json.dumps([float(V), other_key, "x", decode_cache._check(path.name, other_key, "x")]).encode(),  # version type
        json.dumps([V, other_key, "x", decode_cache._check("another-file.jsonl", other_key, "x")]).encode(),  # moved
        b"[" * 100_000,  # nested too deep for json
        b"\x00\x01garbage",
        b"",
        *lines[1:],
    ]
    path.write_bytes(b"\n".join(damaged) + b"\n" + lines[2][:7])  # and a last line without its newline
    cache = DecodeCache(path)
    assert cache.texts == want
    assert bad_key not in cache and other_key not in cache


def test_a_byte_flipped_inside_a_line_drops_only_that_line(tmp_path):
    path = tmp_path / "c.jsonl"
    want = filled(path, ["alpha beta gamma", "delta epsilon"])
    data = bytearray(path.read_bytes())
    data[data.index(b"beta")] = ord("B")  # still valid UTF-8 and JSON: only the checksum notices
    path.write_bytes(bytes(data))
    assert DecodeCache(path).texts == {k: t for k, t in want.items() if t == "delta epsilon"}


def test_append_after_a_cut_short_line_starts_a_new_line(tmp_path):
    path = tmp_path / "c.jsonl"
    want = filled(path)
    path.write_bytes(path.read_bytes() + b'[2, "half a li')
    (k,) = keys(1, offset=len(want))
    DecodeCache(path).add([k], ["after"])
    assert DecodeCache(path).texts == {**want, k: "after"}


def assert_one_warning_then_memory_only(cache: DecodeCache, seen: list, what: str) -> None:
    ours = [w for w in seen if issubclass(w.category, MixaugWarning)]
    assert len(ours) == 1, [str(w.message) for w in seen]
    msg = str(ours[0].message)
    assert msg.startswith("decode cache ") and "unusable" in msg and "continuing without it" in msg and what in msg
    assert cache.path is None
    ks = keys(3, offset=50)
    with warnings.catch_warnings(record=True) as more:
        warnings.simplefilter("always")
        cache.add(ks, ["a", "b", "c"])
        cache.add(ks[:1], ["a"])
        cache.clear()
        cache.add(ks[1:], ["b", "c"])
    assert not more
    assert ks[1] in cache and cache[ks[2]] == "c" and ks[0] not in cache


def test_read_only_cache_file(tmp_path):
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        pytest.skip("root writes through chmod 0444 (the monkeypatched tests below cover this case)")
    path = tmp_path / "c.jsonl"
    want = filled(path)
    path.chmod(0o444)
    cache = DecodeCache(path)
    assert cache.texts == want  # still readable
    with pytest.warns(MixaugWarning) as seen:
        cache.add(keys(1, offset=40), ["x"])
    assert_one_warning_then_memory_only(cache, seen.list, "Permission denied")


@pytest.mark.parametrize(
    "call, code", [("open", errno.EROFS), ("open", errno.EACCES), ("write", errno.ENOSPC), ("mkdir", errno.EROFS)]
)
def test_failing_writes_leave_the_cache_in_memory(tmp_path, monkeypatch, call, code):
    path = tmp_path / "sub" / "c.jsonl"
    want = filled(path)
    cache = DecodeCache(path)

    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    with monkeypatch.context() as m:
        if call == "mkdir":
            m.setattr(Path, "mkdir", fail)
        else:
            m.setattr(os, call, fail)
        with pytest.warns(MixaugWarning) as seen:
            cache.add(keys(1, offset=40), ["x"])
        assert_one_warning_then_memory_only(cache, seen.list, os.strerror(code))
    assert DecodeCache(path).texts == want  # the file is as it was


def test_a_write_cut_short_by_a_full_disk_spoils_only_its_own_lines(tmp_path, monkeypatch):
    path = tmp_path / "c.jsonl"
    want = filled(path)
    real_write = os.write
    calls = []

    def half_then_full(fd, data):
        calls.append(1)
        if len(calls) == 1:
            return real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    cache = DecodeCache(path)
    lost = keys(4, offset=20)
    with monkeypatch.context() as m:
        m.setattr(os, "write", half_then_full)
        with pytest.warns(MixaugWarning, match="No space left"):
            cache.add(lost, ["one", "two", "three", "four"])
    assert not path.read_bytes().endswith(b"\n")
    (k,) = keys(1, offset=40)
    DecodeCache(path).add([k], ["later"])  # a later process appends after a newline
    got = DecodeCache(path).texts
    assert {key: got[key] for key in want} == want and got[k] == "later"
    assert set(got) - set(want) - {k} <= set(lost[:2])  # at most the whole lines that made it to disk


def test_cache_path_that_is_a_folder(tmp_path):
    path = tmp_path / "c.jsonl"
    path.mkdir()
    with pytest.warns(MixaugWarning) as seen:
        cache = DecodeCache(path)
    assert_one_warning_then_memory_only(cache, seen.list, str(path))
    assert path.is_dir()


def test_cache_dir_that_is_a_regular_file(tmp_path):
    root = tmp_path / "cache"
    root.write_text("not a folder")
    with pytest.warns(MixaugWarning) as seen:
        cache = DecodeCache(root / "decodes" / "c.jsonl")
    assert_one_warning_then_memory_only(cache, seen.list, "Not a directory")


def test_cache_folder_replaced_by_a_file_before_the_first_write(tmp_path):
    folder = tmp_path / "decodes"
    cache = DecodeCache(folder / "c.jsonl")  # nothing there yet: no warning
    folder.write_text("not a folder")
    with pytest.warns(MixaugWarning) as seen:
        cache.add(keys(1), ["x"])
    assert_one_warning_then_memory_only(cache, seen.list, "decodes")
    assert folder.read_text() == "not a folder"


def test_cache_path_names_a_versioned_file(tmp_path, monkeypatch):
    monkeypatch.setenv("MIXAUG_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MIXAUG_NO_DECODE_CACHE", raising=False)
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "manifest.json").write_text("{}")
    path = decode_cache_path(ckpt, "cpu")
    assert path.parent == tmp_path / "cache" / "decodes" and path.name.endswith(f"-cpu-v{decode_cache.VERSION}.jsonl")
    (ckpt / "adaptor.safetensors").write_bytes(b"weights")
    assert decode_cache_path(ckpt, "cpu") != path
    assert decode_cache_path(ckpt, "cpu", "int8") != decode_cache_path(ckpt, "cpu", "fp32")  # other texts
    calibrated = [decode_cache_path(ckpt, "cpu", "int8", c * 64) for c in "ab"]  # two calibrations' digests
    assert calibrated[0] != calibrated[1] and "-caaaaaaaaaaaaaaaa-" in calibrated[0].name
    monkeypatch.setenv("MIXAUG_NO_DECODE_CACHE", "1")
    assert decode_cache_path(ckpt, "cpu") is None


def test_unreadable_checkpoint_gives_no_file_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MIXAUG_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MIXAUG_NO_DECODE_CACHE", raising=False)
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "manifest.json").write_text("{}")

    def denied(self):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))

    monkeypatch.setattr(Path, "read_bytes", denied)
    with pytest.warns(MixaugWarning) as seen:
        assert decode_cache_path(ckpt, "cpu") is None
    assert len(seen) == 1 and "Permission denied" in str(seen[0].message) and str(ckpt) in str(seen[0].message)


def test_augment_with_a_garbage_cache_file_matches_a_clean_run(tmp_path, monkeypatch, tiny_checkpoint, sample_rows):
    from mixaug import pipeline, stacks
    from mixaug.inversion.invert import Inverter

    monkeypatch.setenv("MIXAUG_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MIXAUG_NO_DECODE_CACHE", raising=False)
    monkeypatch.setattr(stacks, "_STACKS", {})  # a fresh stack picks up the new cache path; restored after
    df = pd.DataFrame(sample_rows)
    kwargs = dict(checkpoint=str(tiny_checkpoint), device="cpu", max_new_tokens=4, num_augmented=4)
    clean = pipeline.augment(df, **kwargs)
    (stack,) = stacks._STACKS.values()
    path = stack.decoded.path
    assert path is not None and path.parent == tmp_path / "cache" / "decodes"
    decoded = dict(stack.decoded.texts)
    assert DecodeCache(path).texts == decoded

    # every key again with a wrong text and stale checksum, amid random bytes and newlines
    rng = np.random.default_rng(0)
    junk = [rng.bytes(40) for _ in range(20)]
    forged = [json.dumps([2, k, "forged", "0badc0de"]).encode() for k in decoded]
    path.write_bytes(b"\n".join(junk[:10] + forged + junk[10:]) + b"\xff")

    real = Inverter.decode
    seen = []

    def counting(self, emb, *args, **kw):
        seen.append(len(emb))
        return real(self, emb, *args, **kw)

    monkeypatch.setattr(Inverter, "decode", counting)
    stack.decoded = DecodeCache(path)  # what a new process would read
    assert not stack.decoded.texts
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        again = pipeline.augment(df, **kwargs)
    assert not [w for w in warned if issubclass(w.category, MixaugWarning)]
    assert sum(seen) == len(decoded)  # nothing forged was served: every row decoded afresh
    pd.testing.assert_frame_equal(again, clean)
    assert DecodeCache(path).texts == decoded  # the garbage did not spoil the lines appended after it
