"""Which rows to make: --balance (rare classes first), --pairing neighbours (SMOTE's partner) and boundary."""

import json
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mixaug import mix as mixmod
from mixaug.cli import app
from mixaug.errors import MixaugError
from mixaug.mix import BOUNDARY_LAMBDAS, class_quota, nearest, plan_pairs

LABELS = ["a"] * 8 + ["b"] * 3 + ["c"] * 2


def test_quota_tops_up_rare_classes_first():
    assert class_quota(LABELS, 1.0) == {"a": 0, "b": 5, "c": 6}
    assert class_quota(LABELS, 0.5) == {"a": 0, "b": 1, "c": 2}
    assert class_quota(LABELS, 1.0, 3) == {"a": 0, "b": 1, "c": 2}  # c reaches b's 3, then each gets one
    assert class_quota(LABELS, 1.0, 11) == class_quota(LABELS, 1.0)
    assert class_quota(LABELS, 1.0, 14) == {"a": 1, "b": 6, "c": 7}  # past equal: still the fewest first


def test_balanced_plan_draws_each_class_its_quota_within_the_class():
    quota = class_quota(LABELS, 1.0)
    plan = plan_pairs(LABELS, 0, "intra", 0.4, seed=3, quota=quota)
    assert len(plan) == 11
    assert Counter(LABELS[i] for i in plan.a) == {"b": 5, "c": 6}
    assert all(LABELS[a] == LABELS[b] and a != b for a, b in zip(plan.a, plan.b))
    assert plan.equals(plan_pairs(LABELS, 0, "intra", 0.4, seed=3, quota=quota))
    assert not plan.equals(plan_pairs(LABELS, 0, "intra", 0.4, seed=4, quota=quota))


