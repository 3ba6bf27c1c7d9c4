"""Where does int8 lose (issue 22), and what restores fp32's fidelity? Per style (the six of scripts/speed.py
--fidelity: questions, reviews, messages, speeches, news, long), the fidelity (cosine of the re-encoded
decode to the text's own embedding) of fp32 and of int8 variants; paired differences from fp32 with their
standard errors, and the share of texts decoded word for word as fp32. Greedy, the default checkpoint,
decode cache off, N texts per style from bench/data (make bench-data). Variants are built by patching the
int8 path here, so only the variant changes between runs.

    python scripts/int8_probe.py 150 [VARIANT ...]   # results as JSON lines on stdout
"""

import json
import os
import sys
import time

os.environ["MIXAUG_NO_DECODE_CACHE"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
import importlib  # noqa: E402

from speed import style_texts  # noqa: E402

from mixaug import pipeline, stacks  # noqa: E402
from mixaug.inversion import decode, quantize  # noqa: E402

invert = importlib.import_module("mixaug.inversion.invert")

N = int(sys.argv[1]) if len(sys.argv) > 1 else 40
styles = style_texts(N, Path("bench/data"))
texts = [t for v in styles.values() for t in v]
style_of = np.array([s for s, v in styles.items() for _ in v])
orig = {
    "fused": decode._fused_layer,
    "linear": decode._linear,
    "calib": invert.Inverter._calibration_inputs,
    "outliers": quantize.OUTLIER_CHANNELS,
    "alpha": quantize.SMOOTH_ALPHA,
}


class PromptFp32:
    """int8 for one-token decode steps, fp32 for passes over several positions (the prompt's prefill)."""

    def __init__(self, weight, act_max=None):
        self.int8 = quantize.Int8Linear(weight, act_max)
        self.weight = weight.detach()

    def __call__(self, x):
        if x.dim() == 3 and x.shape[1] > 1:
            return F.linear(x, self.weight)
        return self.int8(x)


class WeightOnly:
    """Weights rounded as int8 per output channel, activations and arithmetic fp32: the floor any int8 weights set."""

    def __init__(self, weight):
        w = weight.detach().float()
        scale = (w.abs().amax(dim=1, keepdim=True) / 127).clamp_min(1e-12)
        self.weight = torch.round(w / scale).clamp(-127, 127) * scale

    def __call__(self, x):
        return F.linear(x, self.weight)


def soft_calibration(self):
    """Calibrate on the real prompt: the soft vectors of each calibration text's own embedding."""
    stack = stacks._STACKS[next(iter(stacks._STACKS))]
    emb = stack.encoder.encode(list(quantize.CALIBRATION_TEXTS))
    soft = self.soft_prompts(emb)
    inputs = []
    for text, s in zip(quantize.CALIBRATION_TEXTS, soft):
        ids = self.tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"][0]
        inputs.append(
            torch.cat(
                [
                    self.embed_tokens(self.prefix_ids),
                    s.to(torch.float32),
                    self.embed_tokens(self.suffix_ids),
                    self.embed_tokens(ids),
                ]
            )
        )
    return inputs


def keep_fp32(kinds=(), layers=()):
    def fused(layer, precision, act_max=None):
        i, seen, out = layer.self_attn.layer_idx, act_max or {}, []
        for w, kind in zip(decode.fused_weights(layer), quantize.PROJECTIONS):
            p = "fp32" if (kind in kinds or i in layers) else precision
            out.append(orig["linear"](w, p, seen.get((i, kind)) if p == "int8" else None))
        return (layer, *out)

    return fused


def setup(name):
    decode._fused_layer, decode._linear = orig["fused"], orig["linear"]
    invert.Inverter._calibration_inputs = orig["calib"]
    quantize.OUTLIER_CHANNELS = orig["outliers"]
    quantize.smoothing.__defaults__ = (orig["alpha"],)
    for part in name.split("+"):
        if part.startswith("out"):
            quantize.OUTLIER_CHANNELS = int(part[3:])
        elif part.startswith("alpha"):
            quantize.smoothing.__defaults__ = (float(part[5:]),)
        elif part == "softcal":
            invert.Inverter._calibration_inputs = soft_calibration
        elif part == "weightonly":
            decode._linear = lambda w, p, a=None: WeightOnly(w) if p == "int8" else orig["linear"](w, p, a)
        elif part == "prompt32":
            decode._linear = lambda w, p, a=None: PromptFp32(w, a) if p == "int8" else orig["linear"](w, p, a)
        elif part.startswith("fp32"):
            kind = part[4:]
            if kind.startswith("L"):
                lo, hi = map(int, kind[1:].split("-"))
                decode._fused_layer = keep_fp32(layers=range(lo, hi + 1))
            else:
                decode._fused_layer = keep_fp32(kinds=tuple(kind.split(",")))
        elif part != "int8":
            raise SystemExit(f"unknown variant part {part}")


def run(precision, name="int8"):
    stacks._STACKS.clear()  # a fresh stack: its weights and its in-memory decode cache are the variant's
    setup(name)
    t = time.time()
    out = pipeline.invert(pd.DataFrame({"text": texts}), "text", None, "cpu", precision=precision)
    return out["reconstruction"].tolist(), out["fidelity"].to_numpy(float), time.time() - t


def hazard(texts, base):
    """Words at which a variant's greedy decode first leaves fp32's, per word decoded alike before it: a
    per-step divergence rate, much less noisy than the fidelity difference it causes."""
    diverged = matched = 0
    for a, b in zip(texts, base):
        wa, wb = a.split(), b.split()
        same = next((i for i, (x, y) in enumerate(zip(wa, wb)) if x != y), min(len(wa), len(wb)))
        matched += same
        diverged += wa != wb
    return diverged / max(matched + diverged, 1)


base_txt, base_fid, base_t = run("fp32", "int8")
print(
    json.dumps(
        {
            "variant": "fp32",
            "seconds": round(base_t, 1),
            **{s: round(float(base_fid[style_of == s].mean()), 4) for s in styles},
        }
    ),
    flush=True,
)
for name in sys.argv[2:] or ["int8"]:
    txt, fid, secs = run("int8", name)
    row = {"variant": name, "seconds": round(secs, 1)}
    for s in [*styles, "all"]:
        m = np.ones(len(texts), bool) if s == "all" else style_of == s
        d = fid[m] - base_fid[m]
        same = np.mean([a == b for a, b, k in zip(txt, base_txt, m) if k])
        row[s] = f"{d.mean():+.4f}±{d.std(ddof=1) / np.sqrt(m.sum()):.4f} ({same:.0%})"
    row["divergence_per_word"] = round(hazard(txt, base_txt), 4)
    print(json.dumps(row), flush=True)
