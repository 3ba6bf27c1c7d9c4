"""Probe: a vec2text-style corrector on top of the shipped inverter (issue 9, arm 2). Not a product feature:
it records how the measured arm was built, so the number in docs/checkpoint.md can be reproduced.

The corrector is the inverter with two more inputs: its soft vectors are adaptor(e) + delta([e, ê, e − ê])
(delta a new MLP whose last layer starts at zero, so at step 0 they are the inverter's), and the hypothesis'
tokens (left-padded to 24 with <|endoftext|>, all attended) follow them in the prompt. Trained (adaptor, LoRA and delta) on the inverter's own greedy
hypotheses for corpus sentences: loss = −log P(x | prompt(e, ê, hypothesis)). At decode time one step
rewrites each hypothesis; the closer of hypothesis and rewrite (by re-encoded cosine) is kept.

    python scripts/corrector_probe.py data build/corpus/corpus.txt build/corr      # 6,000 hypotheses (~7 min)
    python scripts/corrector_probe.py train build/corr 420                         # 420 steps of 16 (~42 min)
    mixaug invert build/corpus/heldout.jsonl -o build/corr/h200.jsonl -q
    python scripts/corrector_probe.py eval build/corr build/corr/h200.jsonl build/corr/eval200.json
    python scripts/corrector_probe.py loss build/corr build/corr/h200.jsonl    # does it use the draft?
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from mixaug.encode import cosine_rows, load_encoder
from mixaug.inversion.checkpoint import Adaptor, validate_checkpoint
from mixaug.inversion.invert import Inverter, attach_lora
from mixaug.inversion.models import load_lm
from mixaug.metrics import reconstruction_report
from mixaug.training.loop import prompt_loss
from mixaug.training.train import _load_init

DEFAULT = Path(__file__).resolve().parents[1] / "mixaug" / "checkpoints" / "default"
HYP_LEN = 24
N_SENTENCES = 6000


class Delta(torch.nn.Module):
    """[e, ê, e − ê] -> a correction to the adaptor's K soft vectors (zero at start)."""

    def __init__(self, dim=384, hidden=512, k=8, out=576):
        super().__init__()
        self.k, self.out = k, out
        self.net = torch.nn.Sequential(
            torch.nn.Linear(3 * dim, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, k * out)
        )
        torch.nn.init.zeros_(self.net[2].weight)
        torch.nn.init.zeros_(self.net[2].bias)

    def forward(self, e, eh):
        return self.net(torch.cat([e, eh, e - eh], -1)).view(len(e), self.k, self.out)


def build():
    manifest = validate_checkpoint(DEFAULT)
    lm, tok, _ = load_lm(manifest.lm, "cpu", base=DEFAULT)
    adaptor = Adaptor.from_manifest(manifest)
    lm = attach_lora(lm, manifest)
    _load_init(str(DEFAULT), adaptor, lm)
    return Inverter(manifest, adaptor, lm, tok, "cpu"), Delta(), tok.convert_tokens_to_ids("<|endoftext|>")


def hyp_ids(tok, hyps, pad):
    out = torch.full((len(hyps), HYP_LEN), pad, dtype=torch.long)
    for i, h in enumerate(hyps):
        ids = tok(" " + h, add_special_tokens=False)["input_ids"][:HYP_LEN]
        if ids:
            out[i, HYP_LEN - len(ids) :] = torch.tensor(ids)
    return out


def rest(inv, delta, e, eh, hids):
    """The row-specific prompt: corrected soft vectors, hypothesis tokens, template suffix."""
    soft = inv.adaptor(e) + delta(e, eh)
    suf = inv.embed_tokens(inv.suffix_ids)[None].expand(len(e), -1, -1)
    return torch.cat([soft, inv.embed_tokens(hids).to(soft.dtype), suf.to(soft.dtype)], 1)


def loss_fn(inv, delta, e, eh, hids, targets, max_tokens=40):
    pre = inv.embed_tokens(inv.prefix_ids)[None].expand(len(e), -1, -1)
    return prompt_loss(inv, torch.cat([pre, rest(inv, delta, e, eh, hids)], 1), targets, max_tokens)


def trainable(inv, delta):
    p = {f"adaptor.{k}": v for k, v in inv.adaptor.named_parameters()}
    p.update({f"lm.{k}": v for k, v in inv.lm.named_parameters() if v.requires_grad})
    p.update({f"delta.{k}": v for k, v in delta.named_parameters()})
    return p


