"""Decode engine: continuous batching over a slot KV cache, with the n-gram ban and sampling on tensors.

A batch that runs to its longest row spends about half of its decode steps on rows that have already
finished (mean 22 tokens, longest up to 48). Here every row owns a *slot* of a fixed KV cache while it
decodes; a finished row frees its slot at once and the next queued row is prefilled into it, so each
forward pass works on rows that still need tokens.

Determinism: a row's text depends only on its own prompt and seed. Every attention spans the whole cache
(unused positions masked), so its reductions have the same length whoever shares the batch; a matmul row
does not depend on the other rows in fp32; and sampling draws from the row's own generator (Gumbel-max).
The int8 path (quantize.py) quantises each row's activations on that row's own scale and multiplies in exact
integers, so it too gives the same bytes whatever the batch size.

The engine knows nothing of rows, labels or files: prompts in, token ids out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .quantize import PROJECTIONS, Int8Linear

NEG_INF = float("-inf")
PRECISIONS = ("fp32", "int8")  # of the LM's Linear layers while decoding
EXACT_TOP = 64  # int8: the LM head's top tokens per row are re-scored in fp32


def resolve_precision(precision: str, device: str) -> str:
    """auto: int8 on CPU (1.75x faster there; -0.002 cosine against fp32 over seven styles, the worst style
    -0.007: README, *Speed*), fp32 on a GPU. int8 is built for CPU kernels (quantize.py), so it is refused elsewhere."""
    from ..errors import MixaugError

    if precision == "auto":
        return "int8" if device == "cpu" else "fp32"
    if precision not in PRECISIONS:
        raise MixaugError(f"unknown precision {precision!r}: choose auto, {', '.join(PRECISIONS)}")
    if precision == "int8" and device != "cpu":
        raise MixaugError(f"--precision int8 runs on CPU only; on {device} use fp32 (or auto)")
    return precision


@dataclass
class DecodeOptions:
    """How to turn soft prompts into text."""

    max_new_tokens: int = 48
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    no_repeat_ngram: int = 3  # forbid repeating any n-gram (stops the loops small LMs fall into)


@dataclass
class DecodeStats:
    """What decoding cost: rows, tokens generated (EOS included), forward passes, wall seconds."""

    rows: int = 0
    tokens: int = 0
    steps: int = 0  # decode forward passes (one new token for each row in the batch)
    prefills: int = 0  # prompt forward passes
    slot_steps: int = 0  # sum over decode passes of the rows in the batch
    seconds: float = 0.0

    def add(self, other: DecodeStats) -> None:
        for name in ("rows", "tokens", "steps", "prefills", "slot_steps", "seconds"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def since(self, earlier: DecodeStats) -> DecodeStats:
        return DecodeStats(**{k: getattr(self, k) - getattr(earlier, k) for k in self.__dataclass_fields__})

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


# -- the model side ----------------------------------------------------------------------------------
class LlamaWeights:
    """What a Llama-family LM's forward needs, built once per LM and precision: the HF norms, rotary table
    and embedding as they are; the projections fused (q|k|v and gate|up: one matmul each) in fp32 or int8
    (`quantize.Int8Linear`). The LM must stay frozen afterwards (the fused copies would not follow it)."""

    def __init__(self, lm, precision: str = "fp32", act_max: dict | None = None):
        cfg = lm.config
        self.model = lm.model
        self.heads = cfg.num_attention_heads
        self.kv_heads = cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.layers_count = cfg.num_hidden_layers
        self.vocab_size = cfg.vocab_size
        self.embedding = lm.get_input_embeddings().weight
        self.layers = []
        for layer in self.model.layers:
            self.layers.append(_fused_layer(layer, precision, act_max))
            if precision == "int8":
                release_freed_memory()
        self.lm_head = _linear(lm.lm_head.weight, precision)
        self.head_weight = lm.lm_head.weight.detach() if precision == "int8" else None

    @staticmethod
    def supports(lm) -> bool:
        """Plain Llama layers (SmolLM2, Llama: SiLU, no biases, plain Linear projections, so not a model
        wrapped for LoRA training): the forward below is exactly theirs."""
        cfg = getattr(lm, "config", None)
        if not (
            type(lm).__name__ == "LlamaForCausalLM"
            and getattr(cfg, "model_type", None) == "llama"
            and not getattr(cfg, "attention_bias", False)
            and not getattr(cfg, "mlp_bias", False)
            and getattr(cfg, "hidden_act", None) == "silu"
        ):
            return False
        names = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head")
        return all(
            type(module) is torch.nn.Linear for name, module in lm.named_modules() if name.rpartition(".")[2] in names
        )


def release_freed_memory() -> None:
    """Hand the heap's freed blocks back to the OS (glibc's malloc_trim; elsewhere nothing). Building the
    int8 LM frees fp32 temporaries of up to 7 MB per projection; glibc keeps such blocks on its heap once
    its mmap threshold has grown, and by chance the same run then peaked at 1.73 or 2.28 GB (issue 22).
    Trimmed after each layer, the peak is the same every time. (A fixed mmap threshold does the same but
    made every int8 step map and fault in fresh pages: decoding 3.5x slower.)"""
    import ctypes
    import sys

    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None).malloc_trim(0)
        except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
            pass


class SlotLlama:
    """A KV cache of `slots` rows and a forward over it: each row in a pass names its slot and the position
    of its first input, so rows at different lengths share one pass without padding."""

    def __init__(self, weights: LlamaWeights, slots: int, max_len: int):
        self.w = weights
        self.model = weights.model
        self.heads, self.kv_heads, self.head_dim = weights.heads, weights.kv_heads, weights.head_dim
        emb = weights.embedding
        shape = (weights.layers_count, slots, self.kv_heads, max_len, self.head_dim)
        self.k = torch.zeros(shape, dtype=emb.dtype, device=emb.device)
        self.v = torch.zeros(shape, dtype=emb.dtype, device=emb.device)
        self.max_len, self.slots = max_len, slots
        self._all = torch.arange(slots, device=emb.device)
        self._key_pos = torch.arange(max_len, device=emb.device)
        self.prefix_k = self.prefix_v = None

    def set_prefix(self, prefix: torch.Tensor) -> None:
        """prefix [p, H]: the prompt's opening, the same for every row, computed once (batch of one) and
        copied into each slot it admits."""
        p = len(prefix)
        if p == 0:
            return
        self.forward(prefix[None], self._all[:1], torch.zeros(1, dtype=torch.long, device=prefix.device))
        self.prefix_k = self.k[:, 0, :, :p].clone()
        self.prefix_v = self.v[:, 0, :, :p].clone()

    def admit(self, rest: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
        """Start rows in `slots`: the shared prefix is copied in, `rest` [k, T, H] is computed after it."""
        p = 0 if self.prefix_k is None else self.prefix_k.shape[2]
        if p:
            self.k[:, slots, :, :p] = self.prefix_k[:, None]
            self.v[:, slots, :, :p] = self.prefix_v[:, None]
        return self.forward(rest, slots, torch.full((len(slots),), p, dtype=torch.long, device=rest.device))

    def forward(self, x: torch.Tensor, slots: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
        """x: [A, T, H] input embeddings for rows in `slots` whose first input sits at position `start`
        ([A] each). Writes their keys/values into the cache; returns the last position's logits [A, V]."""
        a, t, _ = x.shape
        positions = start[:, None] + torch.arange(t, device=x.device)[None]  # [A, T]
        cos, sin = self.model.rotary_emb(x, positions)
        cos, sin = cos[:, None], sin[:, None]  # [A, 1, T, D]
        full = a == self.slots and bool((slots == self._all).all())
        mask = (self._key_pos[None, None, None, :] <= positions[:, None, :, None]).expand(a, 1, t, self.max_len)
        nq, nkv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        for i, (layer, qkv, o_proj, gate_up, down) in enumerate(self.w.layers):
            q, k, v = qkv(layer.input_layernorm(x)).split((nq, nkv, nkv), dim=-1)
            q = q.view(a, t, self.heads, self.head_dim).transpose(1, 2)
            k = k.view(a, t, self.kv_heads, self.head_dim).transpose(1, 2)
            q = q * cos + _rotate_half(q) * sin
            k = k * cos + _rotate_half(k) * sin
            kc, vc = self.k[i], self.v[i]
            kc[slots[:, None], :, positions] = k.transpose(1, 2)
            vc[slots[:, None], :, positions] = v.view(a, t, self.kv_heads, self.head_dim)
            keys, values = (kc, vc) if full else (kc[slots], vc[slots])
            out = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, enable_gqa=True)
            x = x + o_proj(out.transpose(1, 2).reshape(a, t, nq))
            gate, up = gate_up(layer.post_attention_layernorm(x)).chunk(2, dim=-1)
            x = x + down(F.silu(gate) * up)
        h = self.model.norm(x[:, -1])
        logits = self.w.lm_head(h)
        if self.w.head_weight is not None:  # the int8 head ranks the vocabulary, fp32 scores its top 64
            top = logits.topk(EXACT_TOP, dim=-1).indices
            exact = torch.bmm(self.w.head_weight[top], h[:, :, None])[:, :, 0]
            logits = logits.scatter(1, top, exact)
        return logits


