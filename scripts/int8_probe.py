"""Where does int8 lose (issue 22)? Per style, the fidelity (cosine of the re-encoded decode to the text's own
embedding) of fp32, of int8, and of int8 with one group of projections kept in fp32; paired differences from
fp32 with their standard errors, and the share of texts decoded identically. Greedy, the default checkpoint,
decode cache off, N test texts per style from bench/data (make bench-data).

    python scripts/int8_probe.py 150      # ~6 minutes on 2 cores; results: bench/results/int8/
"""

import json
import os
import sys
import time

os.environ["MIXAUG_NO_DECODE_CACHE"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"
import numpy as np
import pandas as pd

from mixaug import decode, pipeline

N = int(sys.argv[1]) if len(sys.argv) > 1 else 40
styles = {}
for name in ("trec", "movies", "sms", "politics"):
    rows = [json.loads(l) for l in open(f"bench/data/{name}.test.jsonl")]
    rng = np.random.default_rng(0)
    idx = rng.choice(len(rows), N, replace=False)
    styles[name] = [rows[i]["text"] for i in idx]
texts = [t for v in styles.values() for t in v]
style_of = [s for s, v in styles.items() for _ in v]
orig_fused, orig_linear = decode._fused_layer, decode._linear


def variant(keep=(), layers=(), head=False):
    def fused(layer, precision):
        idx = layer.self_attn.layer_idx
        attn, mlp = layer.self_attn, layer.mlp
        import torch

        qkv = torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight])
        gate_up = torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight])
        p = lambda kind: "fp32" if (kind in keep or idx in layers) else precision
        return (
            layer,
            orig_linear(qkv, p("qkv")),
            orig_linear(attn.o_proj.weight, p("o")),
            orig_linear(gate_up, p("gate_up")),
            orig_linear(mlp.down_proj.weight, p("down")),
        )

    return fused, head


VARIANTS = {
    "int8": variant(),
    "fp32 qkv": variant(keep=("qkv",)),
    "fp32 o": variant(keep=("o",)),
    "fp32 gate_up": variant(keep=("gate_up",)),
    "fp32 down": variant(keep=("down",)),
    "fp32 layers 0-2": variant(layers=(0, 1, 2)),
    "fp32 layers 27-29": variant(layers=(27, 28, 29)),
    "fp32 head": variant(head=True),
}


def run(precision, fused=None, head=False):
    pipeline._STACKS.clear()
    decode._fused_layer = fused or orig_fused
    if head:
        decode._linear = lambda w, p: orig_linear(w, "fp32" if w.shape[0] > 40000 else p)
    else:
        decode._linear = orig_linear
    t = time.time()
    out = pipeline.invert(pd.DataFrame({"text": texts}), "text", None, "cpu", 64, 1, precision=precision)
    decode._fused_layer, decode._linear = orig_fused, orig_linear
    return out["reconstruction"].tolist(), out["fidelity"].to_numpy(float), time.time() - t


base_txt, base_fid, base_t = run("fp32")
print(
    f"fp32: {base_t:.0f}s",
    {s: round(float(base_fid[[x == s for x in style_of]].mean()), 4) for s in styles},
    flush=True,
)
for name, (fused, head) in VARIANTS.items():
    txt, fid, secs = run("int8", fused, head)
    d = fid - base_fid
    per = {}
    for s in styles:
        m = np.array([x == s for x in style_of])
        dd = d[m]
        per[s] = (
            f"{dd.mean():+.4f}±{dd.std(ddof=1) / np.sqrt(m.sum()):.4f} same {np.mean([a == b for a, b, k in zip(txt, base_txt, m) if k]):.2f}"
        )
    print(
        f"{name} ({secs:.0f}s): all {d.mean():+.4f}±{d.std(ddof=1) / np.sqrt(len(d)):.4f} | "
        + " | ".join(f"{s} {v}" for s, v in per.items()),
        flush=True,
    )
