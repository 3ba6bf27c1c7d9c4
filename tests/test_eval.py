"""`mixaug eval` on the tiny checkpoint: every section present, same number of new rows per method."""

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mixaug.cli import app
from mixaug.evaluation.arms import sample_shots
from mixaug.evaluation.config import parse_method
from mixaug.evaluation.run import summary_from_runs


def test_sample_shots_is_stratified_and_seeded():
    labels = ["a"] * 10 + ["b"] * 3
    idx = sample_shots(labels, 4, seed=1)
    assert sorted(labels[i] for i in idx) == ["a"] * 4 + ["b"] * 3
    assert (idx == sample_shots(labels, 4, seed=1)).all() and len(sample_shots(labels, "all", 0)) == 13


def test_methods_by_name():
    from mixaug.errors import MixaugError
    from mixaug.evaluation.config import Method

    assert parse_method("mixaug") == Method("mixaug", "mixaug", None, None)  # augment's own defaults
    assert parse_method("mixaug:soft:inter") == Method("mixaug:soft:inter", "mixaug", "soft", "inter")
    assert parse_method("mixaug+task") == Method("mixaug+task", "mixaug", None, None, "task")
    assert parse_method("mixaug+adapt:parent:random").variant == "adapt"
    assert parse_method("mixaug:hard:intra:drop").intrusion == "drop"
    assert parse_method("mixaug+guided").variant == "guided"
    assert parse_method("mixaug:hard:intra").intrusion == "keep"
    assert parse_method("eda") == Method("eda", "eda")
    for bad in ("mixaug+lora", "mixaug:soft", "mixaug:soft:x", "mixaug:hard:intra:x", "eda+task", "nothing"):
        with pytest.raises(MixaugError):
            parse_method(bad)


def test_eval_writes_report(tmp_path, sample_rows, tiny_checkpoint):
    df = pd.DataFrame(sample_rows)
    train, test = tmp_path / "train.jsonl", tmp_path / "test.csv"
    df.iloc[::2].to_json(train, orient="records", lines=True)
    df.iloc[1::2].to_csv(test, index=False)
    out = tmp_path / "report"
    r = CliRunner().invoke(
        app,
        [
            "eval",
            "--train",
            str(train),
            "--test",
            str(test),
            "--out",
            str(out),
            "--shots",
            "2,all",
            "--seeds",
            "2",
            "--methods",
            "none,eda,embed-mixup,mixaug,mixaug:soft:intra,mixaug:hard:intra:drop",
            "--fidelity-n",
            "3",
            "--control-pairs",
            "2",
            "--checkpoint",
            str(tiny_checkpoint),
            "-q",
        ],
    )
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "summary.json").read_text())
    keys = {
        "classifier",
        "method",
        "shots",
        "accuracy_mean",
        "accuracy_std",
        "macro_f1_mean",
        "macro_f1_std",
        "p_value_vs_none",
        "macro_f1_p_vs_none",
        "rare_recall_mean",
        "new_rows_per_s",
    }
    assert all(set(rec) == keys for rec in summary)
    assert {(rec["method"], rec["shots"]) for rec in summary} >= {("none", 2), ("mixaug", "all"), ("eda", 2)}
    results = json.loads((out / "results.json").read_text())
    made = {r["method"]: r["new_rows"] for r in results["runs"] if r["shots"] == 2 and r["seed"] == 0}
    assert made["eda"] == made["embed-mixup"] == 6 and made["none"] == 0
    assert made["mixaug"] <= 6 and made["mixaug:hard:intra:drop"] <= 6
    assert set(results) >= {"fidelity", "controllability", "intrusion", "speed"}
    assert len(results["controllability"]["curve"]) == 9
    report = (out / "report.md").read_text()
    for section in ("Downstream accuracy", "Inversion fidelity", "Manifold intrusion", "Speed"):
        assert section in report
    speed = results["speed"]  # the decode ceiling beside the default arm's useful tokens/s, same batch size
    assert speed["decode_ceiling_tokens_per_s"] > 0 and speed["mixaug_useful_tokens_per_s"] > 0
    assert speed["batch_size"] == 64 and speed["precision"] == "int8" and "a plain KV-cached greedy loop" in report