def _emb(n, dim=6, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_nearest_matches_brute_force_and_does_not_depend_on_the_block(monkeypatch):
    emb = _emb(40)
    rows, pool = np.arange(0, 40, 3), np.arange(40)
    got = nearest(emb, rows, pool, 4)
    sims = emb @ emb.T
    for r, near in zip(rows, got):
        order = [j for j in np.argsort(-sims[r], kind="stable") if j != r][:4]
        assert list(near) == order
    monkeypatch.setattr(mixmod, "KNN_BLOCK", 2)
    assert (nearest(emb, rows, pool, 4) == got).all()


def test_neighbours_pairing_takes_one_of_the_k_nearest_of_the_same_class():
    labels = ["x"] * 12 + ["y"] * 12
    emb = _emb(24, seed=1)
    plan = plan_pairs(labels, 200, "neighbours", 0.4, seed=0, emb=emb, neighbours=3)
    for a, b in zip(plan.a, plan.b):
        same = [j for j in range(24) if labels[j] == labels[a] and j != a]
        near = sorted(same, key=lambda j: -float(emb[a] @ emb[j]))[:3]
        assert b in near
    assert len(set(zip(plan.a, plan.b))) > 24  # a random one of the k, not always the nearest
    with pytest.raises(MixaugError, match="needs the rows' embeddings"):
        plan_pairs(labels, 5, "neighbours", 0.4, 0)


def test_boundary_pairing_mixes_across_classes_at_the_least_sure_lambda():
    labels = ["x"] * 6 + ["y"] * 6
    emb = _emb(12, seed=2)
    w = np.random.default_rng(5).normal(size=(6, 2))

    def proba(h):
        z = h @ w
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    plan = plan_pairs(labels, 40, "boundary", 0.4, seed=0, emb=emb, neighbours=3, proba=proba)
    codes = {"x": 0, "y": 1}
    for a, b, lam in zip(plan.a, plan.b, plan.lam):
        assert labels[a] != labels[b] and lam in BOUNDARY_LAMBDAS
        margins = []
        for g in BOUNDARY_LAMBDAS:
            p = proba(mixmod.mix(emb, np.array([a]), np.array([b]), np.array([g])))[0]
            margins.append(p[codes[labels[a]]] - p[1 - codes[labels[a]]])
        kept = [m for m in margins if m > 0]
        chosen = margins[BOUNDARY_LAMBDAS.index(lam)]
        assert chosen == pytest.approx(min(kept) if kept else max(margins), abs=1e-6)


def _imbalanced(tmp_path, sample_rows):
    rows = [r for r in sample_rows if r["label"] != sample_rows[-1]["label"]]
    rows += [r for r in sample_rows if r["label"] == sample_rows[-1]["label"]][:2]  # a class of 2
    path = tmp_path / "imb.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, Counter(r["label"] for r in rows)


FAST = ["--max-new-tokens", "6", "-q"]


@pytest.mark.parametrize("pairing", ["intra", "neighbours", "boundary", "transfer"])
def test_balance_fills_the_rare_class_the_same_whatever_the_batch(tmp_path, sample_rows, tiny_checkpoint, pairing):
    from mixaug import stacks

    source, counts = _imbalanced(tmp_path, sample_rows)
    rare = min(counts, key=counts.get)
    outs = []
    for bs in (1, 8):
        for stack in stacks._STACKS.values():
            stack.decoded.clear()
        out, stats = tmp_path / f"{pairing}{bs}.jsonl", tmp_path / f"{pairing}{bs}.json"
        args = ["augment", str(source), "-o", str(out), "--checkpoint", str(tiny_checkpoint), "--balance", "equal"]
        args += ["--pairing", pairing, "--label-policy", "parent", "--batch-size", str(bs), "--stats-json", str(stats)]
        r = CliRunner().invoke(app, [*args, *FAST])
        assert r.exit_code == 0, r.output
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    s = json.loads(stats.read_text())
    assert s["requested"] == 4 and s["balance"] == 1.0
    per = {c["label"]: c for c in s["new_rows_per_class"]}
    assert per[rare]["planned_from"] == s["new_rows"] and per[rare]["rows"] == 2
    new = pd.read_json(out, lines=True).query("mixaug_source == 'mixup'")
    assert (new.mixaug_parent_a_label == rare).all() and (new.label == rare).all()  # parent labels
    if pairing == "boundary":
        assert (new.mixaug_parent_b_label != rare).all() and new.mixaug_lambda.between(0.5, 0.95).all()
    elif pairing == "transfer":  # a donor of another class, a's weight at most a half
        assert (new.mixaug_parent_b_label != rare).all() and new.mixaug_lambda.between(0, 0.5).all()
    else:
        assert (new.mixaug_parent_b_label == rare).all()


def test_balance_with_n_and_the_streamed_path(tmp_path, sample_rows, tiny_checkpoint, monkeypatch):
    from mixaug import stacks
    from mixaug.config import AugmentConfig
    from mixaug.streamed import augment_streamed as augment_file

    monkeypatch.setenv("MIXAUG_NO_DECODE_CACHE", "1")
    monkeypatch.setattr(stacks, "_STACKS", {})
    source, counts = _imbalanced(tmp_path, sample_rows)
    whole = tmp_path / "whole.jsonl"
    args = ["augment", str(source), "-o", str(whole), "--checkpoint", str(tiny_checkpoint), "--balance", "0.5"]
    # rounds enough to replace the tiny model's duplicates: the plan is tested, not the tiny model's variety
    more = ["--max-rounds", "40"]
    r = CliRunner().invoke(app, [*args, "-n", "7", "--pairing", "neighbours", "--neighbours", "2", *more, *FAST])
    assert r.exit_code == 0, r.output
    cfg = AugmentConfig(
        checkpoint=str(tiny_checkpoint),
        balance="0.5",
        num_augmented=7,
        pairing="neighbours",
        neighbours=2,
        max_rounds=40,
    )
    cfg.max_new_tokens = 6
    streamed = tmp_path / "streamed.jsonl"
    stats = augment_file(source, streamed, cfg, chunk_rows=4)
    assert streamed.read_bytes() == whole.read_bytes()
    planned = {c["label"]: c["planned_from"] for c in stats["new_rows_per_class"]}
    assert sum(planned.values()) == stats["new_rows"] <= 7
    assert planned[min(counts, key=counts.get)] >= 4  # 2 rows: 4 to catch up with the others' 6, then 1 each


@pytest.mark.parametrize(
    "args, message",
    [
        (["--balance", "2"], "--balance takes 'equal' or a ratio in (0, 1]"),
        (["--balance", "most"], "--balance takes 'equal'"),
        (["--neighbours", "0"], "--neighbours must be >= 1"),
        (["--pairing", "nearest"], "--pairing must be one of intra, inter, random, neighbours, boundary, transfer"),
        (["--balance", "equal", "--max-per-row", "0"], "--max-per-row must be >= 1"),
    ],
)
def test_bad_balance_options_are_one_line(tmp_path, sample_file, args, message):
    r = CliRunner().invoke(app, ["augment", str(sample_file), "-o", str(tmp_path / "o.jsonl"), *args])
    assert r.exit_code == 2 and message in r.stderr and "Traceback" not in r.output
    assert not (tmp_path / "o.jsonl").exists()


def test_balance_needs_labels_and_neighbours_needs_two_per_class(tmp_path, tiny_checkpoint):
    unlabelled = tmp_path / "u.jsonl"
    unlabelled.write_text("".join(json.dumps({"text": f"row {i}"}) + "\n" for i in range(4)))
    r = CliRunner().invoke(app, ["augment", str(unlabelled), "-o", str(tmp_path / "o.jsonl"), "--balance", "equal"])
    assert r.exit_code == 2 and "--balance needs a label column" in r.stderr
    lonely = tmp_path / "l.jsonl"
    lonely.write_text("".join(json.dumps({"text": f"row {i}", "label": "ab"[i > 2]}) + "\n" for i in range(4)))
    r = CliRunner().invoke(app, ["augment", str(lonely), "-o", str(tmp_path / "o.jsonl"), "--pairing", "neighbours"])
    assert r.exit_code == 2 and "--pairing neighbours needs at least 2 examples per class; class 'b'" in r.stderr


def test_eval_imbalanced_setting(tmp_path, sample_rows, tiny_checkpoint):
    df = pd.DataFrame(sample_rows)
    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    df.iloc[::2].to_json(train, orient="records", lines=True)  # 3 per class
    df.iloc[1::2].to_json(test, orient="records", lines=True)
    out = tmp_path / "imb"
    methods = "none,class-weights,oversample,eda,smote,embed-mixup,mixaug:parent:intra,mixaug:hard:boundary"
    args = ["eval", "--train", str(train), "--test", str(test), "--out", str(out), "--shots", "3", "--seeds", "2"]
    args += ["--rare-classes", "1", "--rare-shots", "2", "--methods", methods, "--classifier", "logreg,tfidf"]
    args += ["--fidelity-n", "0", "--control-pairs", "0", "--checkpoint", str(tiny_checkpoint), "-q"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    results = json.loads((out / "results.json").read_text())
    runs = pd.DataFrame(results["runs"])
    assert set(runs.method) == set(methods.split(","))
    assert (runs.rare_classes.map(len) == 1).all() and runs.rare_recall.between(0, 1).all()
    made = runs.groupby("method").new_rows.max()
    assert made["none"] == made["class-weights"] == 0
    assert made["oversample"] == made["eda"] == made["smote"] == made["embed-mixup"] == 1  # 2 rows up to 3
    assert made["mixaug:parent:intra"] <= 1
    assert runs.groupby("seed").rare_classes.first().map(tuple).nunique() >= 1
    summary = json.loads((out / "summary.json").read_text())
    assert all(rec["rare_recall_mean"] is not None for rec in summary)
    assert "label_confidence" in (out / "report.md").read_text()


def test_balance_pairs_by_the_number_of_classes():
    """--balance without --pairing: intra (its spread plan) whatever the number of classes; an explicit
    --pairing always wins, and without --balance the default stays intra."""
    from mixaug.config import AugmentConfig

    two, six = ["a", "b", "a"], list("abcdef")
    assert AugmentConfig(balance="equal").pairing_for(two) == "intra"
    assert AugmentConfig(balance="equal").pairing_for(six) == "intra"
    assert AugmentConfig(balance="equal", pairing="neighbours").pairing_for(two) == "neighbours"
    assert AugmentConfig().pairing_for(two) == "intra"
    assert AugmentConfig(balance="equal").pairing_for(None) == "random"


def test_a_balance_plan_is_bounded_like_n_before_any_model_loads(monkeypatch):
    import mixaug
    from mixaug import inputs, stacks

    monkeypatch.setattr(stacks, "load_for", lambda *a: pytest.fail("a model loaded"))
    labels = ["head"] * 12_000 + [f"tail{k}" for k in range(1_000) for _ in range(2)]
    df = pd.DataFrame({"text": [f"row {i}" for i in range(len(labels))], "label": labels})
    with pytest.raises(MixaugError, match=r"--balance plans 11,998,000 new rows, more than the 10,000,000"):
        mixaug.augment(df, balance="equal", max_per_row=None)
    assert sum(inputs.plan_quota(labels, mixaug.AugmentConfig(balance="equal")).values()) == 10_000  # 5 a row
    with pytest.raises(MixaugError, match=r"quota plans 10,000,002 new rows"):
        mixaug.augment(df, quota={"tail0": 5_000_001, "tail1": 5_000_001})


def test_an_explicit_quota_plans_those_rows_per_class_and_is_checked():
    from mixaug.config import AugmentConfig
    from mixaug.inputs import prepare

    df = pd.DataFrame({"text": [f"t{i}" for i in range(len(LABELS))], "label": LABELS})
    p = prepare(df, AugmentConfig(quota={"c": 4, "a": 1}))
    assert p.quota == {"a": 1, "b": 0, "c": 4} and p.wanted == 5
    assert p.pairing == "intra" and AugmentConfig(quota={}).policy == "parent"  # planned like --balance
    for cfg, message in [
        (AugmentConfig(quota=[1]), "quota must be a dict"),
        (AugmentConfig(quota={"a": -1}), r"quota\['a'\] must be >= 0"),
        (AugmentConfig(quota={"a": 1.5}), r"quota\['a'\] must be a finite whole number"),
        (AugmentConfig(quota={"a": 1}, balance="equal"), "not with --balance or --num-augmented"),
    ]:
        with pytest.raises(MixaugError, match=message):
            cfg.validate()
    with pytest.raises(MixaugError, match="quota names class 'z', which no row has"):
        prepare(df, AugmentConfig(quota={"z": 1}))


def test_max_per_row_caps_each_class_at_that_many_new_rows_per_row():
    assert class_quota(LABELS, 1.0, per_row=2) == {"a": 0, "b": 5, "c": 4}  # c: 2 rows x 2, not 6
    assert class_quota(LABELS, 1.0, per_row=1) == {"a": 0, "b": 3, "c": 2}
    # with -n the fewest-first walk skips a class at its cap, and stops short when every class is capped
    assert class_quota(LABELS, 1.0, 4, per_row=1) == {"a": 0, "b": 2, "c": 2}
    assert sum(class_quota(LABELS, 1.0, 100, per_row=1).values()) == 13
    from mixaug.config import AugmentConfig
    from mixaug.inputs import plan_quota

    assert plan_quota(LABELS, AugmentConfig(balance="equal")) == {"a": 0, "b": 5, "c": 6}  # under the cap of 5
    big = ["h"] * 100 + ["t"] * 3
    assert plan_quota(big, AugmentConfig(balance="equal")) == {"h": 0, "t": 15}
    assert plan_quota(big, AugmentConfig(balance="equal", max_per_row=None)) == {"h": 0, "t": 97}


def test_a_per_class_plan_walks_a_class_s_pairs_before_repeating_one():
    labels = ["h"] * 20 + ["t"] * 5  # t has 10 unordered pairs
    plan = plan_pairs(labels, 0, "intra", 0.4, seed=1, quota={"h": 0, "t": 25})
    pairs = [frozenset(p) for p in zip(plan.a, plan.b)]
    assert all(labels[a] == labels[b] == "t" and a != b for a, b in zip(plan.a, plan.b))
    assert Counter(Counter(pairs).values()) == {3: 5, 2: 5}  # 25 = every pair twice, then 5 of them once more
    assert Counter(plan.a).most_common()[-1][1] >= 3  # both orders: every row is parent a several times
    low, high = mixmod.QUOTA_LAMBDAS
    assert plan.lam.between(low, high).all() and plan.lam.std() > 0.1
    free = plan_pairs(labels, 25, "intra", 0.4, seed=1)  # without a quota: the paper's λ, drawn pairs
    assert (free.lam < low).any() or (free.lam > high).any()


def test_a_per_class_plan_gives_a_recurring_row_its_nearest_partners_in_turn():
    labels = ["x"] * 3 + ["y"] * 12
    emb = _emb(15, seed=4)
    plan = plan_pairs(labels, 0, "neighbours", 0.4, seed=0, quota={"x": 0, "y": 60}, emb=emb, neighbours=2)
    for a, group in plan.groupby("a"):
        same = [j for j in range(15) if labels[j] == "y" and j != a]
        near = sorted(same, key=lambda j: -float(emb[a] @ emb[j]))[: len(group)]
        assert sorted(group.b) == sorted(near)  # 5 uses: its 5 nearest, each once (k=2 is only the floor)
    many = ["x"] * 2 + ["y"] * 80
    plan = plan_pairs(many, 0, "boundary", 0.4, 0, quota={"x": 200}, emb=_emb(82, seed=5), proba=lambda h: h[:, :2])
    for _, group in plan.groupby("a"):  # 100 uses, at most SPREAD_PARTNERS partners, each twice
        assert Counter(Counter(group.b).values()) == {2: mixmod.SPREAD_PARTNERS}


def test_transfer_lays_a_donor_s_offset_from_its_class_mean_on_a():
    labels = ["t"] * 3 + ["h"] * 8 + ["g"] * 4
    emb = _emb(15, seed=3)
    plan = plan_pairs(labels, 0, "transfer", 0.4, seed=2, quota={"t": 11, "h": 0, "g": 0})
    assert all(labels[a] == "t" and labels[b] != "t" for a, b in zip(plan.a, plan.b))
    assert len(set(plan.b)) == 11 and plan.lam.between(0, 0.5).all()  # 12 donors: none twice in 11 rows
    centres = mixmod.class_centres(emb, labels)
    a, b, lam = plan.a.to_numpy(), plan.b.to_numpy(), plan.lam.to_numpy()
    got = mixmod.mix(emb, a, b, lam, renormalize=False, centre=centres(b))
    mean = {c: emb[[i for i, l in enumerate(labels) if l == c]].mean(axis=0) for c in set(labels)}
    want = emb[a] + (1 - lam)[:, None] * (emb[b] - np.stack([mean[labels[i]] for i in b]))
    assert np.allclose(got, want, atol=1e-5)
    with pytest.raises(MixaugError, match="--pairing transfer needs at least 2 classes"):
        plan_pairs(["t"] * 4, 2, "transfer", 0.4, 0)


def test_dry_run_announces_the_capped_plan_and_its_time_before_decoding(tmp_path, tiny_checkpoint):
    """--dry-run: rows per class under --max-per-row, the cap in force and an estimate, nothing written; a
    transfer plan previews (its centres need every row's embedding)."""
    rows = [{"text": f"common row {i}", "label": "big"} for i in range(12)]
    rows += [{"text": f"rare row {i}", "label": "small"} for i in range(2)]
    src = tmp_path / "t.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    for extra, small in (([], 10), (["--max-per-row", "2"], 4), (["--pairing", "transfer"], 10)):
        args = ["augment", str(src), "--dry-run", "--balance", "equal", "--checkpoint", str(tiny_checkpoint)]
        r = CliRunner().invoke(app, [*args, *extra, "--max-new-tokens", "4"])
        assert r.exit_code == 0, r.output
        plan = json.loads(r.stderr)
        assert plan["balance"] == [{"label": "big", "new_rows": 0}, {"label": "small", "new_rows": small}]
        assert plan["max_per_row"] == (2 if extra[:1] == ["--max-per-row"] else 5)
        assert plan["planned"] == small and plan["estimated_seconds"] >= 0 and len(plan["samples"]) == min(5, small)
    assert not list(tmp_path.glob("*.jsonl"))[1:]  # the input alone