def make_data(corpus: str, folder: Path) -> None:
    """N_SENTENCES shuffled corpus sentences, the shipped default's greedy decode of each, both embeddings."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [line.strip() for line in open(corpus, encoding="utf-8") if line.strip()]
    random.Random(7).shuffle(lines)
    with open(folder / "src.jsonl", "w") as f:
        for t in lines[:N_SENTENCES]:
            f.write(json.dumps({"text": t}) + "\n")
    subprocess.run(
        ["mixaug", "invert", str(folder / "src.jsonl"), "-o", str(folder / "hyp.jsonl"), "-q", "--overwrite"],
        check=True,
    )
    rows = [json.loads(line) for line in open(folder / "hyp.jsonl")]
    enc = load_encoder(None)
    e = enc.encode([r["text"] for r in rows], batch_size=64)
    eh = enc.encode([r["reconstruction"] for r in rows], batch_size=64)
    np.save(folder / "emb.npy", np.stack([e, eh], 1))


def train(folder: Path, max_steps: int, lr: float = 5e-4, bs: int = 16) -> None:
    """Seeded batches; lr warms up over 10 steps and falls linearly to 0 at max_steps. Saves every 20 steps."""
    rows = [json.loads(line) for line in open(folder / "hyp.jsonl")]
    emb = np.load(folder / "emb.npy")
    torch.manual_seed(0)
    inv, delta, pad = build()
    params = trainable(inv, delta)
    opt = torch.optim.AdamW(list(params.values()), lr=lr, weight_decay=0.0)
    order = np.concatenate([np.random.default_rng(0).permutation(len(rows)) for _ in range(20)])
    started = time.time()
    for step in range(max_steps):
        idx = order[step * bs : (step + 1) * bs]
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (step + 1) / 10) * max(0.0, 1 - step / max_steps)
        hids = hyp_ids(inv.tokenizer, [rows[i]["reconstruction"] for i in idx], pad)
        loss = loss_fn(
            inv, delta, torch.tensor(emb[idx, 0]), torch.tensor(emb[idx, 1]), hids, [rows[i]["text"] for i in idx]
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        print(json.dumps({"step": step + 1, "loss": round(loss.item(), 4), "s": round(time.time() - started, 1)}))
        if (step + 1) % 20 == 0 or step + 1 == max_steps:
            save_file({k: v.detach().contiguous() for k, v in params.items()}, folder / "params.safetensors")


@torch.inference_mode()
def correct(inv, weights, delta, pad, enc, e, hyps):
    """One correction step for each row, through the decode engine (greedy)."""
    from mixaug.inversion.decode import DecodeOptions, generate

    et, eht = torch.tensor(e), torch.tensor(enc.encode(hyps, batch_size=64))
    hids = hyp_ids(inv.tokenizer, hyps, pad)

    def prompts(rows):
        return torch.cat([rest(inv, delta, et[i : i + 1], eht[i : i + 1], hids[i : i + 1]) for i in rows])

    toks = generate(
        weights, inv.embed_tokens, inv.embed_tokens(inv.prefix_ids), prompts, len(hyps), inv.eos_id,
        [0] * len(hyps), DecodeOptions(), slots=64,
    )  # fmt: skip
    return [inv.detokenize(t) for t in toks]


def evaluate(folder: Path, src: str, out: str, steps: int = 2) -> None:
    from mixaug.inversion.decode import LlamaWeights

    rows = [json.loads(line) for line in open(src)]
    inv, delta, pad = build()
    w = load_file(folder / "params.safetensors")
    with torch.no_grad():
        for k, v in trainable(inv, delta).items():
            v.copy_(w[k])
    inv.lm = inv.lm.merge_and_unload().eval()
    weights = LlamaWeights(inv.lm, "int8")
    enc = load_encoder(None)
    texts = [r["text"] for r in rows]
    e = enc.encode(texts, batch_size=64)
    cur = best = [r["reconstruction"] for r in rows]
    best_cos = cosine_rows(enc.encode(best), e)
    res = {"step0": reconstruction_report(texts, best, best_cos)}
    started = time.time()
    for s in range(1, steps + 1):
        cur = correct(inv, weights, delta, pad, enc, e, cur)
        c = cosine_rows(enc.encode(cur), e)
        res[f"step{s}"] = reconstruction_report(texts, cur, c)
        better = c > best_cos
        best = [cur[i] if better[i] else best[i] for i in range(len(best))]
        best_cos = np.where(better, c, best_cos)
        res[f"best_upto{s}"] = {
            **reconstruction_report(texts, best, best_cos),
            "seconds": round(time.time() - started, 1),
        }
        print(s, res[f"step{s}"], res[f"best_upto{s}"])
    Path(out).write_text(json.dumps(res, indent=1))


@torch.inference_mode()
def draft_value(folder: Path, src: str) -> None:
    """Mean loss on `src`'s rows: the inverter alone, the corrector with its draft, and with the draft blanked."""
    from mixaug.training.loop import lm_loss

    rows = [json.loads(line) for line in open(src)]
    enc = load_encoder(None)
    e = enc.encode([r["text"] for r in rows])
    eh = enc.encode([r["reconstruction"] for r in rows])
    inv, delta, pad = build()
    chunks = [slice(i, i + 20) for i in range(0, len(rows), 20)]

    def texts(c):
        return [r["text"] for r in rows[c]]

    out = {"inverter": np.mean([lm_loss(inv, inv.adaptor(torch.tensor(e[c])), texts(c), 40).item() for c in chunks])}
    w = load_file(folder / "params.safetensors")
    for k, v in trainable(inv, delta).items():
        v.copy_(w[k])
    for name, blank in (("corrector_with_draft", False), ("corrector_draft_blanked", True)):
        losses = []
        for c in chunks:
            hids = hyp_ids(inv.tokenizer, ["" if blank else r["reconstruction"] for r in rows[c]], pad)
            losses.append(loss_fn(inv, delta, torch.tensor(e[c]), torch.tensor(eh[c]), hids, texts(c)).item())
        out[name] = np.mean(losses)
    print(json.dumps({k: round(float(v), 4) for k, v in out.items()}))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "data":
        make_data(sys.argv[2], Path(sys.argv[3]))
    elif cmd == "train":
        train(Path(sys.argv[2]), int(sys.argv[3]))
    elif cmd == "eval":
        evaluate(Path(sys.argv[2]), sys.argv[3], sys.argv[4])
    elif cmd == "loss":
        draft_value(Path(sys.argv[2]), sys.argv[3])
