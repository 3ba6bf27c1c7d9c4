"""Sentence encoding: texts -> float32 embeddings, unit-normalised when the checkpoint says so."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np

ENCODE_ROWS = 16  # rows in every encoder pass (a fixed matmul shape: see Encoder._encode)


class Encoder:
    """A sentence encoder with the normalisation its checkpoint was trained with."""

    def __init__(self, model, name: str, normalize: bool = True):
        self.model = model
        self.name = name
        self.normalize = normalize
        self.memo: dict[str, np.ndarray] | None = None  # text -> embedding, only inside `memoize()`

    @contextmanager
    def memoize(self) -> Iterator[None]:
        """Within the block, each distinct text is encoded once (exact: embeddings are batch-invariant).

        For callers that encode the same texts again and again (eval re-augments subsets of one
        TRAIN file); the memo is dropped on exit so a long-lived process does not grow.
        """
        outer = self.memo
        self.memo = {} if outer is None else outer
        try:
            yield
        finally:
            self.memo = outer

    @property
    def dim(self) -> int:
        return int(self.model.get_embedding_dimension())

    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        on_batch: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Embed texts; `on_batch(n)` is called after each batch (for progress bars)."""
        if self.memo is None:
            return self._encode(texts, batch_size, on_batch)
        fresh = [t for t in dict.fromkeys(texts) if t not in self.memo]
        if on_batch and len(texts) > len(fresh):
            on_batch(len(texts) - len(fresh))
        self.memo.update(zip(fresh, self._encode(fresh, batch_size, on_batch)))
        if not len(texts):
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self.memo[t] for t in texts])

    def _encode(self, texts: Sequence[str], batch_size: int, on_batch: Callable[[int], None] | None) -> np.ndarray:
        """Encode without the memo.

        Texts are grouped by padded length (a multiple of 16 tokens), each group padded to exactly that
        length and run as ENCODE_ROWS rows (blank rows fill a short group), so every matmul has the same
        shape whatever `batch_size` is: on AVX-512 kernels a batch of 5 and a batch of 16 differ in the last
        bit (1e-7), a fixed shape does not. So a text's embedding never depends on which other texts share its
        batch, and the output is bit-identical whatever `batch_size` is (passes are always ENCODE_ROWS rows; the
        argument stays for callers that size other stages with it).
        """
        import torch

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not len(texts):
            return out
        tokenizer = self.model.tokenizer
        max_len = int(self.model.max_seq_length)
        lengths = [min(len(ids), max_len) for ids in tokenizer(list(texts), add_special_tokens=True)["input_ids"]]
        buckets = [min(-(-n // 16) * 16, max_len) for n in lengths]
        order = sorted(range(len(texts)), key=lambda i: (buckets[i], i))
        device = self.model.device
        start = 0
        while start < len(order):
            bucket = buckets[order[start]]
            stop = start
            while stop < len(order) and stop - start < ENCODE_ROWS and buckets[order[stop]] == bucket:
                stop += 1
            idx = order[start:stop]
            features = tokenizer(
                [texts[i] for i in idx] + [""] * (ENCODE_ROWS - len(idx)),
                padding="max_length",
                truncation=True,
                max_length=bucket,
                return_tensors="pt",
            )
            features = {k: v.to(device) for k, v in features.items()}
            with torch.inference_mode():
                emb = self.model(features)["sentence_embedding"].float().cpu().numpy()[: len(idx)]
            out[idx] = emb
            if on_batch:
                on_batch(len(idx))
            start = stop
        return normalize_rows(out) if self.normalize else out


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """Scale each row to unit L2 norm (rows of zeros stay zero)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two equally shaped matrices."""
    return np.sum(normalize_rows(a) * normalize_rows(b), axis=1)


def load_encoder(spec: str | None, device: str = "cpu", normalize: bool = True, base=None) -> Encoder:
    """Resolve and load the encoder named by a checkpoint manifest (base: that checkpoint's folder, which a
    relative path in the manifest is read against)."""
    from .inversion.models import DEFAULT_ENCODER
    from .inversion.models import load_encoder as _load

    return Encoder(_load(spec, device, base), spec or DEFAULT_ENCODER, normalize)
