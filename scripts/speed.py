"""Throughput of `mixaug augment` on one file, with what it is compared against, in one run.

    python scripts/speed.py INPUT [--paraphrase] [--json OUT] [-- AUGMENT OPTIONS...]

1. `mixaug augment INPUT` at defaults as a fresh process (model load included; decode cache off): wall
   seconds, new rows/s end to end, peak RSS, and the run's own decode figures (--stats-json).
2. The decode ceiling at the same batch size and precision: a plain KV-cached greedy loop over one full
   batch of INPUT's rows, each running as many tokens as the run's rows did on average.
3. With --paraphrase: prompt paraphrasing of the same number of rows with the same LM (the bench's
   `paraphrase` baseline, greedy, same batch size), new rows/s.
Run it on an idle machine: a second CPU-heavy process makes every number false.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    args, extra = parse()
    with tempfile.TemporaryDirectory() as tmp:
        out, stats_path = Path(tmp) / "out.jsonl", Path(tmp) / "stats.json"
        mixaug = str(Path(sys.executable).with_name("mixaug"))  # the venv's console script
        command = [mixaug, "augment", args.input, "-o", str(out), "-q"]
        command += ["--stats-json", str(stats_path), *extra]
        env = dict(os.environ, MIXAUG_NO_DECODE_CACHE="1")
        started = time.perf_counter()
        subprocess.run(command, check=True, env=env)
        wall = time.perf_counter() - started
        stats = json.loads(stats_path.read_text())
    rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    decode = stats["decode"]
    report = {
        "input": args.input,
        "new_rows": stats["new_rows"],
        "wall_seconds": round(wall, 1),
        "new_rows_per_s_end_to_end": round(stats["new_rows"] / wall, 2),
        "pipeline_seconds": stats["seconds"],
        "peak_rss_mb": round(rss_mb),
        "decode": decode,
    }

    from mixaug.io import read_dataset, resolve_text_column
    from mixaug.pipeline import load_stack

    df = read_dataset(args.input)
    texts = df[resolve_text_column(df, None)].tolist()
    stack = load_stack(None, "cpu", decode["precision"])
    rows = stack.encoder.encode(texts[: decode["batch_size"]])
    mean_tokens = decode["tokens"] / max(decode["rows"], 1)
    top = stack.inverter.decode_ceiling(rows, round(mean_tokens), decode["batch_size"])
    report["decode_ceiling_tokens_per_s"] = round(top, 1)
    report["useful_to_ceiling"] = round(decode["tokens_per_s"] / top, 3)

    if args.paraphrase:
        from mixaug.baselines import paraphrase
        from mixaug.models import DEFAULT_LM, load_lm

        lm, tokenizer, _ = load_lm(DEFAULT_LM, "cpu")
        n = stats["new_rows"]
        started = time.perf_counter()
        paraphrase(texts, [0] * len(texts), n, 0, lm, tokenizer, batch_size=decode["batch_size"])
        para = n / (time.perf_counter() - started)
        report["paraphrase_new_rows_per_s"] = round(para, 2)
        report["mixaug_pipeline_to_paraphrase"] = round(stats["new_rows"] / stats["seconds"] / para, 2)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


def parse() -> tuple[argparse.Namespace, list[str]]:
    argv = sys.argv[1:]
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input")
    parser.add_argument("--paraphrase", action="store_true", help="also time the paraphrase baseline")
    parser.add_argument("--json", help="also write the report here")
    return parser.parse_args(argv), extra


if __name__ == "__main__":
    main()