def test_eval_finetune_classifier(tmp_path, sample_rows, tiny_checkpoint):
    df = pd.DataFrame(sample_rows)
    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    df.iloc[::2].to_json(train, orient="records", lines=True)
    df.iloc[1::2].to_json(test, orient="records", lines=True)
    out = tmp_path / "ft"
    r = CliRunner().invoke(
        app,
        [
            "eval",
            "--train",
            str(train),
            "--test",
            str(test),
            "--out",
            str(out),
            "--shots",
            "3",
            "--seeds",
            "1",
            "--methods",
            "none,embed-mixup,mixaug+task",
            "--classifier",
            "finetune,tfidf",
            "--finetune-steps",
            "3",
            "--fidelity-n",
            "0",
            "--control-pairs",
            "0",
            "--checkpoint",
            str(tiny_checkpoint),
            "-q",
        ],
    )
    assert r.exit_code == 0, r.output
    records = json.loads((out / "summary.json").read_text())
    assert {(r["classifier"], r["method"]) for r in records} == {
        (c, m) for c in ("finetune", "tfidf") for m in ("none", "embed-mixup", "mixaug+task")
    }
    summary = {rec["method"]: rec for rec in records if rec["classifier"] == "finetune"}
    assert summary["none"]["accuracy_mean"] > 1 / 3  # 3 balanced classes: fine-tuning beats chance
    results = json.loads((out / "results.json").read_text())
    n_test = results["test_rows"]
    assert n_test == len(df.iloc[1::2]) == 9
    for run in results["runs"]:  # one seed: each summary record is its one run
        (rec,) = [r for r in records if (r["classifier"], r["method"]) == (run["classifier"], run["method"])]
        hits = run["accuracy"] * n_test
        assert abs(hits - round(hits)) < 1e-9, run  # a share of the 9 TEST rows, not any number in [0, 1]
        assert rec["accuracy_mean"] == round(run["accuracy"], 4) and rec["accuracy_std"] == 0.0
        assert rec["p_value_vs_none"] is None and rec["macro_f1_p_vs_none"] is None  # one seed: no paired test
    assert "finetune (" in (out / "report.md").read_text() and "tfidf (" in (out / "report.md").read_text()


def test_summary_p_values_are_scipys_paired_t_test():
    """Means, sample std and the paired t-test against `none` of the same classifier and shots, computed here
    independently (scipy.stats.ttest_rel on the seeds in order; another classifier's `none` is not the base)."""
    from scipy import stats

    none, mixaug, other = [0.50, 0.60, 0.55, 0.70], [0.52, 0.65, 0.54, 0.75], [0.1, 0.9, 0.2, 0.8]
    f1 = [0.40, 0.50, 0.47, 0.61]
    runs = [
        {"classifier": c, "method": m, "shots": 10, "seed": s, "accuracy": a, "macro_f1": f}
        for c, m, accs, f1s in (
            ("logreg", "none", none, none),
            ("logreg", "mixaug", mixaug, f1),
            ("tfidf", "none", other, other),
        )
        for s, (a, f) in reversed(list(enumerate(zip(accs, f1s))))  # out of seed order, as a journal may hold them
    ]
    recs = {(r["classifier"], r["method"]): r for r in summary_from_runs(runs, {"mixaug": 3.0})}
    rec = recs[("logreg", "mixaug")]
    assert rec["accuracy_mean"] == round(sum(mixaug) / 4, 4) == 0.615
    assert rec["accuracy_std"] == round(float(np.std(mixaug, ddof=1)), 4)
    assert rec["p_value_vs_none"] == round(float(stats.ttest_rel(mixaug, none).pvalue), 4)
    assert rec["macro_f1_p_vs_none"] == round(float(stats.ttest_rel(f1, none).pvalue), 4)
    assert 0 < rec["p_value_vs_none"] < 1 and rec["p_value_vs_none"] != rec["macro_f1_p_vs_none"]
    assert recs[("logreg", "none")]["p_value_vs_none"] is None and rec["new_rows_per_s"] == 3.0
    same = [
        dict(r, accuracy=r["accuracy"] + 0.1) for r in runs if r["method"] == "none" and r["classifier"] == "logreg"
    ]
    (shifted,) = [
        r for r in summary_from_runs(runs[:4] + [dict(r, method="mixaug") for r in same], {}) if r["method"] == "mixaug"
    ]
    assert shifted["p_value_vs_none"] is None  # every paired difference the same: the t statistic is undefined


