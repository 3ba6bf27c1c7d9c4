"""`--balance` at a user's scale, timed as a user runs it: a two-class file of HEAD/TAIL rows cut from a bench
dataset, then `mixaug augment --balance RATIO` and a plain `mixaug augment -n N` (the same number of new
rows, `--pairing intra`) one after the other, each its own process under /usr/bin/time: wall seconds, peak
RSS, rows/s, and the share of decodes rejected as duplicates (from --stats-json). Time it on a quiet machine:
another CPU-heavy job on the two cores makes both runs several times slower.

    python scripts/balance_speed.py bench/data/movies.train.jsonl --head 4000 --tail 200 --balance 0.5
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd


def run(args: list[str], stats: Path) -> dict:
    cmd = ["/usr/bin/time", "-f", "%M %e", str(Path(sys.executable).parent / "mixaug"), "augment", *args, "-q"]
    done = subprocess.run([*cmd, "--stats-json", str(stats), "--overwrite"], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr[-2000:])
    rss_kb, wall = done.stderr.strip().splitlines()[-1].split()
    s = json.loads(stats.read_text())
    decoded = s["decode"]["rows"]
    return {
        "new_rows": s["new_rows"],
        "requested": s["requested"],
        "decoded": decoded,
        "duplicates": s["rejected"].get("duplicate", 0),
        "duplicate_share": round(s["rejected"].get("duplicate", 0) / max(decoded, 1), 3),
        "rows_per_s": s["rows_per_s"],
        "wall_s": float(wall),
        "peak_rss_mb": round(int(rss_kb) / 1024),
        "pairing": s["pairing"],
        "max_per_row": s.get("max_per_row"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("train")
    ap.add_argument("--head", type=int, default=4000)
    ap.add_argument("--tail", type=int, default=200)
    ap.add_argument("--balance", default="0.5")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--extra", default="", help="more augment options for the --balance run, space-separated")
    a = ap.parse_args()
    df = pd.read_json(a.train, lines=True)[["text", "label"]]
    big, small = df["label"].value_counts().index[:2]
    data = pd.concat(
        [
            df[df["label"] == big].sample(n=a.head, random_state=a.seed),
            df[df["label"] == small].sample(n=a.tail, random_state=a.seed),
        ]
    ).sample(frac=1, random_state=a.seed)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in.jsonl"
        data.to_json(src, orient="records", lines=True, force_ascii=False)
        balanced = run([str(src), "-o", f"{tmp}/b.jsonl", "--balance", a.balance, *a.extra.split()], Path(tmp) / "b")
        plain = ["-n", str(balanced["requested"]), "--pairing", "intra"]
        plain_run = run([str(src), "-o", f"{tmp}/p.jsonl", *plain], Path(tmp) / "p")
    out = {
        "file": f"{a.train} {a.head}/{a.tail}",
        "balance": balanced,
        "plain": plain_run,
        "balance_rows_per_s_share": round(balanced["rows_per_s"] / plain_run["rows_per_s"], 3),
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
