"""The task model: the paper's supervised warm-up in full, the encoder fine-tuned with a linear head on the
labelled rows.

`augment(task_model="finetune")` mixes, decodes and labels in this model's space (the adaptor is refined
on its embeddings first), and `mixaug eval`'s `finetune` classifier is this same training, so the rows
are made in the space of the classifier that will learn from them. A fitted model is a folder a person can
read: `encoder/` (a sentence-transformers folder, safetensors weights), `head.safetensors` and `task.json`
(classes, settings), cached by (base encoder, rows, settings).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import TASK_STEPS
from ..errors import MixaugError

TASK_BATCH = 16
TASK_LR = 3e-5  # the encoder's; the head's is HEAD_LR
HEAD_LR = 1e-3


@dataclass
class Row:
    """A training row: input λ·x(a) + (1−λ)·x(b), target λ·onehot(label_a) + (1−λ)·onehot(label_b); a plain
    row has a == b and λ = 1."""

    text_a: str
    text_b: str
    lam: float
    label_a: object
    label_b: object
    weight: float = 1.0  # the row's weight in the loss (eval's class-weights arm: n / (classes x class size))


@dataclass
class TaskModel:
    """A fine-tuned SentenceTransformer and its head (over unit-normalised embeddings)."""

    model: object
    head: object  # torch.nn.Linear
    classes: list

    def proba(self, emb: np.ndarray) -> np.ndarray:
        """[n, n_classes] for unit-normalised embeddings (a `label.Labeller` stand-in)."""
        import torch

        with torch.inference_mode():
            logits = self.head(torch.as_tensor(np.asarray(emb, dtype=np.float32)))
            return torch.softmax(logits, -1).double().numpy()

    def predict(self, texts: Sequence[str], batch_size: int = 64) -> list:
        import torch

        preds: list[int] = []
        self.model.eval()
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                preds += self.head(_pooled(self.model, texts[start : start + batch_size])).argmax(-1).tolist()
        return [self.classes[i] for i in preds]


def _pooled(model, texts: Sequence[str]):
    import torch

    prepare = getattr(model, "preprocess", None) or model.tokenize  # sentence-transformers 5 renamed it
    out = model(prepare(list(texts)))["sentence_embedding"]
    return torch.nn.functional.normalize(out, dim=-1)


def fit(
    base_model,
    rows: Sequence[Row],
    seed: int = 0,
    steps: int = TASK_STEPS,
    batch_size: int = TASK_BATCH,
    lr: float = TASK_LR,
) -> TaskModel:
    """Fine-tune a copy of `base_model` (a SentenceTransformer) with a linear head, soft-target cross-entropy,
    for exactly `steps` optimizer steps: batches walk seeded permutations of the rows."""
    import copy

    import torch

    if not rows:
        raise MixaugError("a task model needs labelled rows")
    torch.manual_seed(seed)
    model = copy.deepcopy(base_model).train()
    classes = list(dict.fromkeys([r.label_a for r in rows] + [r.label_b for r in rows]))
    index = {c: i for i, c in enumerate(classes)}
    dim = int(model.get_embedding_dimension())
    head = torch.nn.Linear(dim, len(classes))
    params = list(model.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(
        [{"params": list(model.parameters()), "lr": lr}, {"params": list(head.parameters()), "lr": HEAD_LR}]
    )
    rng = np.random.default_rng(seed)
    order: list[int] = []
    for _ in range(steps):
        while len(order) < batch_size:
            order += rng.permutation(len(rows)).tolist()
        batch = [rows[i] for i in order[:batch_size]]
        order = order[batch_size:]
        texts = list(dict.fromkeys([r.text_a for r in batch] + [r.text_b for r in batch]))  # each text once
        pos = {t: i for i, t in enumerate(texts)}
        emb = _pooled(model, texts)
        lam = torch.tensor([r.lam for r in batch], dtype=torch.float32)[:, None]
        mixed = lam * emb[[pos[r.text_a] for r in batch]] + (1 - lam) * emb[[pos[r.text_b] for r in batch]]
        target = torch.zeros(len(batch), len(classes))
        for i, r in enumerate(batch):
            target[i, index[r.label_a]] += r.lam
            target[i, index[r.label_b]] += 1 - r.lam
        if all(r.weight == 1.0 for r in batch):
            loss = torch.nn.functional.cross_entropy(head(mixed), target)
        else:  # a weighted mean, as torch's weight= does it
            w = torch.tensor([r.weight for r in batch], dtype=torch.float32)
            loss = (torch.nn.functional.cross_entropy(head(mixed), target, reduction="none") * w).sum() / w.sum()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
    model.eval()
    head.eval()
    return TaskModel(model, head, classes)


# -- the cached folder ----------------------------------------------------------------------------------


def _key(base: str, texts: Sequence[str], labels: Sequence, seed: int, steps: int) -> str:
    h = hashlib.sha256(json.dumps([base, seed, steps, TASK_BATCH, TASK_LR, HEAD_LR]).encode())
    for t, y in zip(texts, labels):
        h.update(json.dumps([t, type(y).__name__, y]).encode() + b"\n")
    return h.hexdigest()[:20]


TASK_WAIT_S = 1800  # how long a run waits for another fitting the same task model before fitting it itself
MAX_TASK_JSON_BYTES = 16 << 20


def fit_cached(base_encoder, texts: Sequence[str], labels: Sequence, seed: int = 0, steps: int = TASK_STEPS) -> Path:
    """The task model of these labelled rows (fitted once, then read from the cache): its folder. A cached
    folder is used only when the cache's trust rule allows all of it (cache.py); it is built in a private
    folder and renamed into place, once however many runs ask for it at the same time."""
    from safetensors.torch import save_file

    from ..cache import build_entry, cache_dir, trusted_tree

    folder = cache_dir() / "task" / _key(base_encoder.name, texts, labels, seed, steps)

    def ready(entry: Path) -> bool:
        return trusted_tree(entry, "task model cache") and (entry / "task.json").is_file()

    def build(tmp: Path) -> None:
        fitted = fit(base_encoder.model, [Row(t, t, 1.0, y, y) for t, y in zip(texts, labels)], seed, steps)
        fitted.model.save(str(tmp / "encoder"), safe_serialization=True)
        save_file(
            {k: v.detach().contiguous() for k, v in fitted.head.state_dict().items()}, str(tmp / "head.safetensors")
        )
        meta = {
            "base_encoder": base_encoder.name,
            "classes": fitted.classes,
            "rows": len(texts),
            "steps": steps,
            "seed": seed,
            "batch_size": TASK_BATCH,
            "lr": TASK_LR,
            "head_lr": HEAD_LR,
        }
        (tmp / "task.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n")

    return build_entry(folder, build, ready, wait=TASK_WAIT_S)


def load_labeller(folder: str | Path, classes: Sequence) -> TaskModel:
    """The head of a fitted task model as a labeller (no encoder: the stack's encoder is the task's)."""
    import torch
    from safetensors.torch import load_file

    from ..data.write import read_json_file

    folder = Path(folder)
    meta = read_json_file(folder / "task.json", f"task model {folder}: task.json", MAX_TASK_JSON_BYTES)
    if not isinstance(meta, dict) or meta.get("classes") != list(classes):
        raise MixaugError(f"task model {folder} was fitted on other classes; delete it to refit")
    state = load_file(str(folder / "head.safetensors"))
    head = torch.nn.Linear(state["weight"].shape[1], state["weight"].shape[0])
    head.load_state_dict(state)
    head.eval()
    return TaskModel(None, head, list(classes))