def test_summary_without_none_has_no_p_value():
    """A run that leaves out `none` (to pair with an earlier run's) has nothing to test against: no crash."""
    runs = [
        {"classifier": "logreg", "method": "mixaug", "shots": 10, "seed": s, "accuracy": a, "macro_f1": a}
        for s, a in enumerate([0.5, 0.6, 0.55])
    ]
    (rec,) = summary_from_runs(runs, {"mixaug": 3.0})
    assert rec["p_value_vs_none"] is None and rec["accuracy_mean"] == 0.55


def test_interrupted_eval_resumes_from_its_journal(tmp_path, sample_rows, tiny_checkpoint, monkeypatch):
    """Ctrl-C in the middle keeps every finished run; the same command then runs only the rest and ends with
    the results an uninterrupted run gives (every arm is seeded). A journal of other settings is not used."""
    from mixaug.evaluation.classifiers import CLASSIFIERS
    from mixaug.evaluation.config import EvalConfig
    from mixaug.evaluation.journal import JOURNAL
    from mixaug.evaluation.run import run_eval

    df = pd.DataFrame(sample_rows)
    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    df.iloc[::2].to_json(train, orient="records", lines=True)
    df.iloc[1::2].to_json(test, orient="records", lines=True)

    def config(out, **kw):
        return EvalConfig(
            train=str(train), test=str(test), out=str(tmp_path / out), shots=[2], seeds=2,
            methods=["none", "eda", "mixaug"], fidelity_n=0, control_pairs=0, checkpoint=str(tiny_checkpoint), **kw,
        )  # fmt: skip

    def outcome(results):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in results["runs"]]

    from mixaug.stacks import load_stack

    shared = load_stack(str(tiny_checkpoint), "auto", "auto").decoded
    whole = outcome(run_eval(config("whole")))
    # eval decodes into a cache of its own, and gives the process's shared stack its disk cache back
    assert load_stack(str(tiny_checkpoint), "auto", "auto").decoded is shared
    real, calls, stop_at = CLASSIFIERS["logreg"], [], [4]

    def scored(*args, **kw):
        calls.append(1)
        if len(calls) == stop_at[0]:  # 4: the first seed's three arms are done; the second seed's first is not
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setitem(CLASSIFIERS, "logreg", scored)
    with pytest.raises(KeyboardInterrupt):
        run_eval(config("resumed"))
    journal = tmp_path / "resumed" / JOURNAL
    assert len(journal.read_text().splitlines()) == 3 and not (tmp_path / "resumed" / "results.json").exists()
    calls.clear()
    stop_at[0] = 0
    assert outcome(run_eval(config("resumed"))) == whole
    assert len(calls) == 3 and not journal.exists()  # only the second seed's arms ran again

    # a journal left by other settings is started afresh, not mixed in
    calls.clear()
    stop_at[0] = 4
    with pytest.raises(KeyboardInterrupt):
        run_eval(config("other"))
    calls.clear()
    stop_at[0] = 0
    changed = run_eval(config("other", max_new_rows=1))
    assert len(calls) == 6 and all(r["new_rows"] <= 1 for r in changed["runs"])


def test_cli_interrupt_names_the_journal(tmp_path, monkeypatch):
    import mixaug.evaluation.run as evaluate

    def interrupted(cfg, *args, **kw):
        (tmp_path / "out").mkdir()
        (tmp_path / "out" / evaluate.JOURNAL).write_text("{}\n")
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluate, "run_eval", interrupted)
    for name in ("train.jsonl", "test.jsonl"):
        (tmp_path / name).write_text('{"text": "a", "label": "x"}\n')
    r = CliRunner().invoke(
        app,
        ["eval", "--train", str(tmp_path / "train.jsonl"), "--test", str(tmp_path / "test.jsonl")]
        + ["--out", str(tmp_path / "out"), "-q"],
    )
    assert r.exit_code == 130
    assert "runs.partial.jsonl" in r.output and "the same command resumes" in r.output
