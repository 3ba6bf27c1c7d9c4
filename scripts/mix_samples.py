"""Print decoded mixtures of random held-out sentence pairs at λ = 0.3, 0.5, 0.7 as a Markdown table.

python scripts/mix_samples.py build/corpus/heldout.jsonl 7
"""

import json
import random
import sys

from mixaug.pipeline import mix_texts

rows = [json.loads(l)["text"] for l in open(sys.argv[1], encoding="utf-8")]
pairs = int(sys.argv[2]) if len(sys.argv) > 2 else 7
rng = random.Random(0)
print("| a | b | λ | decoded |\n|---|---|---|---|")
for _ in range(pairs):
    a, b = rng.sample(rows, 2)
    for r in mix_texts(a, b, [0.3, 0.5, 0.7]):
        print(f"| {a} | {b} | {r['lambda']} | {r['text']} |".replace("\n", " "))
