"""Streamed files (mixaug/chunked.py, mixaug/streamed.py): read and written in chunks of rows, with the
whole-file path's values, errors and bytes."""

import gzip
import json

import pytest
from typer.testing import CliRunner

from mixaug import pipeline, stacks
from mixaug.cli import app
from mixaug.data.chunked import ChunkedReader, ChunkedWriter
from mixaug.data.read import read_dataset
from mixaug.data.serialise import serialise
from mixaug.data.write import write_dataset
from mixaug.errors import MixaugError

TRICKY = {
    # key order changes, keys absent or late, big ints, exact floats, nested values, U+2028 inside text, CRLF
    "a.jsonl": (
        '\ufeff{"text": "one", "label": "x", "n": 12345678901234567890}\n'
        '{"label": "y", "text": "two\u2028lines", "f": 1.5e-12}\r\n'
        "\n"
        '{"text": "three", "label": "x", "extra": {"k": [1, 2.0, null]}}\n'
        '{"text": "", "label": "y"}\n'
        '{"text": "five", "label": "y", "n": null}'
    ),
    # quoted line breaks, a lone CR line end, "" cells, CRLF
    "b.csv": 'text,label,note\r\n"multi\nline",x,"a ""q"""\rplain,y,\n"",x,007\r\nlast,y,NA\n',
    "c.tsv": 'text\tlabel\tnote\r\nfirst\tx\t"quoted"\nsecond\ty\t\n\nthird\tx\tNA\n',
}


def _file(tmp_path, name: str, gz: bool = False):
    data = TRICKY[name].encode()
    path = tmp_path / (name + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    return path


@pytest.mark.parametrize("name", sorted(TRICKY))
@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("chunk_rows", [1, 2, 100])
def test_chunks_read_and_write_the_whole_file_bytes(tmp_path, name, gz, chunk_rows):
    path = _file(tmp_path, name, gz)
    whole = read_dataset(path)
    reader = ChunkedReader(path, chunk_rows=chunk_rows)
    assert reader.columns == list(whole.columns) and reader.rows == len(whole)
    chunks = list(reader.chunks())
    assert all(len(c) <= chunk_rows for c in chunks)
    by_bytes = ChunkedReader(path, chunk_rows=chunk_rows, chunk_bytes=1)
    assert [len(c) for c in by_bytes.chunks()] == [1] * len(whole)  # a chunk ends at the byte limit
    expected = tmp_path / ("whole-" + path.name)
    write_dataset(whole, expected)
    out = tmp_path / ("chunked-" + path.name)
    writer = ChunkedWriter(out)
    for chunk in chunks:
        writer.write(chunk)
    writer.commit()
    assert out.read_bytes() == expected.read_bytes()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left


def test_limit_keeps_the_columns_of_later_rows(tmp_path):
    path = _file(tmp_path, "a.jsonl")
    reader = ChunkedReader(path, limit=2, chunk_rows=1)
    whole = read_dataset(path, limit=2)
    assert reader.rows == 2 and reader.columns == list(whole.columns)
    assert sum(len(c) for c in reader.chunks()) == 2


@pytest.mark.parametrize(
    "name,content",
    [
        ("bad.jsonl", '{"text": "a"}\n{"text": "b"}\n{"text": \n{"text": "d"}\n'),
        ("bad.csv", "text,label\na,x\nb,y,z\n"),
        ("bad.tsv", "text\tlabel\na\tx\nb\n"),
        ("utf.jsonl", '{"text": "a"}\n{"text": "b\xff"}\n'),
        ("dup.csv", "text,text\na,b\n"),
    ],
)
def test_errors_are_the_whole_file_readers(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content.encode("latin-1") if "utf" in name else content.encode())
    with pytest.raises(MixaugError) as whole:
        read_dataset(path)
    with pytest.raises(MixaugError) as chunked:
        ChunkedReader(path, chunk_rows=1)
    assert str(chunked.value) == str(whole.value)


def test_bad_gzip_and_missing_file_are_one_line(tmp_path):
    bad = tmp_path / "x.jsonl.gz"
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(MixaugError, match="not a valid gzip file"):
        ChunkedReader(bad)
    with pytest.raises(MixaugError, match="input file not found"):
        ChunkedReader(tmp_path / "nothing.jsonl")


def test_a_value_the_output_cannot_hold_is_named_by_its_row_in_the_file(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps({"text": f"r{i}", "v": "tab\tbed" if i == 5 else "s"}) + "\n" for i in range(8)))
    with pytest.raises(MixaugError) as whole:
        serialise(read_dataset(path), "tsv")
    writer = ChunkedWriter(tmp_path / "o.tsv")
    with pytest.raises(MixaugError) as chunked:
        for chunk in ChunkedReader(path, chunk_rows=3).chunks():
            writer.write(chunk)
    writer.discard()
    assert "row 6" in str(whole.value) and str(chunked.value) == str(whole.value)
    assert list(tmp_path.glob(".o.tsv*")) == [] and not (tmp_path / "o.tsv").exists()