class _Fp32Linear:
    def __init__(self, weight: torch.Tensor):
        self.weight = weight.detach()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight)


def _linear(weight: torch.Tensor, precision: str, act_max: torch.Tensor | None = None):
    if precision == "int8":
        return Int8Linear(weight, act_max)
    return _Fp32Linear(weight)


def projection_groups(layer) -> tuple[tuple[torch.nn.Linear, ...], ...]:
    """A decoder layer's Linear modules, grouped as the engine fuses them, in PROJECTIONS' order:
    q|k|v, o, gate|up, down (each group shares its input)."""
    attn, mlp = layer.self_attn, layer.mlp
    return ((attn.q_proj, attn.k_proj, attn.v_proj), (attn.o_proj,), (mlp.gate_proj, mlp.up_proj), (mlp.down_proj,))


def fused_weights(layer) -> tuple[torch.Tensor, ...]:
    """Each group's weights as one matrix (a lone module's weight as it is, not a copy)."""
    return tuple(torch.cat([m.weight for m in g]) if len(g) > 1 else g[0].weight for g in projection_groups(layer))


def _fused_layer(layer, precision: str, act_max: dict | None = None) -> tuple:
    i, seen = layer.self_attn.layer_idx, act_max or {}
    return (layer, *(_linear(w, precision, seen.get((i, kind))) for w, kind in zip(fused_weights(layer), PROJECTIONS)))


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


