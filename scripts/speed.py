"""Throughput of `mixaug augment` on one file, with what it is compared against, in one run.

    python scripts/speed.py INPUT [--cold] [--fp32] [--paraphrase] [--fidelity N] [--json OUT] [-- AUGMENT OPTIONS...]

1. `mixaug augment INPUT` at defaults as a fresh process (model load included; decode cache off): wall
   seconds, new rows/s end to end, peak RSS, and the run's own decode figures (--stats-json). With --cold,
   first as a first run on the machine (int8's calibration file removed, so the run measures it), then
   again as every later run does (the calibration read from the cache).
2. With --fp32: the same with `--precision fp32` appended, as a second fresh process.
3. The decode ceiling at the same batch size and precision: a plain KV-cached greedy loop over one full
   batch of INPUT's rows, each running as many tokens as the run's rows did on average.
4. With --paraphrase: prompt paraphrasing of the same number of rows with the same LM (the bench's
   `paraphrase` baseline, greedy, same batch size), new rows/s.
5. With --fidelity N: the default precision against fp32, per style, on N texts of each (seeded, from
   bench/data, `make bench-data`): questions (TREC test), reviews (movie test), messages (SMS test),
   speeches (politics test), news (NYT editorial sentences of 20-34 words), long (35 words or more,
   news and speeches) and headlines (the Guardian's, British business news of 2020). `mixaug invert` round trips, greedy, cache off: fidelity = cosine of the re-encoded
   decode to the text's own embedding; paired difference (default - fp32) +- its standard error, and the
   share of texts decoded word for word as fp32 decodes them.
Run it on an idle machine: a second CPU-heavy process makes every number false.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STYLE_SOURCES = {"questions": "trec", "reviews": "movies", "messages": "sms", "speeches": "politics"}


def main() -> None:
    args, extra = parse()
    report = {"input": args.input}
    if args.cold:  # int8's calibration measured in the run (a first run on a machine), then read back (warm)
        from mixaug.inversion.calibration import calibration_file
        from mixaug.stacks import checkpoint_path

        cached = calibration_file(checkpoint_path(None), "cpu")
        if cached is not None:
            cached.path.unlink(missing_ok=True)
        report["default_cold"] = run_augment(args.input, extra)
    report["default"] = run_augment(args.input, extra)
    if args.fp32:
        report["fp32"] = run_augment(args.input, [*extra, "--precision", "fp32"])
        report["default_to_fp32"] = round(
            report["default"]["new_rows_per_s_end_to_end"] / report["fp32"]["new_rows_per_s_end_to_end"], 2
        )
    decode = report["default"]["decode"]

    from mixaug.data.columns import resolve_text_column
    from mixaug.data.read import read_dataset
    from mixaug.stacks import load_stack

    df = read_dataset(args.input)
    texts = df[resolve_text_column(df, None)].tolist()
    stack = load_stack(None, "cpu", decode["precision"])
    rows = stack.encoder.encode(texts[: decode["batch_size"]])
    mean_tokens = decode["tokens"] / max(decode["rows"], 1)
    top = stack.inverter.decode_ceiling(rows, round(mean_tokens), decode["batch_size"])
    report["decode_ceiling_tokens_per_s"] = round(top, 1)
    report["useful_to_ceiling"] = round(decode["tokens_per_s"] / top, 3)

    if args.paraphrase:
        from mixaug.evaluation.baselines import paraphrase
        from mixaug.inversion.models import DEFAULT_LM, load_lm

        lm, tokenizer, _ = load_lm(DEFAULT_LM, "cpu")
        n = report["default"]["new_rows"]
        started = time.perf_counter()
        paraphrase(texts, [0] * len(texts), n, 0, lm, tokenizer, batch_size=decode["batch_size"])
        para = n / (time.perf_counter() - started)
        report["paraphrase_new_rows_per_s"] = round(para, 2)
        report["mixaug_pipeline_to_paraphrase"] = round(n / report["default"]["pipeline_seconds"] / para, 2)
    if args.fidelity:
        report["fidelity"] = fidelity_by_style(args.fidelity, args.data, decode["precision"])
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


def run_augment(path: str, extra: list[str]) -> dict:
    """`mixaug augment` as a fresh process: wall clock, rows/s, its own peak RSS, its decode figures."""
    with tempfile.TemporaryDirectory() as tmp:
        out, stats_path = Path(tmp) / "out.jsonl", Path(tmp) / "stats.json"
        mixaug = str(Path(sys.executable).with_name("mixaug"))  # the venv's console script
        command = [mixaug, "augment", path, "-o", str(out), "-q", "--stats-json", str(stats_path), *extra]
        started = time.perf_counter()
        child = subprocess.Popen(command, env=dict(os.environ, MIXAUG_NO_DECODE_CACHE="1"))
        _, status, usage = os.wait4(child.pid, 0)  # this child's own peak RSS, not the largest so far
        wall = time.perf_counter() - started
        code = os.waitstatus_to_exitcode(status)
        if code:
            sys.exit(f"error: {' '.join(command)} exited {code}")
        stats = json.loads(stats_path.read_text())
    return {
        "options": extra,
        "new_rows": stats["new_rows"],
        "wall_seconds": round(wall, 1),
        "new_rows_per_s_end_to_end": round(stats["new_rows"] / wall, 2),
        "pipeline_seconds": stats["seconds"],
        "peak_rss_mb": round(usage.ru_maxrss / 1024),
        "decode": stats["decode"],
    }


def style_texts(n: int, data: Path) -> dict[str, list[str]]:
    import numpy as np

    def read(name: str) -> list[str]:
        path = data / name
        if not path.exists():
            sys.exit(f"error: {path} is missing: make bench-data")
        return [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line]

    pools = {style: read(f"{source}.test.jsonl") for style, source in STYLE_SOURCES.items()}
    news = read("news.jsonl")
    pools["news"] = [t for t in news if 20 <= len(t.split()) < 35]
    pools["long"] = [t for t in news + pools["speeches"] if len(t.split()) >= 35]
    pools["headlines"] = read("headlines.jsonl")
    rng = np.random.default_rng(0)
    return {k: [v[i] for i in rng.choice(len(v), min(n, len(v)), replace=False)] for k, v in pools.items()}


def fidelity_by_style(n: int, data: Path, precision: str) -> dict:
    """Each style's paired fidelity difference of `precision` from fp32 (one process, one after the other)."""
    os.environ["MIXAUG_NO_DECODE_CACHE"] = "1"
    import numpy as np
    import pandas as pd

    from mixaug import pipeline

    styles = style_texts(n, data)
    texts = [t for v in styles.values() for t in v]
    style_of = np.array([s for s, v in styles.items() for _ in v])
    runs = {}
    for p in ("fp32", precision):
        started = time.perf_counter()
        out = pipeline.invert(pd.DataFrame({"text": texts}), "text", None, "cpu", precision=p)
        runs[p] = (out["reconstruction"].tolist(), out["fidelity"].to_numpy(float), time.perf_counter() - started)
    (base_text, base, base_s), (text, fid, secs) = runs["fp32"], runs[precision]
    result = {
        "precision": precision,
        "texts_per_style": n,
        "seconds": {"fp32": round(base_s, 1), precision: round(secs, 1)},
    }
    for style in [*styles, "all"]:
        m = np.ones(len(texts), bool) if style == "all" else style_of == style
        d = fid[m] - base[m]
        result[style] = {
            "fp32": round(float(base[m].mean()), 4),
            precision: round(float(fid[m].mean()), 4),
            "difference": round(float(d.mean()), 4),
            "se": round(float(d.std(ddof=1) / np.sqrt(m.sum())), 4),
            "identical": round(float(np.mean([a == b for a, b, k in zip(text, base_text, m) if k])), 3),
        }
    return result


def parse() -> tuple[argparse.Namespace, list[str]]:
    argv = sys.argv[1:]
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input")
    parser.add_argument("--fp32", action="store_true", help="also time the same run with --precision fp32")
    parser.add_argument("--paraphrase", action="store_true", help="also time the paraphrase baseline")
    parser.add_argument("--cold", action="store_true", help="also time a first run: int8 calibration not cached")
    parser.add_argument("--fidelity", type=int, default=0, metavar="N", help="N texts per style: default vs fp32")
    parser.add_argument("--data", type=Path, default=Path("bench/data"), help="where make bench-data wrote")
    parser.add_argument("--json", help="also write the report here")
    return parser.parse_args(argv), extra


if __name__ == "__main__":
    main()
