"""Every case of the hostile-input report, one test each: the data passes through unchanged, or the run stops
early with one line and exit code 2. Runs on the tiny checkpoint; `no_models` proves "before any model"."""

from __future__ import annotations

import errno
import json
import os
import re
import stat
import subprocess
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

from mixaug.cli import app
from mixaug.data.formats import MISSING
from mixaug.data.read import read_dataset

runner = CliRunner()
FAST = ["--max-new-tokens", "4", "-q"]


def run(*args, input=None):
    return runner.invoke(app, [str(a) for a in args], input=input)


def one_line_error(result, pattern: str, code: int = 2) -> str:
    assert result.exit_code == code, (result.exit_code, result.output)
    assert "Traceback" not in result.output and "internal error" not in result.output
    lines = [l for l in result.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1, result.stderr
    assert pattern in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def no_models(monkeypatch):
    """Fail the test if a model stack is loaded: the error must come before."""
    from mixaug import stacks

    def forbidden(*a, **k):
        raise AssertionError("models were loaded before the error")

    monkeypatch.setattr(stacks, "load_stack", forbidden)


def jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


ROWS = [
    {"text": f"sentence number {w} about {t}", "label": t} for t in ("cats", "dogs") for w in ("one", "two", "three")
]


def augment(src, out, ckpt, *extra):
    return run("augment", src, "-o", out, "--checkpoint", ckpt, "-n", "3", *FAST, *extra)


def originals(path) -> pd.DataFrame:
    df = read_dataset(path)
    return df[df["mixaug_source"] == "original"].drop(columns=[c for c in df if c.startswith("mixaug_")])


# -- silent data loss or change ------------------------------------------------------------------------
def test_csv_trailing_comma_is_an_error_naming_the_line(tmp_path, no_models):
    src = tmp_path / "t.csv"
    src.write_text('text,source\n"a real text",web0,\n"another text",web1,\n')
    line = one_line_error(augment(src, tmp_path / "o.jsonl", "unused"), "line 2 has 3 fields but the header has 2")
    assert "trailing delimiter" in line
    assert not (tmp_path / "o.jsonl").exists()


@pytest.mark.parametrize(
    "header,message",
    [("text,label,label", "duplicate column name 'label'"), ("text,,label", "column 2 of the header has no name")],
)
def test_csv_header_names_must_be_unique_and_present(tmp_path, no_models, header, message):
    src = tmp_path / "h.csv"
    src.write_text(header + "\na b,x,y\nc d,x,y\n")
    one_line_error(augment(src, tmp_path / "o.jsonl", "unused"), message)


def test_jsonl_passthrough_keeps_ints_floats_and_absent_keys(tmp_path, tiny_checkpoint):
    rows = [dict(r, id=2**53 + i, score=1.5e-12 * (i + 1), nested={"k": [i, None]}) for i, r in enumerate(ROWS)]
    del rows[2]["id"]  # one row lacks the int key: the others must stay ints
    rows[3]["flag"] = True
    src = jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    r = augment(src, out, tiny_checkpoint)
    assert r.exit_code == 0, r.output
    lines = out.read_text(encoding="utf-8").splitlines()
    for original, line in zip(rows, lines):
        got = json.loads(line)
        assert {k: v for k, v in got.items() if not k.startswith("mixaug_")} == original
        assert all(type(got[k]) is type(v) for k, v in original.items())
    ids = [json.loads(l).get("id") for l in lines[: len(rows)]]
    assert len({i for i in ids if i is not None}) == len(rows) - 1  # no collisions above 2**53


def test_parquet_nullable_ints_and_timestamps_pass_through(tmp_path, tiny_checkpoint):
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = len(ROWS)
    table = pa.table(
        {
            "text": [r["text"] for r in ROWS],
            "label": [r["label"] for r in ROWS],
            "n": pa.array([2**62 + 1] + [None] * (n - 1), type=pa.int64()),
            "small": pa.array(list(range(n)), type=pa.int16()),
            "at": pa.array([pd.Timestamp("2024-05-06 07:08:09.123456789")] * n, type=pa.timestamp("ns")),
        }
    )
    src = tmp_path / "in.parquet"
    pq.write_table(table, src)
    out = tmp_path / "out.parquet"
    assert augment(src, out, tiny_checkpoint).exit_code == 0
    back = pq.read_table(out)
    for name in ("text", "label", "n", "small", "at"):
        assert back.schema.field(name).type == table.schema.field(name).type
        assert back.column(name).to_pylist()[:n] == table.column(name).to_pylist()
    out_jsonl = tmp_path / "out.jsonl"
    assert augment(src, out_jsonl, tiny_checkpoint).exit_code == 0
    first = json.loads(out_jsonl.read_text().splitlines()[0])
    assert first["n"] == 2**62 + 1 and first["at"] == "2024-05-06T07:08:09.123456789"


def test_tsv_text_starting_with_a_quote_keeps_it(tmp_path, tiny_checkpoint):
    src = tmp_path / "q.tsv"
    texts = ['"Quoted" at the start of this one', 'a "middle" quote here', "plain text row", '"unbalanced start']
    src.write_text("text\tlabel\n" + "".join(f"{t}\tx\n" for t in texts))
    out = tmp_path / "o.tsv"
    assert augment(src, out, tiny_checkpoint).exit_code == 0
    assert originals(out)["text"].tolist() == texts


@pytest.mark.parametrize("which", ["input", "output"])
def test_stats_json_may_not_name_the_input_or_the_output(tmp_path, no_models, which):
    src = jsonl(tmp_path / "in.jsonl", ROWS)
    out = tmp_path / "out.jsonl"
    out.write_text("keep\n")
    before = src.read_bytes()
    stats = src if which == "input" else out
    r = run("augment", src, "-o", out, "--stats-json", stats, "--overwrite", "--checkpoint", "unused", *FAST)
    one_line_error(r, "same file")
    assert src.read_bytes() == before and out.read_text() == "keep\n"


def test_output_may_not_be_the_input(tmp_path, no_models):
    src = jsonl(tmp_path / "in.jsonl", ROWS)
    link = tmp_path / "link.jsonl"
    link.symlink_to(src)
    for target in (src, link):
        one_line_error(augment(src, target, "unused", "--overwrite"), "same file")


def test_stats_json_dash_is_stdout(tmp_path, tiny_checkpoint):
    src = jsonl(tmp_path / "in.jsonl", ROWS)
    r = augment(src, tmp_path / "o.jsonl", tiny_checkpoint, "--stats-json", "-")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["rows_read"] == len(ROWS)
    assert not (tmp_path / "-").exists() and not os.path.exists("-")
    one_line_error(run("augment", src, "-o", "-", "--stats-json", "-", *FAST), "cannot both go to stdout")


def test_overwrite_writes_through_a_symlink_and_keeps_the_mode(tmp_path, tiny_checkpoint):
    src = jsonl(tmp_path / "in.jsonl", ROWS)
    real = tmp_path / "real.jsonl"
    real.write_text("old\n")
    os.chmod(real, 0o600)
    link = tmp_path / "link.jsonl"
    link.symlink_to(real)
    assert augment(src, link, tiny_checkpoint, "--overwrite").exit_code == 0
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert stat.S_IMODE(real.stat().st_mode) == 0o600
    assert len(originals(real)) == len(ROWS)


def test_special_files_and_directories_are_refused(tmp_path, no_models):
    src = jsonl(tmp_path / "in.jsonl", ROWS)
    fifo = tmp_path / "fifo.jsonl"
    os.mkfifo(fifo)
    one_line_error(augment(src, fifo, "unused", "--overwrite"), "not a regular file")
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    one_line_error(augment(src, "/dev/null", "unused", "--overwrite", "--output-format", "jsonl"), "not a regular file")
    folder = tmp_path / "dir.jsonl"
    folder.mkdir()
    one_line_error(augment(src, folder, "unused", "--overwrite"), "is a directory")


def test_line_separators_in_jsonl_are_text(tmp_path, tiny_checkpoint):
    rows = [dict(r, text=r["text"] + sep) for r, sep in zip(ROWS, ["\u2028x", "\u0085y", "\u2029", "", "", ""])]
    src = tmp_path / "in.jsonl"
    src.write_bytes("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode())  # raw U+2028
    out = tmp_path / "out.jsonl"
    assert augment(src, out, tiny_checkpoint).exit_code == 0
    assert originals(out)["text"].tolist() == [r["text"] for r in rows]
    assert "\u2028" not in out.read_text(encoding="utf-8")  # written escaped: no tool splits a line there
    assert (
        run(
            "augment",
            out,
            "-o",
            tmp_path / "again.jsonl",
            "--checkpoint",
            tiny_checkpoint,
            "--only-new",
            "--text-column",
            "text",
            *FAST,
        ).exit_code
        != 0
    )  # its own output is readable (refused: provenance)


def test_lone_surrogate_escapes_are_refused_on_read(tmp_path, no_models):
    src = tmp_path / "s.jsonl"
    src.write_text('{"text": "fine text here", "label": "x"}\n{"text": "bad \\udcff text", "label": "x"}\n')
    one_line_error(augment(src, tmp_path / "o.jsonl", "unused"), "line 2: a string holds a lone surrogate")


# -- late or internal failures -------------------------------------------------------------------------
def test_output_folder_checked_before_models(tmp_path, no_models, monkeypatch):
    src = jsonl(tmp_path / "in.jsonl", ROWS)
    one_line_error(augment(src, tmp_path / "nope" / "o.jsonl", "unused"), "folder does not exist")

    def read_only(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr("tempfile.mkstemp", read_only)
    one_line_error(augment(src, tmp_path / "o.jsonl", "unused"), "Read-only file system")


@pytest.mark.parametrize(
    "option,value,message",
    [
        ("--seed", "-1", "--seed must be >= 0"),
        ("--seed", str(2**32), "--seed must be <="),
        ("--temperature", "nan", "--temperature must be a finite"),
        ("--alpha", "nan", "--alpha must be a finite"),
        ("--alpha", "inf", "--alpha must be a finite"),
        ("--max-new-tokens", "0", "--max-new-tokens must be >= 1"),
        ("--max-rounds", "0", "--max-rounds must be >= 1"),
        ("--top-p", "nan", "--top-p"),
        ("--min-fidelity", "nan", "--min-fidelity"),
        ("--device", "tpu", "--device must be one of"),
        ("--precision", "int4", "--precision must be one of auto, fp32, int8"),
        ("-n", "-3", "--num-augmented must be >= 0"),
    ],
)
def test_options_are_checked_before_any_work(tmp_path, no_models, option, value, message):
    src = jsonl(tmp_path / "in.jsonl", ROWS)
    one_line_error(
        run("augment", src, "-o", tmp_path / "o.jsonl", option, value, "--checkpoint", "unused", "-q"), message
    )


@pytest.mark.parametrize(
    "labels,message",
    [
        ([["a"], ["a"], ["b"], ["b"], ["a"], ["b"]], "holds list values"),
        ([{"k": 1}] * 6, "holds object values"),
        ([1, True, 1, 1, 0, 0], "the same label to Python"),
    ],
)
def test_labels_must_be_scalar_and_distinct(tmp_path, no_models, labels, message):
    src = jsonl(tmp_path / "in.jsonl", [dict(r, label=l) for r, l in zip(ROWS, labels)])
    one_line_error(augment(src, tmp_path / "o.jsonl", "unused"), message)


def test_a_text_column_of_numbers_is_named_as_such(tmp_path, no_models):
    src = jsonl(tmp_path / "in.jsonl", [{"text": i, "label": "x"} for i in range(4)])
    one_line_error(augment(src, tmp_path / "o.jsonl", "unused"), "holds number values, not text (row 1: 0)")


def test_ids_must_be_unique(tmp_path, no_models):
    src = jsonl(tmp_path / "in.jsonl", [dict(r, id=i % 3) for i, r in enumerate(ROWS)])
    one_line_error(
        augment(src, tmp_path / "o.jsonl", "unused", "--id-column", "id"), "duplicate value 0 (rows 1 and 4)"
    )


@pytest.mark.parametrize(
    "suffix,extra,message",
    [
        (".parquet", {"mixed": [1, "a", 2, "b", 3, "c"]}, "column 'mixed' cannot be written as parquet"),
        (".jsonl", {"blob": [b"\x00\x01"] * 6}, "holds binary data, which JSONL cannot hold"),
        (".csv", {"blob": [b"\x00\x01"] * 6}, "holds binary data, which CSV cannot hold"),
        (".jsonl", {"x": [float("nan")] * 6}, "holds nan, which JSONL cannot hold"),
    ],
)
def test_format_conversions_refused_before_models(tmp_path, no_models, suffix, extra, message):
    import pyarrow as pa
    import pyarrow.parquet as pq

    if suffix == ".parquet":
        src = jsonl(tmp_path / "in.jsonl", [dict(r, **{k: v[i] for k, v in extra.items()}) for i, r in enumerate(ROWS)])
    else:
        cols = {"text": [r["text"] for r in ROWS], "label": [r["label"] for r in ROWS], **extra}
        src = tmp_path / "in.parquet"
        pq.write_table(pa.table(cols), src)
    out = tmp_path / f"o{suffix}"
    one_line_error(augment(src, out, "unused"), message)
    assert not out.exists()


def _fill(folder, leave: int) -> None:
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    with open(folder / "filler", "wb") as fh:
        fh.write(b"\0" * max(0, free - leave))


@pytest.fixture
def tiny_disk(tmp_path):
    """A 256 KiB tmpfs (root only; skipped elsewhere): a real full disk, not a mock."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_full_disk_before_work_is_one_line(tmp_path, tiny_disk, no_models):
    src = jsonl(tmp_path / "in.jsonl", ROWS)
    _fill(tiny_disk, 0)
    one_line_error(augment(src, tiny_disk / "o.jsonl", "unused"), "not enough space")


def test_disk_full_at_the_end_leaves_nothing_behind(tmp_path, tiny_disk, tiny_checkpoint):
    """Room for the originals but not for the output: one line naming the path, no output, no stats file,
    no temp file."""
    rows = [dict(r, pad="x" * 600) for r in ROWS]  # ~4 KB of originals; the output adds 40 rows of 4 tokens
    src = jsonl(tmp_path / "in.jsonl", rows)
    _fill(tiny_disk, 4096)
    before = set(os.listdir(tiny_disk))
    out, stats = tiny_disk / "o.jsonl", tiny_disk / "s.json"
    r = run("augment", src, "-o", out, "--stats-json", stats, "--checkpoint", tiny_checkpoint, "-n", "40", *FAST)
    one_line_error(r, f"cannot write {out}: the disk is full")
    assert set(os.listdir(tiny_disk)) == before


def test_stats_failure_writes_neither_file(tmp_path, tiny_checkpoint, monkeypatch):
    from mixaug.data.write import write_files_atomic

    mio = sys.modules[write_files_atomic.__module__]  # the module whose _stage the writer calls
    src = jsonl(tmp_path / "in.jsonl", ROWS)
    real = mio._stage
    calls = []

    def second_fails(path, data):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(mio, "_stage", second_fails)
    out, stats = tmp_path / "o.jsonl", tmp_path / "s.json"
    one_line_error(augment(src, out, tiny_checkpoint, "--stats-json", stats), "the disk is full")
    assert not out.exists() and not stats.exists()
    assert sorted(os.listdir(tmp_path)) == ["in.jsonl"]


def test_missing_keys_stay_absent_in_jsonl_and_empty_in_csv(tmp_path, tiny_checkpoint):
    rows = [dict(r) for r in ROWS]
    rows[0]["extra"] = "only here"
    src = jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "o.jsonl"
    assert augment(src, out, tiny_checkpoint).exit_code == 0
    assert "extra" not in json.loads(out.read_text().splitlines()[1])
    df = read_dataset(src)
    assert df["extra"].tolist()[1] is MISSING


# -- fast start ----------------------------------------------------------------------------------------
def test_cli_import_does_not_load_torch_or_pandas():
    code = "import sys, mixaug.cli; print(sorted(m for m in ('torch', 'pandas', 'transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_version_and_usage_errors():
    r = run("--version")
    assert r.exit_code == 0 and r.stdout.startswith("mixaug ")
    assert run("augment").exit_code == 2


def test_unusable_decode_cache_is_one_warning_and_the_run_goes_on(tmp_path, tiny_checkpoint, monkeypatch):
    from mixaug import stacks

    not_a_folder = tmp_path / "cache-file"
    not_a_folder.write_text("I am a file, not a cache folder\n")
    monkeypatch.setenv("MIXAUG_CACHE", str(not_a_folder))
    monkeypatch.setattr(stacks, "_STACKS", {})  # a fresh process: the stack picks up the new cache path
    src = jsonl(tmp_path / "in.jsonl", ROWS)
    out = tmp_path / "o.jsonl"
    r = augment(src, out, tiny_checkpoint)
    assert r.exit_code == 0, r.output
    warnings = [l for l in r.stderr.splitlines() if "decode cache" in l]
    assert len(warnings) == 1 and warnings[0].startswith("warning: decode cache"), r.stderr
    assert len(originals(out)) == len(ROWS)


def test_a_corrupt_cache_line_never_fails_a_run(tmp_path, tiny_checkpoint, monkeypatch):
    from mixaug import stacks

    monkeypatch.setenv("MIXAUG_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(stacks, "_STACKS", {})
    src = jsonl(tmp_path / "in.jsonl", ROWS)
    assert augment(src, tmp_path / "a.jsonl", tiny_checkpoint).exit_code == 0
    for cache in (tmp_path / "cache" / "decodes").iterdir():
        data = bytearray(cache.read_bytes())
        data[len(data) // 2] = 0xFF  # one invalid byte
        cache.write_bytes(bytes(data))
    monkeypatch.setattr(stacks, "_STACKS", {})
    r = augment(src, tmp_path / "b.jsonl", tiny_checkpoint)
    assert r.exit_code == 0 and "cache" not in r.stderr, r.output
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()


# -- found by a hostile audit of the first fix ----------------------------------------------------------
def test_ints_and_floats_in_one_column_are_refused_for_parquet(tmp_path, no_models):
    src = jsonl(tmp_path / "in.jsonl", [dict(r, x=[1, 2.5, 3][i % 3]) for i, r in enumerate(ROWS)])
    one_line_error(augment(src, tmp_path / "o.parquet", "unused"), "parquet would change 1 into 1.0")


def test_parquet_time_with_nanoseconds_is_refused_not_truncated(tmp_path, no_models):
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = tmp_path / "t.parquet"
    n = len(ROWS)
    pq.write_table(
        pa.table(
            {
                "text": [r["text"] for r in ROWS],
                "label": [r["label"] for r in ROWS],
                "t": pa.array([1] * n, pa.time64("ns")),
            }
        ),
        src,
    )
    one_line_error(augment(src, tmp_path / "o.parquet", "unused"), "column 't' (time64[ns]) holds values Python")


def test_a_csv_row_of_one_empty_field_is_an_error(tmp_path, no_models):
    src = tmp_path / "c.csv"
    src.write_text('text,label\nhello world,a\n""\ngood morning,a\n')
    one_line_error(augment(src, tmp_path / "o.jsonl", "unused"), "line 3 has 1 fields but the header has 2")


def test_label_column_may_not_be_the_text_column(tmp_path, no_models):
    src = jsonl(tmp_path / "in.jsonl", ROWS)
    one_line_error(augment(src, tmp_path / "o.jsonl", "unused", "--label-column", "text"), "both 'text'")


def test_deeply_nested_values_are_refused_on_read(tmp_path, no_models):
    deep = "[" * 600 + "1" + "]" * 600
    src = tmp_path / "d.jsonl"
    src.write_text('{"text": "hello world", "label": "a", "d": ' + deep + '}\n{"text": "good day", "label": "a"}\n')
    one_line_error(augment(src, tmp_path / "o.jsonl", "unused"), "line 1: a value is nested more than 64 levels")


def test_output_path_with_a_trailing_slash(tmp_path, no_models):
    src = jsonl(tmp_path / "in.jsonl", ROWS)
    one_line_error(augment(src, str(tmp_path / "o.jsonl") + "/", "unused"), "names a directory")
    assert not (tmp_path / "o.jsonl").exists()


def test_usage_errors_and_bugs_are_one_line_from_the_real_command(tmp_path):
    exe = [sys.executable, "-c", "from mixaug.cli import main; main()"]
    for args, pattern in (
        (["augment", "x.jsonl", "--bogus"], "No such option: --bogus"),
        (["augment", "x.jsonl", "-n", "abc"], "Invalid value for '-n'"),
        (["frobnicate"], "No such command 'frobnicate'"),
        (["mix", "onlyone"], "Missing argument 'text_b'"),
    ):
        r = subprocess.run(exe + args, capture_output=True, text=True, cwd=tmp_path)
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("error:"), r.stderr
        assert pattern in lines[0], lines[0]


def test_mix_refuses_bytes_that_are_not_utf8(tiny_checkpoint):
    one_line_error(run("mix", "caf\udce9", "b", "--checkpoint", tiny_checkpoint, "--lam", "0.5"), "not valid UTF-8")


@pytest.mark.parametrize("edit", ["rename", "use_dora", "fan_in_fan_out"])
def test_lora_weights_that_peft_would_skip_or_reinterpret(tmp_path, tiny_lora_checkpoint, edit):
    import shutil

    from safetensors.torch import load_file, save_file

    ck = tmp_path / "ck"
    shutil.copytree(tiny_lora_checkpoint, ck)
    if edit == "rename":
        path = ck / "lora" / "adapter_model.safetensors"
        save_file({k.replace("q_proj", "zz_proj"): v for k, v in load_file(path).items()}, path)
    else:
        path = ck / "lora" / "adapter_config.json"
        cfg = json.loads(path.read_text())
        cfg[edit] = True
        path.write_text(json.dumps(cfg))
    r = run("mix", "a b", "c d", "--checkpoint", ck, "--lam", "0.5")
    one_line_error(r, "corrupt checkpoint")


def test_a_fifo_or_a_forged_line_in_the_decode_cache(tmp_path, tiny_checkpoint, monkeypatch):
    from mixaug import stacks
    from mixaug.inversion.decode_cache import decode_cache_path

    monkeypatch.setenv("MIXAUG_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(stacks, "_STACKS", {})
    from mixaug.inversion.invert import load_inverter

    calibration = load_inverter(tiny_checkpoint, "cpu", precision="int8").calibration_id()  # int8: auto on CPU
    cache = decode_cache_path(tiny_checkpoint, "cpu", "int8", calibration)
    cache.parent.mkdir(parents=True)
    os.mkfifo(cache)  # reading it would block forever
    src = jsonl(tmp_path / "in.jsonl", ROWS)
    r = augment(src, tmp_path / "a.jsonl", tiny_checkpoint, "--device", "cpu")
    assert r.exit_code == 0 and "warning: decode cache" in r.stderr, r.output


def test_group_values_that_would_share_a_stats_key(tmp_path, no_models):
    src = jsonl(tmp_path / "g.jsonl", [dict(r, g=[1, "1"][i % 2]) for i, r in enumerate(ROWS)])
    r = run("invert", src, "-o", tmp_path / "o.jsonl", "--group-column", "g", "--checkpoint", "unused", "-q")
    one_line_error(r, "would share one group")


# -- found by the second hostile audit (Python API, report, signals, export) ---------------------------
def test_api_names_row_numbers_by_position_not_by_a_users_index(tiny_checkpoint):
    import mixaug

    df = pd.DataFrame(ROWS).sample(frac=1, random_state=0)  # a shuffled index
    out = mixaug.augment(df, checkpoint=str(tiny_checkpoint), max_new_tokens=4, num_augmented=3, seed=1)
    originals_out = out[out["mixaug_source"] == "original"]
    for _, row in out[out["mixaug_source"] == "mixup"].iterrows():
        parent = originals_out.iloc[row["mixaug_parent_a"]]
        assert parent["label"] == row["mixaug_parent_a_label"]


@pytest.mark.parametrize(
    "bad,message",
    [
        (lambda: [{"text": "a"}], "expected a pandas DataFrame"),
        (lambda: pd.DataFrame({0: ["a", "b"], 1: ["x", "y"]}), "column names must be text"),
        (lambda: pd.DataFrame([["a", "x", "y"]], columns=["text", "label", "label"]), "duplicate column name"),
    ],
)
def test_api_refuses_what_it_cannot_name(bad, message):
    import mixaug
    from mixaug.errors import MixaugError

    with pytest.raises(MixaugError, match=message):
        mixaug.augment(bad())
    with pytest.raises(MixaugError, match="unknown option"):
        mixaug.augment(pd.DataFrame(ROWS), bogus=1)


def test_api_pandas_missing_values_are_null_and_a_named_index_is_refused(tmp_path):
    import numpy as np

    import mixaug
    from mixaug.errors import MixaugError

    df = pd.DataFrame(
        {
            "text": ["a", "b"],
            "score": pd.array([None, None], dtype="Int64"),
            "f": [1.5, np.nan],
            "c": pd.Categorical(["x", None]),
        }
    )
    mixaug.write_dataset(df, tmp_path / "x.jsonl")
    rows = [json.loads(l) for l in (tmp_path / "x.jsonl").read_text().splitlines()]
    assert rows[1] == {"text": "b", "score": None, "f": None, "c": None} and rows[0]["score"] is None
    mixaug.write_dataset(df, tmp_path / "x.parquet")
    assert read_dataset(tmp_path / "x.parquet")["f"].tolist() == [1.5, None]
    with pytest.raises(MixaugError, match="index"):
        mixaug.write_dataset(pd.DataFrame({"x": [1]}, index=pd.Index(["a"], name="id")), tmp_path / "i.jsonl")
    with pytest.raises(MixaugError, match="limit"):
        mixaug.read_dataset(tmp_path / "x.jsonl", limit=-1)


def test_report_reads_csv_flags_and_ids_like_jsonl(tmp_path, tiny_checkpoint):
    src = jsonl(tmp_path / "in.jsonl", ROWS)
    pages = {}
    for suffix in ("jsonl", "csv"):
        out = tmp_path / f"aug.{suffix}"
        assert augment(src, out, tiny_checkpoint, "--seed", "3").exit_code == 0
        page = tmp_path / f"{suffix}.html"
        assert run("report", out, "-o", page, "-q").exit_code == 0
        pages[suffix] = page.read_text()
    rate = [re.search(r"intrusion rate<b>([^<]*)", p).group(1) for p in pages.values()]
    assert rate[0] == rate[1]
    for text in ("sentence number one about cats", "sentence number two about dogs"):
        assert pages["jsonl"].count(text) == pages["csv"].count(text)


def test_report_of_hostile_provenance_is_one_line(tmp_path):
    good = {
        "text": "a b",
        "label": "$x^$",
        "mixaug_source": "mixup",
        "mixaug_parent_a": [0],
        "mixaug_parent_b": 1,
        "mixaug_parent_a_label": "$x^$",
        "mixaug_parent_b_label": "b",
        "mixaug_lambda": "abc",
        "mixaug_fidelity": 1e300,
        "mixaug_label_confidence": None,
        "mixaug_intrusion": "true",
    }
    src = jsonl(tmp_path / "r.jsonl", [{**good, "mixaug_source": "original"}, good, dict(good, text="c d")])
    assert run("report", src, "-o", tmp_path / "r.html", "-q").exit_code == 0  # odd values shown, not fatal
    page = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "PNG", (tmp_path / "r.html").read_text())
    assert page.count('<img alt="plot" src="PNG">') >= 1  # the plots drew "$x^$" as text, not as TeX
    facts = dict(re.findall(r"<div>([^<]+)<b>([^<]*)</b></div>", page))
    assert facts["new rows"] == "2" and facts["intrusion rate"] == "1.000"  # "true" read as true, as in a CSV
    assert facts["mean fidelity"] == "1e+300" and facts["mean λ"] == "–"  # not 300 digits; "abc" is no number
    cells = r"<tr><td>(a b|c d)</td>" + r"<td>(.*?)</td>" * 5 + "</tr>"
    rows = re.findall(cells, page)
    assert len(rows) == 4  # both new rows on both tabs (a sample; lowest fidelity first)
    for _, label, lam, fidelity, parent_a, parent_b in rows:
        assert label == '$x^$ <span class="bad">intrusion</span>'
        assert (lam, fidelity, parent_a, parent_b) == ("", "1e+300", "[0]", "1")
    assert "<th>$x^$</th>" in page and "<th>$x^$ + b</th>" in page  # the intrusion matrix names it as written
    assert "abc" not in page
    bad = jsonl(tmp_path / "b.jsonl", [{"text": "a", "mixaug_source": ["mixup"]}])
    one_line_error(run("report", bad, "-o", tmp_path / "b.html"), "lacks provenance column")


def test_sigterm_is_an_interrupt_that_leaves_nothing(tmp_path, tiny_checkpoint):
    import signal
    import time

    rows = [
        {"text": f"sentence {i} about topic {i % 7} and more words", "label": str(i % 3)} for i in range(2000)
    ]  # runs far longer than 8 s
    src = jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    p = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from mixaug.cli import main; main()",
            "augment",
            str(src),
            "-o",
            str(out),
            "--checkpoint",
            str(tiny_checkpoint),
            "-q",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    time.sleep(8)
    p.send_signal(signal.SIGTERM)
    _, stderr = p.communicate(timeout=60)
    assert p.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert sorted(os.listdir(tmp_path)) == ["in.jsonl"]


def test_export_does_not_replace_a_file_or_the_folder_holding_its_source(tmp_path, tiny_checkpoint):
    import shutil

    proj = tmp_path / "proj"
    shutil.copytree(tiny_checkpoint, proj / "run")
    (proj / "notes.txt").write_text("keep me")
    one_line_error(run("export", proj / "run", proj, "--overwrite"), "not a checkpoint folder")
    a_file = tmp_path / "f"
    a_file.write_text("data")
    one_line_error(run("export", proj / "run", a_file, "--overwrite"), "not a checkpoint folder")
    assert a_file.read_text() == "data" and (proj / "notes.txt").exists()


def test_a_column_name_with_a_line_break_is_escaped_in_the_error(tmp_path, no_models):
    src = tmp_path / "in.csv"
    src.write_text('"te\nxt",label\na b,x\n', encoding="utf-8")  # found by the CSV mutation fuzz
    one_line_error(augment(src, tmp_path / "o.jsonl", "unused"), 'columns found: "te\\nxt", label')


def test_user_text_in_an_error_line_can_neither_style_link_nor_control_the_terminal(tmp_path, no_models):
    """A CSV header holding terminal escapes and rich markup is named in the error as inert text."""
    header = "\x1b]0;owned\x07\x1b[2J\\[link=https://evil.example]fix\\[/link][bold]x[/bold]\x9b"
    src = tmp_path / "h.csv"
    src.write_text(f'"{header}",label\nhello,a\nworld,b\n', encoding="utf-8")
    line = one_line_error(run("augment", src, "-o", tmp_path / "o.jsonl", "--text-column", "nope"), "not found")
    assert not any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in line)
    assert "owned" in line and "\\x9b" in line  # named, escaped
    assert "[link=https://evil.example]fix" in line and "[bold]x[/bold]" in line  # shown, not obeyed
