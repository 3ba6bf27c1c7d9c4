"""Augmentation baselines `mixaug eval` compares against: EDA, embedding-space mixup, LM paraphrase."""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np

EDA_OPS = ("random_swap", "random_deletion", "random_insertion")  # no synonym source offline: no replacement


def eda(texts: Sequence[str], labels: Sequence, n: int, seed: int, alpha: float = 0.1) -> tuple[list[str], list]:
    """Easy Data Augmentation (Wei & Zou, 2019) without synonyms: one random op per new row, on ~alpha of
    the words (at least one). Random insertion inserts a word of the same sentence (there is no offline
    synonym source), so the ops that run are swap, deletion and insertion (see EDA_OPS)."""
    rng = random.Random(seed)
    out_t, out_l = [], []
    for _ in range(n):
        i = rng.randrange(len(texts))
        words = texts[i].split()
        k = max(1, int(alpha * len(words)))
        op = rng.choice(EDA_OPS)
        if op == "random_swap" and len(words) > 1:
            for _ in range(k):
                a, b = rng.sample(range(len(words)), 2)
                words[a], words[b] = words[b], words[a]
        elif op == "random_deletion" and len(words) > 1:
            keep = [w for w in words if rng.random() > alpha] or [rng.choice(words)]
            words = keep
        else:
            for _ in range(k):
                words.insert(rng.randrange(len(words) + 1), rng.choice(words))
        out_t.append(" ".join(words))
        out_l.append(labels[i])
    return out_t, out_l


def embed_mixup(size: int, n: int, seed: int, alpha: float = 0.4):
    """Classic sentence-level mixup in embedding space: random pairs (a, b) and λ ~ Beta(α, α). The
    classifier trains on λ·emb(a) + (1−λ)·emb(b) with the soft label; nothing readable is produced."""
    rng = np.random.default_rng([seed, 7])
    return rng.integers(0, size, n), rng.integers(0, size, n), rng.beta(alpha, alpha, n)


PARAPHRASE_PROMPT = "Paraphrase this sentence. Reply with the paraphrase only.\nSentence: {text}"


def paraphrase(
    texts: Sequence[str],
    labels: Sequence,
    n: int,
    seed: int,
    lm,
    tokenizer,
    batch_size: int = 16,
    max_new_tokens: int = 48,
) -> tuple[list[str], list]:
    """Prompt the instruction LM to paraphrase randomly chosen rows (greedy); the label is copied."""
    import torch

    rng = random.Random(seed)
    picks = [rng.randrange(len(texts)) for _ in range(n)]
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    out: list[str] = []
    for start in range(0, n, batch_size):
        chunk = picks[start : start + batch_size]
        prompts = [
            tokenizer.apply_chat_template(
                [{"role": "user", "content": PARAPHRASE_PROMPT.format(text=texts[i])}],
                tokenize=False,
                add_generation_prompt=True,
            )
            for i in chunk
        ]
        enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(lm.device)
        with torch.inference_mode():
            gen = lm.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                repetition_penalty=1.1,
            )
        for row in gen[:, enc["input_ids"].shape[1] :]:
            text = tokenizer.decode(row, skip_special_tokens=True).strip().splitlines()
            out.append(" ".join(text[0].split()) if text else "")
    return out, [labels[i] for i in picks]
