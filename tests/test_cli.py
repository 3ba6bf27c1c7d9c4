"""The CLI through Typer's runner, on the tiny checkpoint: output schema, determinism, every bad input."""

import json
import os
import re
import subprocess
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

from mixaug.cli import app

runner = CliRunner()
FAST = ["--max-new-tokens", "6", "-q"]


def run(*args, input=None):
    return runner.invoke(app, [str(a) for a in args], input=input)


def assert_one_line_error(result, pattern):
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    lines = [l for l in result.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1, result.stderr
    assert pattern in lines[0], lines[0]


def test_augment_writes_originals_then_new_rows(tmp_path, sample_file, tiny_checkpoint):
    out = tmp_path / "out.jsonl"
    stats = tmp_path / "stats.json"
    r = run(
        "augment",
        sample_file,
        "-o",
        out,
        "--checkpoint",
        tiny_checkpoint,
        "-n",
        "10",
        "--id-column",
        "id",
        "--stats-json",
        stats,
        *FAST,
    )
    assert r.exit_code == 0, r.output
    assert r.stdout == ""
    df = pd.read_json(out, lines=True)
    orig, new = df[df.mixaug_source == "original"], df[df.mixaug_source == "mixup"]
    assert len(orig) == 18 and list(df.index[:18]) == list(orig.index)
    s = json.loads(stats.read_text())
    assert len(new) == s["new_rows"] and s["new_rows"] + s["shortfall"] == 10
    for col in (
        "mixaug_parent_a",
        "mixaug_parent_b",
        "mixaug_parent_a_label",
        "mixaug_parent_b_label",
        "mixaug_lambda",
        "mixaug_fidelity",
        "mixaug_label_confidence",
        "mixaug_intrusion",
    ):
        assert new[col].notna().all(), col
    assert set(new.mixaug_parent_a) <= set(orig.id)
    assert (new.mixaug_parent_a_label == new.mixaug_parent_b_label).all()  # intra pairing
    assert set(new.label) <= set(orig.label)
    assert (new.mixaug_intrusion == (new.label != new.mixaug_parent_a_label)).all()
    src = pd.read_json(sample_file, lines=True)
    pd.testing.assert_frame_equal(orig[src.columns].reset_index(drop=True), src)


def test_same_seed_is_byte_identical_across_batch_sizes(tmp_path, sample_file, tiny_checkpoint):
    from mixaug import stacks

    outs = []
    for bs in (1, 4, 32):
        for stack in stacks._STACKS.values():
            stack.decoded.clear()  # make every batch size really decode, not reuse the decode cache
        out = tmp_path / f"bs{bs}.jsonl"
        r = run(
            "augment", sample_file, "-o", out, "--checkpoint", tiny_checkpoint, "-n", "8", "--batch-size", bs, *FAST
        )
        assert r.exit_code == 0, r.output
        outs.append(out.read_bytes())
    assert outs[0] == outs[1] == outs[2]
    other = tmp_path / "seed1.jsonl"
    run("augment", sample_file, "-o", other, "--checkpoint", tiny_checkpoint, "-n", "8", "--seed", "1", *FAST)
    assert other.read_bytes() != outs[0]


def test_stdin_stdout_csv_only_new_and_soft_policy(sample_rows, tiny_checkpoint):
    csv_in = pd.DataFrame(sample_rows).to_csv(index=False)
    r = run(
        "augment",
        "-",
        "-o",
        "-",
        "--input-format",
        "csv",
        "--output-format",
        "csv",
        "--only-new",
        "--label-policy",
        "soft",
        "--pairing",
        "inter",
        "-n",
        "4",
        "--checkpoint",
        tiny_checkpoint,
        *FAST,
        input=csv_in,
    )
    assert r.exit_code == 0, r.stderr
    import io

    df = pd.read_csv(io.StringIO(r.stdout))
    assert (df.mixaug_source == "mixup").all() and len(df) <= 4
    assert (df.mixaug_parent_a_label != df.mixaug_parent_b_label).all()
    for soft, lam, a in zip(df.mixaug_soft_label, df.mixaug_lambda, df.mixaug_parent_a_label):
        assert json.loads(soft)[a] == pytest.approx(lam, abs=1e-4)


def test_unlabelled_dataset_uses_random_pairing(tmp_path, tiny_checkpoint):
    src = tmp_path / "u.csv"
    pd.DataFrame({"content": ["one fine day", "two red cars", "three old trees", "four new shoes"]}).to_csv(
        src, index=False
    )
    out = tmp_path / "u.jsonl"
    stats = tmp_path / "s.json"
    r = run("augment", src, "-o", out, "--checkpoint", tiny_checkpoint, "-n", "3", "--stats-json", stats, *FAST)
    assert r.exit_code == 0, r.output
    s = json.loads(stats.read_text())
    assert s["pairing"] == "random" and s["label_policy"] is None and s["intrusion_rate"] is None


def test_dry_run_writes_nothing(tmp_path, sample_file, tiny_checkpoint):
    out = tmp_path / "never.jsonl"
    r = run("augment", sample_file, "-o", out, "--dry-run", "--checkpoint", tiny_checkpoint, "--max-new-tokens", "4")
    assert r.exit_code == 0, r.output
    assert not out.exists()
    assert '"samples"' in r.stderr and r.stdout == ""


def test_dry_run_samples_are_the_first_planned_rows(sample_rows, tiny_checkpoint):
    """The preview encodes only the sampled parents; its decodes must equal the full path's."""
    from mixaug.config import AugmentConfig
    from mixaug.inversion.invert import DecodeOptions
    from mixaug.mix import mix, plan_pairs
    from mixaug.pipeline import preview
    from mixaug.stacks import load_stack

    df = pd.DataFrame(sample_rows)
    cfg = AugmentConfig(checkpoint=str(tiny_checkpoint), max_new_tokens=6, num_augmented=9, seed=3)
    samples = preview(df, cfg, samples=4)["samples"]
    plan = plan_pairs(df.label.tolist(), 9, "intra", cfg.alpha, cfg.seed, 0).head(4)
    stack = load_stack(cfg.checkpoint, precision=cfg.precision)
    emb = stack.encoder.encode(df.text.tolist())
    targets = mix(emb, plan["a"].to_numpy(), plan["b"].to_numpy(), plan["lam"].to_numpy(), True)
    assert [s["decoded"] for s in samples] == stack.inverter.decode(targets, options=DecodeOptions(max_new_tokens=6))
    assert [s["a"] for s in samples] == [df.text[i] for i in plan["a"]]


def test_invert_and_mix_commands(tmp_path, sample_file, tiny_checkpoint):
    out = tmp_path / "inv.parquet"
    r = run("invert", sample_file, "-o", out, "--checkpoint", tiny_checkpoint, "--limit", "3", "-q")
    assert r.exit_code == 0, r.output
    df = pd.read_parquet(out)
    assert list(df.columns[-2:]) == ["reconstruction", "fidelity"] and len(df) == 3
    assert df.fidelity.between(-1, 1).all()
    r = run(
        "mix",
        "The cat sat.",
        "Rain is coming.",
        "--lam",
        "0.3",
        "--lam",
        "0.7",
        "--json",
        "--checkpoint",
        tiny_checkpoint,
    )
    assert r.exit_code == 0, r.output
    rows = [json.loads(l) for l in r.stdout.splitlines()]
    assert [row["lambda"] for row in rows] == [0.3, 0.7]


def test_info_prints_manifest(tiny_checkpoint):
    r = run("info", "--checkpoint", tiny_checkpoint, "--device", "cpu")
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    assert info["manifest"]["num_soft_tokens"] == 2 and info["device"] == "cpu"
    assert info["versions"]["torch"]


# -- bad input: one line on stderr, exit != 0, no traceback, no output file ---------------------------
BAD_JSONL = '{"text": "a", "label": "x"}\n{"text": oops}\n'


@pytest.mark.parametrize(
    "content,name,extra,message",
    [
        (None, "missing.jsonl", [], "input file not found"),
        ("a,b\n", "data.xlsx", [], "unknown file extension '.xlsx'"),
        (BAD_JSONL, "bad.jsonl", [], "malformed JSON on line 2"),
        (b"text,label\ncaf\xe9,x\n", "latin1.csv", [], "not valid UTF-8"),
        ("body,y\nhello,x\n", "cols.csv", [], "columns found: body, y"),
        ("text,y\nhello,x\nbye,x\n", "nolabel.csv", ["--label-column", "label"], "label column 'label' not found"),
        ("", "empty.jsonl", [], "empty"),
        ("text,label\n,x\n  ,y\n", "blank.csv", [], "no usable text"),
        ("text,label\nhi there,a\nbye now,a\nlonely one,b\n", "single.csv", [], "class 'b' has only 1"),
        ("text,label\nhi there,a\nbye now,\n", "nolab.csv", [], "row 2 has a text but no label"),
    ],
)
def test_bad_input(tmp_path, tiny_checkpoint, content, name, extra, message):
    src = tmp_path / name
    if content is not None:
        src.write_bytes(content if isinstance(content, bytes) else content.encode())
    out = tmp_path / "out.jsonl"
    r = run("augment", src, "-o", out, "--checkpoint", tiny_checkpoint, *extra, *FAST)
    assert_one_line_error(r, message)
    assert not out.exists()


def test_nan_texts_are_skipped_and_counted(tmp_path, tiny_checkpoint):
    src = tmp_path / "nan.jsonl"
    src.write_text(
        "".join(
            json.dumps(r) + "\n"
            for r in [
                {"text": "hello there friend", "label": "a"},
                {"text": None, "label": "a"},
                {"text": "good bye my friend", "label": "a"},
                {"text": "", "label": "a"},
            ]
        )
    )
    stats = tmp_path / "s.json"
    r = run(
        "augment",
        src,
        "-o",
        tmp_path / "o.jsonl",
        "--checkpoint",
        tiny_checkpoint,
        "-n",
        "2",
        "--stats-json",
        stats,
        *FAST,
    )
    assert r.exit_code == 0, r.output
    assert json.loads(stats.read_text())["rows_skipped_empty_text"] == 2


def test_bad_checkpoint_and_existing_output(tmp_path, sample_file, tiny_checkpoint):
    bad = tmp_path / "ck"
    bad.mkdir()
    (bad / "manifest.json").write_text("{}")
    out = tmp_path / "out.jsonl"
    assert_one_line_error(run("augment", sample_file, "-o", out, "--checkpoint", bad, *FAST), "corrupt checkpoint")
    assert not out.exists()
    assert_one_line_error(
        run("augment", sample_file, "-o", out, "--checkpoint", tmp_path / "none", *FAST), "checkpoint not found"
    )
    out.write_text("precious\n")
    assert_one_line_error(run("augment", sample_file, "-o", out, "--checkpoint", tiny_checkpoint, *FAST), "--overwrite")
    assert out.read_text() == "precious\n"
    r = run("augment", sample_file, "-o", out, "--checkpoint", tiny_checkpoint, "--overwrite", "-n", "2", *FAST)
    assert r.exit_code == 0 and out.read_text() != "precious\n"


def test_provenance_collision_is_refused(tmp_path, tiny_checkpoint):
    src = tmp_path / "c.csv"
    src.write_text("text,label,mixaug_lambda\na b,x,1\nc d,x,2\n")
    assert_one_line_error(
        run("augment", src, "-o", tmp_path / "o.jsonl", "--checkpoint", tiny_checkpoint, *FAST), "mixaug_lambda"
    )


def test_interrupted_run_resumes_from_decode_cache(tmp_path, sample_file, tiny_checkpoint, monkeypatch):
    from mixaug import stacks
    from mixaug.inversion.invert import Inverter

    for stack in stacks._STACKS.values():
        stack.decoded.clear()
    real = Inverter.decode

    def flaky(self, *args, on_row=None, **kwargs):
        finished = []

        def row(i, text):
            if len(finished) == 4:
                raise KeyboardInterrupt  # Ctrl-C as the fifth row finishes
            finished.append(i)
            on_row(i, text)

        return real(self, *args, on_row=row, **kwargs)

    monkeypatch.setattr(Inverter, "decode", flaky)
    out = tmp_path / "out.jsonl"
    args = ("augment", sample_file, "-o", out, "--checkpoint", tiny_checkpoint, "-n", "8", "--batch-size", "4", *FAST)
    r = run(*args)
    assert r.exit_code == 130 and "interrupted" in r.stderr and not out.exists()
    stacks._STACKS.clear()  # a new process: only the on-disk cache survives
    seen = []

    def counting(self, emb, *args, **kwargs):
        seen.append(len(emb))
        return real(self, emb, *args, **kwargs)

    monkeypatch.setattr(Inverter, "decode", counting)
    r = run(*args)
    assert r.exit_code == 0, r.output
    assert seen[0] == 4  # round 0 decoded only the 4 rows the interrupted run had not finished


# -- --help ----------------------------------------------------------------------------------------------------


def flag_lines(help_text: str, flag: str) -> list[str]:
    """The lines of an options list that start with this flag (after a short form and a comma, if any)."""
    return [l for l in help_text.splitlines() if re.match(rf"\s+(-\w, )?{re.escape(flag)}(\s|$|,| /)", l)]


def every_command():
    """command path -> click command, for `mixaug` and every command and sub-command."""
    from typer.main import get_command

    def walk(cmd, path):
        yield path, cmd
        for name in getattr(cmd, "commands", {}):
            yield from walk(cmd.commands[name], f"{path} {name}")

    return dict(walk(get_command(app), "mixaug"))


@pytest.mark.parametrize("path", list(every_command()))
def test_help_shows_no_value_beside_a_flag(path):
    """Issue 35: `--help` printed `<bool>` beside --overwrite, --quiet, --help...: flags take no value."""
    cmd = every_command()[path]
    r = runner.invoke(app, [*path.split()[1:], "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "<bool>" not in r.output
    flags = [p for p in cmd.params if getattr(p, "is_flag", False)]
    for names in [*([*p.opts, *p.secondary_opts] for p in flags), ["--help"]]:
        lines = flag_lines(r.output, names[0])  # a flag's names share one line: -q, --quiet; --fp16 / --fp32
        assert len(lines) == 1 and all(n in lines[0] for n in names), f"{path}: {names} not listed"
        assert "<" not in lines[0].strip().split("  ")[0], lines
    takes_value = [p.opts[-1] for p in cmd.params if not getattr(p, "is_flag", True)]
    for option in takes_value:  # and the options that do take one still say what it is
        assert any(re.search(r"<\w", l) for l in flag_lines(r.output, option)), f"{path}: {option}"


def test_the_entry_point_shows_no_bool_in_a_colour_terminal():
    """main(), the console script's entry, in the environment where typer would draw rich panels (a wide colour terminal)."""
    env = dict(os.environ, COLUMNS="160", TERM="xterm-256color", FORCE_COLOR="1")
    code = "import sys; sys.argv = ['mixaug', 'augment', '--help']; from mixaug.cli import main; main()"
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "--only-new" in r.stdout and "<bool>" not in r.stdout
    assert re.search(r"^\s+--only-new\s+Write only the new rows\.$", r.stdout, flags=re.M), r.stdout


def test_mixaug_alone_prints_the_help_on_stdout():
    code = "import sys; sys.argv = ['mixaug']; from mixaug.cli import main; main()"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr == ""
    assert r.stdout.startswith("Usage: mixaug [OPTIONS] COMMAND [ARGS]...") and "  augment  " in r.stdout