# -- token choice --------------------------------------------------------------------------------------
Bias = Callable[[int, list[int]], dict[int, float]]  # (row, its tokens so far) -> {next token: logit bonus}


def add_bias(logits: torch.Tensor, bonuses: Sequence[dict[int, float]]) -> None:
    """In place: row a's logits get bonuses[a] (token -> additive bonus). A row's bonus depends only on that
    row, so decoding stays independent of the batch."""
    rows, cols, vals = [], [], []
    for a, bonus in enumerate(bonuses):
        rows.extend([a] * len(bonus))
        cols.extend(bonus)
        vals.extend(bonus.values())
    if rows:
        logits.index_put_(
            (torch.tensor(rows), torch.tensor(cols)), torch.tensor(vals, dtype=logits.dtype), accumulate=True
        )


def ban_repeated_ngrams(logits: torch.Tensor, history: torch.Tensor, lengths: torch.Tensor, n: int) -> None:
    """In place: forbid each row's next token where it would repeat an n-gram already in its history.
    history [A, G] (first `lengths[a]` tokens valid). An n-gram starting at j is complete when
    j + n - 1 < length; it bans its last token when its first n - 1 tokens equal the row's last n - 1."""
    if n < 2 or history.shape[1] < n:
        return
    longest = int(lengths.max())
    if longest < n:
        return
    hist = history[:, :longest]
    idx = (lengths[:, None] - (n - 1)).clamp_min(0) + torch.arange(n - 1, device=hist.device)[None]
    last = hist.gather(1, idx)  # [A, n-1]
    windows = hist.unfold(1, n - 1, 1)[:, : longest - n + 1]  # [A, J, n-1], j = 0 .. longest-n
    starts = torch.arange(longest - n + 1, device=hist.device)[None]
    hit = (windows == last[:, None, :]).all(-1) & (starts <= (lengths[:, None] - n))
    rows, cols = hit.nonzero(as_tuple=True)
    if len(rows):
        logits[rows, hist[rows, cols + n - 1]] = NEG_INF


