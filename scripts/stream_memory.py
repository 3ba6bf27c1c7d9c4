"""Peak memory of a whole-table run against a streamed run on one large JSONL file.

    python scripts/stream_memory.py [--rows 10000] [--blob-kb 150] [-n 32] [--json OUT]

Writes ROWS rows (short sentences from examples/intents.jsonl, plus a `blob` column of BLOB_KB KB each,
standing for the columns a real dataset carries through) to build/stream-memory/big.jsonl, then runs
each arm in its own process at the defaults with `-n` new rows: `pipeline.augment` + `data.write.write_dataset`
(what `mixaug augment` does with the local engine) and `streamed.augment_file` (what `--engine ray` does,
here with the local engine so that one process holds everything). Reports peak RSS, wall time, and
whether the two outputs are identical.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARM = """
import resource, sys, time
from mixaug.config import AugmentConfig
arm, src, out, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
cfg = AugmentConfig(num_augmented=n, id_column="id")
t = time.time()
if arm == "whole":
    from mixaug.data.read import read_dataset
    from mixaug.data.write import write_dataset
    from mixaug.pipeline import augment
    write_dataset(augment(read_dataset(src), cfg), out, overwrite=True)
else:
    from mixaug.streamed import augment_streamed
    augment_streamed(src, out, cfg, overwrite=True)
print(time.time() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10000)
    ap.add_argument("--blob-kb", type=int, default=150)
    ap.add_argument("-n", type=int, default=32)
    ap.add_argument("--json")
    ap.add_argument("--arms", default="whole,streamed", help="which runs (comma-separated)")
    args = ap.parse_args()
    folder = ROOT / "build" / "stream-memory"
    folder.mkdir(parents=True, exist_ok=True)
    big = folder / "big.jsonl"
    seed_rows = [json.loads(line) for line in (ROOT / "examples" / "intents.jsonl").read_text().splitlines()]
    with big.open("w") as fh:
        for i in range(args.rows):
            row = seed_rows[i % len(seed_rows)]
            blob = hashlib.sha256(str(i).encode()).hexdigest() * (args.blob_kb * 1024 // 64)
            fh.write(json.dumps({"id": i, "text": f"{row['text']} ({i})", "label": row["label"], "blob": blob}) + "\n")
    size = big.stat().st_size
    print(f"input: {args.rows} rows, {size / 2**30:.2f} GiB", file=sys.stderr)
    result = {"rows": args.rows, "input_bytes": size, "new_rows": args.n}
    arms = args.arms.split(",")
    for arm in arms:
        out = folder / f"{arm}.jsonl"
        t = time.time()
        line = subprocess.run(
            [sys.executable, "-c", ARM, arm, str(big), str(out), str(args.n)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        result[arm] = {"seconds": round(float(line[0]), 1), "peak_rss_gib": round(int(line[1]) / 2**20, 2)}
        result[arm]["wall_s"] = round(time.time() - t, 1)
        print(arm, result[arm], file=sys.stderr)
    if len(arms) == 2:
        result["identical"] = (folder / "whole.jsonl").read_bytes() == (folder / "streamed.jsonl").read_bytes()
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
