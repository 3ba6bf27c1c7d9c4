"""How well checkpoints decode *mixed* embeddings (the stage-3 measurement; see docs/checkpoint.md, "Stage 3").

For random pairs of held-out sentences and λ ∈ {0.3, 0.5, 0.7}, each checkpoint decodes the renormalised
mixture greedily. Reported per λ: fidelity (cosine of the re-encoded decode to the mixture), cosine to
each parent, fluency (mean per-token negative log-likelihood of the decode under the plain LM, no soft
prompt; lower = more fluent; the held-out sentences themselves are the reference), the share of decodes that
copy a parent (token-F1 ≥ 0.8) and mean length. The held-out sentences are also decoded unmixed
(cosine, token-F1).

    python scripts/mixed_fidelity.py build/corpus/heldout.jsonl --pairs 60 --out build/s3/mixed.json \\
        build/s3/control/checkpoint build/s3/noise/checkpoint
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time

import numpy as np
import torch

from mixaug.encode import cosine_rows, load_encoder
from mixaug.inversion.invert import load_inverter
from mixaug.inversion.models import load_lm
from mixaug.metrics import reconstruction_report, token_f1
from mixaug.mix import mix

LAMS = (0.3, 0.5, 0.7)


@torch.inference_mode()
def mean_nll(lm, tokenizer, texts: list[str], batch_size: int = 32) -> np.ndarray:
    """Per-text mean token NLL under the plain LM, after a start token (nan for an empty text)."""
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    out = np.full(len(texts), np.nan)
    for i in range(0, len(texts), batch_size):
        chunk = texts[i : i + batch_size]
        ids = [[start] + tokenizer(t, add_special_tokens=False)["input_ids"] for t in chunk]
        width = max(len(x) for x in ids)
        x = torch.tensor([s + [start] * (width - len(s)) for s in ids])
        mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in ids])
        logp = torch.log_softmax(lm(input_ids=x, attention_mask=mask).logits[:, :-1].float(), -1)
        tok_lp = logp.gather(-1, x[:, 1:, None])[..., 0] * mask[:, 1:]
        n = mask[:, 1:].sum(1)
        for j, (s, k) in enumerate(zip(tok_lp.sum(1), n)):
            if k > 0:
                out[i + j] = float(-s / k)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("heldout")
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--pairs", type=int, default=60)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    texts = [json.loads(line)["text"] for line in open(args.heldout, encoding="utf-8")]
    rng = random.Random(0)
    pairs = [rng.sample(range(len(texts)), 2) for _ in range(args.pairs)]
    encoder = load_encoder(None)
    emb = encoder.encode(texts)
    a = np.array([p[0] for p in pairs]).repeat(len(LAMS))
    b = np.array([p[1] for p in pairs]).repeat(len(LAMS))
    lam = np.tile(np.array(LAMS), len(pairs))
    targets = mix(emb, a, b, lam)
    lm, tokenizer, _ = load_lm(None)
    lm.eval()
    ref_nll = mean_nll(lm, tokenizer, texts)
    result = {
        "heldout": args.heldout,
        "pairs": args.pairs,
        "reference_nll": round(float(np.nanmean(ref_nll)), 4),
        "checkpoints": {},
    }
    for ckpt in args.checkpoints:
        t0 = time.time()
        inverter = load_inverter(ckpt)
        clean = inverter.decode(emb)
        mixed = inverter.decode(targets)
        clean_emb, mixed_emb = encoder.encode(clean), encoder.encode(mixed)
        nll = mean_nll(lm, tokenizer, mixed)
        fid = cosine_rows(mixed_emb, targets)
        cos_a, cos_b = cosine_rows(mixed_emb, emb[a]), cosine_rows(mixed_emb, emb[b])
        copies = np.array([max(token_f1(texts[i], t), token_f1(texts[j], t)) >= 0.8 for i, j, t in zip(a, b, mixed)])
        words = np.array([len(t.split()) for t in mixed])
        round_trip = reconstruction_report(texts, clean, cosine_rows(clean_emb, emb))
        row = {
            "clean": {
                **{k: round_trip[k] for k in ("cosine", "token_f1")},
                "nll": round(float(np.nanmean(mean_nll(lm, tokenizer, clean))), 4),
            },
            "by_lambda": {},
            "seconds": None,
            "examples": [[texts[i], texts[j], float(l), t] for i, j, l, t in list(zip(a, b, lam, mixed))[:9]],
        }
        for value in LAMS:
            m = lam == value
            row["by_lambda"][str(value)] = {
                "fidelity": round(float(fid[m].mean()), 4),
                "cos_a": round(float(cos_a[m].mean()), 4),
                "cos_b": round(float(cos_b[m].mean()), 4),
                "nll": round(float(np.nanmean(nll[m])), 4),
                "copy_rate": round(float(copies[m].mean()), 4),
                "words": round(float(words[m].mean()), 2),
                "empty": int(np.isnan(nll[m]).sum()),
            }
        row["mixed"] = {
            "fidelity": round(float(fid.mean()), 4),
            "nll": round(float(np.nanmean(nll)), 4),
            "copy_rate": round(float(copies.mean()), 4),
        }
        row["seconds"] = round(time.time() - t0, 1)
        result["checkpoints"][ckpt] = row
        print(f"{ckpt}: {json.dumps({k: row[k] for k in ('clean', 'mixed', 'seconds')})}", file=sys.stderr)
        del inverter
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=2, ensure_ascii=False)
    print(
        f"| checkpoint | clean cos | clean F1 | mixed fidelity | λ=.3/.5/.7 fidelity | mixed NLL (ref {result['reference_nll']}) | copy rate |"
    )
    print("|---|---|---|---|---|---|---|")
    for ckpt, row in result["checkpoints"].items():
        by = row["by_lambda"]
        print(
            f"| {ckpt} | {row['clean']['cosine']:.3f} | {row['clean']['token_f1']:.3f} | {row['mixed']['fidelity']:.3f} | "
            + "/".join(f"{by[str(v)]['fidelity']:.3f}" for v in LAMS)
            + f" | {row['mixed']['nll']:.2f} | {row['mixed']['copy_rate']:.2f} |"
        )


if __name__ == "__main__":
    main()
