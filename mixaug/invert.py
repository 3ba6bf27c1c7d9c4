"""Inversion: embedding -> adaptor -> soft prompt -> causal LM decoding -> text.

Generation is a hand-written KV-cached loop rather than `generate()` because every row shares the same
prompt length (template + K soft vectors), so no padding is ever needed, and because sampling draws from
a per-row generator: a row's text depends only on its own embedding and seed, never on its batch.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .checkpoint import LORA_DIR, Adaptor, Manifest, load_adaptor, validate_checkpoint
from .errors import MixaugError


@dataclass
class DecodeOptions:
    """How to turn soft prompts into text."""

    max_new_tokens: int = 48
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    no_repeat_ngram: int = 3  # forbid repeating any n-gram (stops the loops small LMs fall into)


class Inverter:
    """An adaptor plus the frozen LM it was trained against."""

    def __init__(self, manifest: Manifest, adaptor: Adaptor, lm, tokenizer, device: str = "cpu"):
        self.manifest = manifest
        self.adaptor = adaptor.to(device)
        self.lm = lm
        self.tokenizer = tokenizer
        self.device = device
        if "{soft}" not in manifest.prompt_template:
            raise MixaugError("checkpoint prompt_template must contain {soft}")
        prefix, suffix = manifest.prompt_template.split("{soft}", 1)
        self.prefix_ids = tokenizer(prefix, add_special_tokens=False, return_tensors="pt")["input_ids"][0]
        self.suffix_ids = tokenizer(suffix, add_special_tokens=False, return_tensors="pt")["input_ids"][0]
        eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
        self.eos_id = eos if isinstance(eos, int) and eos != tokenizer.unk_token_id else tokenizer.eos_token_id

    # -- prompt assembly (shared with training) --------------------------------------------------
    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        return self.lm.get_input_embeddings()(ids.to(self.device))

    def prompt_embeds(self, soft: torch.Tensor) -> torch.Tensor:
        """[B, K, H] soft vectors -> [B, P, H] full prompt (template prefix + soft + suffix)."""
        b = soft.shape[0]
        pre = self.embed_tokens(self.prefix_ids)[None].expand(b, -1, -1)
        suf = self.embed_tokens(self.suffix_ids)[None].expand(b, -1, -1)
        return torch.cat([pre.to(soft.dtype), soft, suf.to(soft.dtype)], dim=1)

    def soft_prompts(self, emb: np.ndarray | torch.Tensor) -> torch.Tensor:
        """One row at a time: a matmul's last bits depend on how many rows it holds, and sampled decoding
        must not depend on the batch (the adaptor is ~1% of a decode step, so this costs nothing)."""
        emb_t = torch.as_tensor(np.asarray(emb, dtype=np.float32), device=self.device)
        return torch.cat([self.adaptor(emb_t[i : i + 1]) for i in range(len(emb_t))])

    # -- decoding --------------------------------------------------------------------------------
    @torch.inference_mode()
    def decode(
        self,
        emb: np.ndarray,
        seeds: Sequence[int] | None = None,
        options: DecodeOptions | None = None,
        batch_size: int = 32,
        on_batch: Callable[[int], None] | None = None,
    ) -> list[str]:
        """Decode each embedding row into a sentence. `seeds` (one per row) matter only when sampling."""
        options = options or DecodeOptions()
        seeds = list(seeds) if seeds is not None else [0] * len(emb)
        texts: list[str] = []
        for start in range(0, len(emb), batch_size):
            chunk = emb[start : start + batch_size]
            texts.extend(self._decode_batch(chunk, seeds[start : start + batch_size], options))
            if on_batch:
                on_batch(len(chunk))
        return texts

    def _decode_batch(self, emb: np.ndarray, seeds: Sequence[int], opt: DecodeOptions) -> list[str]:
        b = len(emb)
        embeds = self.prompt_embeds(self.soft_prompts(emb))
        out = self.lm(inputs_embeds=embeds, use_cache=True)
        past, logits = out.past_key_values, out.logits[:, -1, :].float()
        gens = [torch.Generator().manual_seed(int(s)) for s in seeds] if opt.temperature > 0 else None
        tokens: list[list[int]] = [[] for _ in range(b)]
        banned: list[dict[tuple, set]] = [dict() for _ in range(b)]
        done = [False] * b
        for _ in range(opt.max_new_tokens):
            nxt = self._choose(logits, tokens, banned, gens, opt)
            for i in range(b):
                if done[i]:
                    nxt[i] = self.eos_id
                    continue
                tokens[i].append(int(nxt[i]))
                done[i] = int(nxt[i]) == self.eos_id
            if all(done):
                break
            out = self.lm(input_ids=nxt[:, None].to(self.device), past_key_values=past, use_cache=True)
            past, logits = out.past_key_values, out.logits[:, -1, :].float()
        return [self._detok(t) for t in tokens]

    def _choose(self, logits, tokens, banned, gens, opt: DecodeOptions) -> torch.Tensor:
        logits = logits.cpu().clone()
        n = opt.no_repeat_ngram
        if n > 1:
            for i, toks in enumerate(tokens):
                if len(toks) >= n - 1:
                    if len(toks) >= n:  # record the n-gram that just completed
                        banned[i].setdefault(tuple(toks[-n:-1]), set()).add(toks[-1])
                    ban = banned[i].get(tuple(toks[-(n - 1) :]))
                    if ban:
                        logits[i, list(ban)] = float("-inf")
        if opt.temperature <= 0:
            return logits.argmax(dim=-1)
        # Gumbel-max: argmax(logits/T + Gumbel noise from the row's own generator) is an exact draw from
        # softmax(logits/T). Unlike inverting a cumulative sum (whose boundaries lie 1e-5 apart over a flat
        # 49k-token distribution), the argmax only flips where two perturbed scores tie, so the last-bit
        # differences between batch sizes' matmuls do not change which token is drawn.
        scaled = logits / opt.temperature
        if opt.top_p < 1:
            probs, order = torch.sort(torch.softmax(scaled, dim=-1), dim=-1, descending=True)
            outside = (torch.cumsum(probs, dim=-1) - probs) >= opt.top_p  # the nucleus keeps at least one token
            scaled = scaled.masked_fill(torch.zeros_like(outside).scatter(-1, order, outside), float("-inf"))
        noise = torch.stack([torch.rand(scaled.shape[-1], generator=g) for g in gens])
        gumbel = -torch.log(-torch.log(noise.clamp_min(1e-20)))
        return (scaled + gumbel).argmax(dim=-1)

    def _detok(self, toks: list[int]) -> str:
        if toks and toks[-1] == self.eos_id:
            toks = toks[:-1]
        return " ".join(self.tokenizer.decode(toks, skip_special_tokens=True).split())


def attach_lora(lm, manifest: Manifest):
    """Wrap the LM with fresh LoRA adapters as the manifest describes (training side)."""
    from peft import LoraConfig, get_peft_model

    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
    cfg = manifest.lora
    config = LoraConfig(
        r=cfg["r"],
        lora_alpha=cfg["alpha"],
        target_modules=list(cfg["target_modules"]),
        lora_dropout=0.0,
        bias="none",
    )
    return get_peft_model(lm, config)


def load_inverter(checkpoint: str | Path, device: str = "cpu", lm_spec: str | None = None) -> Inverter:
    """Load a checkpoint folder and the LM it names; a different LM (weights hash) is an error. The whole
    checkpoint is validated first, so a hostile manifest is refused before anything is allocated. lm_spec
    (a user's override) is read against the CWD, the manifest's lm against the checkpoint folder."""
    from .models import lm_weights_hash, load_lm

    folder = Path(checkpoint)
    manifest = validate_checkpoint(folder)
    adaptor = load_adaptor(folder, manifest)
    lm, tokenizer, lm_folder = load_lm(lm_spec, device) if lm_spec else load_lm(manifest.lm, device, base=folder)
    hidden = lm.get_input_embeddings().weight.shape[1]
    if hidden != manifest.lm_hidden_size:
        raise MixaugError(
            f"LM {lm_spec or manifest.lm} has hidden size {hidden}, checkpoint {folder} needs {manifest.lm_hidden_size}"
        )
    found = lm_weights_hash(lm_folder, lm)
    if found != manifest.lm_weights_sha256:
        raise MixaugError(
            f"LM at {lm_folder} does not match checkpoint {folder}: weights hash {found[:12]} != "
            f"{manifest.lm_weights_sha256[:12]} recorded in manifest.json"
        )
    if manifest.lora:
        lm = _merge_lora(lm, folder / LORA_DIR, folder)
    return Inverter(manifest, adaptor, lm, tokenizer, device)


def _merge_lora(lm, lora_dir: Path, folder: Path):
    """Apply saved LoRA adapters and fold them into the weights (inference is then as fast as the base)."""
    from peft import PeftModel

    from .models import quiet_hf

    if not (lora_dir / "adapter_model.safetensors").exists():
        raise MixaugError(f"corrupt checkpoint {folder}: manifest names LoRA but {lora_dir} has no safetensors")
    try:
        with quiet_hf():
            model = PeftModel.from_pretrained(lm, str(lora_dir), is_trainable=False)
            merged = model.merge_and_unload()
    except Exception as exc:
        raise MixaugError(f"corrupt checkpoint {folder}: cannot load LoRA adapters ({exc})") from None
    merged.eval()
    return merged