def _cli(args):
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    return r


@pytest.mark.parametrize("suffix", [".jsonl", ".csv.gz"])
def test_augment_file_writes_the_whole_table_paths_bytes(tmp_path, sample_file, tiny_checkpoint, suffix, monkeypatch):
    """The streamed API (local engine, chunks of 5 rows) against the CLI's whole-table run, with a stats file."""
    from mixaug.config import AugmentConfig
    from mixaug.streamed import augment_streamed as augment_file

    monkeypatch.setenv("MIXAUG_NO_DECODE_CACHE", "1")
    monkeypatch.setattr(stacks, "_STACKS", {})  # stacks loaded without a disk cache must not outlive the test
    source = tmp_path / ("in" + suffix)
    write_dataset(read_dataset(sample_file), source)
    common = ["--checkpoint", str(tiny_checkpoint), "-n", "10", "--batch-size", "4", "--max-new-tokens", "6", "-q"]
    whole = tmp_path / ("whole" + suffix)
    _cli(["augment", str(source), "-o", str(whole), *common, "--stats-json", str(tmp_path / "w.json")])
    cfg = AugmentConfig(checkpoint=str(tiny_checkpoint), num_augmented=10, decode_batch=4, max_new_tokens=6)
    streamed = tmp_path / ("streamed" + suffix)
    stats = augment_file(source, streamed, cfg, chunk_rows=5, stats_json=tmp_path / "s.json")
    assert streamed.read_bytes() == whole.read_bytes()
    assert stats["new_rows"] == json.loads((tmp_path / "w.json").read_text())["new_rows"]
    assert json.loads((tmp_path / "s.json").read_text())["rows_read"] == 18


def test_augment_file_refuses_before_any_model_loads(tmp_path, sample_file):
    from mixaug.streamed import augment_streamed as augment_file

    with pytest.raises(MixaugError, match="streamed run writes"):
        augment_file(sample_file, tmp_path / "o.parquet")
    with pytest.raises(MixaugError, match="id column 'nope' not found; columns found: id, text, label"):
        augment_file(sample_file, tmp_path / "o.jsonl", id_column="nope", checkpoint="/no/such/checkpoint")
    clash = tmp_path / "c.jsonl"
    clash.write_text('{"text": "a", "mixaug_lambda": 1}\n{"text": "b", "mixaug_lambda": 2}\n')
    with pytest.raises(MixaugError, match="provenance column"):
        augment_file(clash, tmp_path / "o.jsonl", checkpoint="/no/such/checkpoint")
    assert not (tmp_path / "o.jsonl").exists()


def test_gzip_bytes_do_not_depend_on_the_pieces():
    import zlib

    from mixaug.data.serialise import GzipStream

    data = ("".join(f"row {i} ünïcode\n" for i in range(3000))).encode()
    whole = GzipStream()
    one = whole.compress(data) + whole.flush()
    pieces = GzipStream()
    many = b"".join(pieces.compress(data[i : i + 777]) for i in range(0, len(data), 777)) + pieces.flush()
    assert one == many and one[:10] == GzipStream.HEADER and gzip.decompress(one) == data
    assert zlib.decompress(one, 31) == data
    empty = GzipStream()
    assert gzip.decompress(empty.flush()) == b""


def test_a_pipe_is_not_streamed_and_a_file_that_changes_is_caught(tmp_path):
    import os

    from mixaug.data.chunked import streamable

    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    assert not streamable(fifo)
    with pytest.raises(MixaugError, match="not a regular file"):
        ChunkedReader(fifo)
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps({"text": f"r{i}"}) + "\n" for i in range(6)))
    reader = ChunkedReader(path, chunk_rows=2)
    path.write_text("".join(json.dumps({"text": f"r{i}"}) + "\n" for i in range(4)))
    with pytest.raises(MixaugError, match="changed while it was read: 6 rows at first, 4 now"):
        list(reader.chunks())


def test_the_plan_is_worked_in_blocks_without_changing_the_output(sample_file, tiny_checkpoint, monkeypatch):
    monkeypatch.setenv("MIXAUG_NO_DECODE_CACHE", "1")
    monkeypatch.setattr(stacks, "_STACKS", {})  # stacks loaded without a disk cache must not outlive the test
    df = read_dataset(sample_file)
    opts = dict(checkpoint=str(tiny_checkpoint), num_augmented=9, max_new_tokens=6, temperature=0.7)
    whole = pipeline.augment(df, **opts)
    monkeypatch.setattr(pipeline, "GENERATE_BLOCK", 2)
    assert serialise(pipeline.augment(df, **opts), "jsonl") == serialise(whole, "jsonl")