def choose_tokens(logits: torch.Tensor, generators: Sequence[torch.Generator] | None, opt: DecodeOptions):
    """Greedy argmax, or an exact draw from softmax(logits / T) (nucleus-truncated) by Gumbel-max: the
    argmax of logits/T plus noise from the row's own generator. Unlike inverting a cumulative sum (whose
    boundaries lie 1e-5 apart over a flat 49k-token distribution), the argmax only flips where two perturbed
    scores tie, so last-bit differences between batches do not change which token is drawn."""
    if opt.temperature <= 0:
        return logits.argmax(dim=-1)
    scaled = logits / opt.temperature
    if opt.top_p < 1:
        probs, order = torch.sort(torch.softmax(scaled, dim=-1), dim=-1, descending=True)
        outside = (torch.cumsum(probs, dim=-1) - probs) >= opt.top_p  # the nucleus keeps at least one token
        scaled = scaled.masked_fill(torch.zeros_like(outside).scatter(-1, order, outside), NEG_INF)
    noise = torch.stack([torch.rand(scaled.shape[-1], generator=g) for g in generators])
    gumbel = -torch.log(-torch.log(noise.clamp_min(1e-20)))
    return (scaled + gumbel).argmax(dim=-1)


# -- the loop ------------------------------------------------------------------------------------------
def generate(
    weights: LlamaWeights,
    embed_tokens: Callable[[torch.Tensor], torch.Tensor],
    prefix: torch.Tensor,
    prompts: Callable[[Sequence[int]], torch.Tensor],
    n: int,
    eos_id: int,
    seeds: Sequence[int],
    opt: DecodeOptions,
    slots: int = 32,
    on_done: Callable[[int, list[int]], None] | None = None,
    stats: DecodeStats | None = None,
    bias: Bias | None = None,
) -> list[list[int]]:
    """Decode n rows with continuous batching over `slots` cache slots. Each row's prompt is `prefix`
    [p, H] (shared) followed by prompts([row]) [1, T, H] (T the same for all rows). Returns each row's
    token ids without EOS; on_done(row, tokens) is called as each row finishes. bias(row, tokens so far)
    -> {token: bonus} is added to that row's logits before each choice (anchoring; see `add_bias`)."""
    stats = stats if stats is not None else DecodeStats()
    stats.rows += n
    slots = max(1, min(slots, n))
    device = prefix.device
    rest_len = prompts([0]).shape[1]
    engine = SlotLlama(weights, slots, len(prefix) + rest_len + opt.max_new_tokens)
    engine.set_prefix(prefix)
    prompt_len = len(prefix) + rest_len
    history = torch.zeros(slots, max(opt.max_new_tokens, 1), dtype=torch.long)
    lengths = torch.zeros(slots, dtype=torch.long)
    row_of = [-1] * slots
    gens: list[torch.Generator | None] = [None] * slots
    logits = torch.zeros(slots, weights.vocab_size)
    results: list[list[int]] = [[] for _ in range(n)]
    queue, free = 0, list(range(slots))
    admit_at = max(1, slots // 8)  # a prefill pass for fewer rows than this waits for more free slots
    while True:
        active = [s for s in range(slots) if row_of[s] >= 0]
        if queue < n and free and (len(free) >= min(admit_at, n - queue) or not active):
            take = free[: n - queue]
            free = free[len(take) :]
            rows = list(range(queue, queue + len(take)))
            queue += len(take)
            logits[take] = engine.admit(prompts(rows), torch.tensor(take, device=device)).float().cpu()
            stats.prefills += 1
            for s, r in zip(take, rows):
                row_of[s], lengths[s] = r, 0
                gens[s] = torch.Generator().manual_seed(int(seeds[r])) if opt.temperature > 0 else None
            active = sorted(active + take)
        if not active:
            break
        act = torch.tensor(active)
        step_logits = logits[act].clone()
        if bias is not None:
            add_bias(step_logits, [bias(row_of[s], history[s, : int(lengths[s])].tolist()) for s in active])
        if opt.no_repeat_ngram > 1:
            ban_repeated_ngrams(step_logits, history[act], lengths[act], opt.no_repeat_ngram)
        chosen = choose_tokens(step_logits, [gens[s] for s in active] if opt.temperature > 0 else None, opt)
        history[act, lengths[act]] = chosen
        lengths[act] += 1
        stats.tokens += len(active)
        keep: list[int] = []
        for s, tok in zip(active, chosen.tolist()):
            length = int(lengths[s])
            if tok == eos_id or length >= opt.max_new_tokens:
                row = row_of[s]
                toks = history[s, :length].tolist()
                results[row] = toks[:-1] if tok == eos_id else toks
                row_of[s], gens[s] = -1, None
                free.append(s)
                if on_done:
                    on_done(row, results[row])
            else:
                keep.append(s)
        free.sort()
        if not keep:
            continue
        kept = torch.tensor(keep, device=device)
        x = embed_tokens(history[keep, lengths[keep] - 1][:, None].to(device))
        logits[keep] = engine.forward(x, kept, (prompt_len + lengths[keep] - 1).to(device)).float().cpu()
        stats.steps += 1
        stats.slot_steps += len(keep)
    return results


@torch.inference_mode()
def ceiling(weights: LlamaWeights, embed_tokens, prefix: torch.Tensor, rest: torch.Tensor, new_tokens: int) -> float:
    """The decode ceiling: tokens/s of a plain KV-cached greedy loop over one full batch (rest [B, T, H]),
    every row running exactly `new_tokens` tokens (prefill included; no n-gram ban, no early stop)."""
    import time

    started = time.perf_counter()
    b = len(rest)
    engine = SlotLlama(weights, b, len(prefix) + rest.shape[1] + new_tokens)
    engine.set_prefix(prefix)
    slots = torch.arange(b, device=rest.device)
    logits = engine.admit(rest, slots)
    position = len(prefix) + rest.shape[1]
    for step in range(new_tokens - 1):
        token = logits.argmax(dim=-1)
        logits = engine.forward(
            embed_tokens(token[:, None]), slots, torch.full((b,), position + step, device=rest.device)
        )
    logits.argmax(dim=-1)
    return b * new_tokens / (time.perf_counter() - started)


# -- int8 calibration -------------------------------------------------------------------------------
class _Recorder(_Fp32Linear):
    """An fp32 Linear that keeps, per input channel, the largest |x| it has seen (for calibration)."""

    def __init__(self, weight: torch.Tensor):
        super().__init__(weight)
        self.act_max = torch.zeros(weight.shape[1])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.act_max = torch.maximum(self.act_max, x.reshape(-1, x.shape[-1]).abs().amax(dim=0).float())
        return super().__call__(x)


@torch.inference_mode()
def calibrate(lm, inputs: Sequence[torch.Tensor]) -> dict[tuple[int, str], torch.Tensor]:
    """Each projection's largest |input| per channel over fp32 forward passes of `inputs` (each [T, H]
    input embeddings, run as one sequence from position 0): what int8's smoothing scales are built from."""
    weights = LlamaWeights(lm, "fp32")
    recorders: dict[tuple[int, str], _Recorder] = {}
    for i, (layer, *linears) in enumerate(weights.layers):
        rec = [_Recorder(f.weight) for f in linears]
        recorders.update({(i, kind): r for kind, r in zip(PROJECTIONS, rec)})
        weights.layers[i] = (layer, *rec)
    for x in inputs:
        engine = SlotLlama(weights, 1, len(x))
        engine.forward(x[None], engine._all, torch.zeros(1, dtype=torch.long, device=x.device))
    return {key: r.act_max for key, r in recorders.items()}
