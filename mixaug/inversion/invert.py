"""Inversion: embedding -> adaptor -> soft prompt -> causal LM decoding -> text.

Generation is a hand-written KV-cached loop rather than `generate()` because every row shares the same
prompt length (template + K soft vectors), so no padding is ever needed, and because sampling draws from
a per-row generator: a row's text depends only on its own embedding and seed, never on its batch.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from ..encode import load_encoder
from ..errors import MixaugError
from . import calibration
from .anchor import Anchors, TokenBias, speller
from .checkpoint import LORA_DIR, MAX_TEMPLATE_TOKENS, Adaptor, Manifest, load_adaptor, validate_checkpoint
from .decode import (
    Bias,
    DecodeOptions,
    DecodeStats,
    LlamaWeights,
    add_bias,
    ban_repeated_ngrams,
    calibrate,
    ceiling,
    choose_tokens,
    generate,
    resolve_precision,
)
from .quantize import CALIBRATION_TEXTS

__all__ = ["DecodeOptions", "DecodeStats", "Inverter", "attach_lora", "load_inverter", "resolve_precision"]


class Inverter:
    """An adaptor plus the frozen LM it was trained against."""

    def __init__(
        self,
        manifest: Manifest,
        adaptor: Adaptor,
        lm,
        tokenizer,
        device: str = "cpu",
        precision: str = "fp32",
        encoder: Callable[[], object] | None = None,
        calibration_cache: calibration.CalibrationFile | None = None,
    ):
        """encoder: a function giving the checkpoint's encoder (called once, on first int8 decode: int8's
        scales are measured on the soft prompts of `CALIBRATION_TEXTS`' own embeddings); calibration_cache:
        the file that measurement is kept in (calibration.py), None to measure it every time."""
        precision = resolve_precision(precision, device)
        if precision != "fp32" and not LlamaWeights.supports(lm):
            raise MixaugError(f"{precision} decoding needs a Llama-family LM; this one is {lm.config.model_type}")
        self.precision = precision
        self._encoder = encoder
        self.calibration_cache = calibration_cache
        self._calibration: dict | None = None  # int8's measurement, once read or measured
        self.calibration_digest = ""  # its identity (calibration.digest), once known
        self._weights: LlamaWeights | None = None  # the decode engine's, built on first use
        self._spell = None  # anchoring's word -> token ids, built on first use
        self.totals = DecodeStats()  # every decode of this inverter, for speed reports
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
        template_tokens = len(self.prefix_ids) + len(self.suffix_ids)
        if template_tokens > MAX_TEMPLATE_TOKENS:  # each prompt token costs KV cache in every decode slot
            raise MixaugError(
                f"checkpoint prompt_template is {template_tokens:,} tokens long: at most {MAX_TEMPLATE_TOKENS} "
                "(every prompt token is held in the decode cache of every row)"
            )
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
        stats: DecodeStats | None = None,
        on_row: Callable[[int, str], None] | None = None,
        anchors: Sequence[Anchors] | None = None,
    ) -> list[str]:
        """Decode each embedding row into a sentence. `seeds` (one per row) matter only when sampling.
        batch_size = rows decoding at once (cache slots). As rows finish, on_batch(k) reports how many
        and on_row(i, text) hands over each one (so a caller can keep them if the run is interrupted).
        anchors: per row, words and logit bonuses to pull its decode toward (anchor.py; None or () = none)."""
        options = options or DecodeOptions()
        seeds = list(seeds) if seeds is not None else [0] * len(emb)
        if len(emb) == 0:
            return []
        bias = self._bias(anchors)
        with self._accounted(stats) as run:
            if LlamaWeights.supports(self.lm):
                return self._decode_engine(emb, seeds, options, batch_size, on_batch, on_row, run, bias)
            return self._decode_static(emb, seeds, options, batch_size, on_batch, on_row, run, bias)

    def _bias(self, anchors: Sequence[Anchors] | None, known: Sequence[Sequence[int]] | None = None):
        """The decode engine's bias for these rows' anchors (None when no row has any). known: tokens each
        row's decode continues (they count as written: a word they hold is spent)."""
        if anchors is None or not any(anchors):
            return None
        if self._spell is None:
            self._spell = speller(self.tokenizer)
        per_row = [TokenBias(a, self._spell) if a else None for a in anchors]

        def bias(row: int, tokens: list[int]) -> dict[int, float]:
            b = per_row[row]
            if b is None:
                return {}
            return b(list(known[row]) + tokens if known is not None else tokens)

        return bias

    @contextmanager
    def _accounted(self, stats: DecodeStats | None = None):
        """A DecodeStats for one call, timed, and added to `totals` (and to `stats`) however the call ends."""
        run, started = DecodeStats(), time.perf_counter()
        try:
            yield run
        finally:
            run.seconds = time.perf_counter() - started
            self.totals.add(run)
            if stats is not None:
                stats.add(run)

    def _engine_weights(self) -> LlamaWeights:
        if self._weights is None:
            act_max = self._act_max() if self.precision == "int8" else None
            self._weights = LlamaWeights(self.lm, self.precision, act_max)
        return self._weights

    def _act_max(self) -> dict:
        """int8's calibration: read from its cache file when an intact one is there, else measured and kept;
        its digest is then `calibration_digest` (what the decode cache's int8 file is named by)."""
        if self._calibration is None:
            act_max = calibration.load(self.calibration_cache, self.lm)
            if act_max is None:
                act_max = calibrate(self.lm, self._calibration_inputs())
                calibration.save(self.calibration_cache, act_max)
            self._calibration, self.calibration_digest = act_max, calibration.digest(act_max)
        return self._calibration

    def calibration_id(self) -> str:
        """The digest of the int8 calibration this inverter decodes with ("" for fp32), read or measured now."""
        if self.precision != "int8":
            return ""
        self._act_max()
        return self.calibration_digest

    def _calibration_inputs(self) -> list[torch.Tensor]:
        """What int8's smoothing scales are measured on: for each of `CALIBRATION_TEXTS`, the prompt the
        decoder really reads (the soft vectors of the text's own embedding), then the text as it would
        write it. Soft vectors are not token embeddings: scales measured with the text's tokens in their
        place let int8 diverge from fp32 more often (0.0585 vs 0.0495 words per word, issue 22)."""
        if self._encoder is None:
            raise MixaugError("int8 decoding needs the checkpoint's encoder to calibrate on (Inverter(encoder=...))")
        soft = self.soft_prompts(self._encoder().encode(list(CALIBRATION_TEXTS)))
        prefix, suffix = self.embed_tokens(self.prefix_ids), self.embed_tokens(self.suffix_ids)
        inputs = []
        for text, vectors in zip(CALIBRATION_TEXTS, soft):
            ids = self.tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"][0]
            inputs.append(torch.cat([prefix, vectors.to(prefix.dtype), suffix, self.embed_tokens(ids)]))
        return inputs

    def _rest_of_prompt(self, emb: np.ndarray) -> torch.Tensor:
        """The row-specific part of the prompt: soft vectors + template suffix [k, K + S, H]."""
        soft = self.soft_prompts(emb)
        suf = self.embed_tokens(self.suffix_ids)[None].expand(len(emb), -1, -1)
        return torch.cat([soft, suf.to(soft.dtype)], dim=1)

    def _decode_engine(self, emb, seeds, options, batch_size, on_batch, on_row, stats, bias=None) -> list[str]:
        """Llama-family LMs: continuous batching over the decode engine's cache slots."""

        def done(row: int, tokens: list[int]) -> None:
            if on_row:
                on_row(row, self._detok(tokens))
            if on_batch:
                on_batch(1)

        tokens = self._generate(emb, seeds, options, batch_size, stats, on_done=done, bias=bias)
        return [self._detok(t) for t in tokens]

    def _generate(self, emb, seeds, options, batch_size, stats, known=None, on_done=None, bias=None):
        """The decode engine over these rows. Prompt: template, the row's soft vectors, then the row of
        `known` tokens [n, L] if given (the same length for every row)."""

        def prompts(rows):
            rest = self._rest_of_prompt(emb[list(rows)])
            if known is None:
                return rest
            return torch.cat([rest, self.embed_tokens(known[list(rows)]).to(rest.dtype)], dim=1)

        return generate(
            self._engine_weights(),
            self.embed_tokens,
            self.embed_tokens(self.prefix_ids),
            prompts,
            len(emb),
            self.eos_id,
            seeds,
            options,
            slots=batch_size,
            on_done=on_done,
            stats=stats,
            bias=bias,
        )

    def _decode_static(self, emb, seeds, options, batch_size, on_batch, on_row, stats, bias=None) -> list[str]:
        """Any other causal LM: static batches through HF forward calls."""
        texts: list[str] = []
        for start in range(0, len(emb), batch_size):
            chunk = emb[start : start + batch_size]
            part = (lambda row, toks, at=start: bias(at + row, toks)) if bias is not None else None
            texts.extend(self._decode_batch(chunk, seeds[start : start + batch_size], options, stats, part))
            if on_row:
                for i in range(start, len(texts)):
                    on_row(i, texts[i])
            if on_batch:
                on_batch(len(chunk))
        return texts

    @torch.inference_mode()
    def continue_tokens(
        self,
        emb: np.ndarray,
        prefixes: Sequence[Sequence[int]],
        seeds: Sequence[int],
        options: DecodeOptions,
        batch_size: int = 32,
        anchors: Sequence[Anchors] | None = None,
    ) -> list[list[int]]:
        """Each row's continuation of its token prefix (prompt: template, the row's soft vectors, the
        prefix's tokens), through the decode engine: at most options.max_new_tokens tokens, without EOS, so
        a continuation shorter than that ended with EOS. For encoder-guided search (`search.py`); anchors as
        in `decode`, the prefix's tokens counting as written."""
        if not LlamaWeights.supports(self.lm):
            raise MixaugError("encoder-guided search needs a Llama-family LM (it runs on the decode engine)")
        out: list[list[int]] = [[] for _ in prefixes]
        by_length: dict[int, list[int]] = {}
        for i, p in enumerate(prefixes):
            by_length.setdefault(len(p), []).append(i)
        with self._accounted() as run:
            for length, idx in by_length.items():
                known = torch.tensor([list(prefixes[i]) for i in idx], dtype=torch.long) if length else None
                rows_emb = np.asarray(emb, dtype=np.float32)[idx]
                part = self._bias([anchors[i] for i in idx], [prefixes[i] for i in idx]) if anchors else None
                got = self._generate(
                    rows_emb, [seeds[i] for i in idx], options, batch_size, run, known=known, bias=part
                )
                for i, toks in zip(idx, got):
                    out[i] = toks
        return out

    def detokenize(self, tokens: Sequence[int]) -> str:
        return self._detok(list(tokens))

    @torch.inference_mode()
    def decode_ceiling(self, emb: np.ndarray, new_tokens: int, batch_size: int) -> float:
        """Tokens/s of a plain KV-cached greedy loop over one full batch of these rows (repeated if there are
        fewer), each running exactly `new_tokens` tokens: the speed the engine's useful tokens/s is
        compared with."""
        if not LlamaWeights.supports(self.lm):
            raise MixaugError("the decode ceiling is measured for Llama-family LMs only")
        rows = np.resize(np.asarray(emb, dtype=np.float32), (batch_size, emb.shape[1]))
        return ceiling(
            self._engine_weights(),
            self.embed_tokens,
            self.embed_tokens(self.prefix_ids),
            self._rest_of_prompt(rows),
            max(1, new_tokens),
        )

    def _decode_batch(
        self,
        emb: np.ndarray,
        seeds: Sequence[int],
        opt: DecodeOptions,
        stats: DecodeStats | None = None,
        bias: Bias | None = None,
    ) -> list[str]:
        """One static batch through HF forward calls, run to its longest row (the reference the engine is
        tested against)."""
        b = len(emb)
        out = self.lm(inputs_embeds=self.prompt_embeds(self.soft_prompts(emb)), use_cache=True)
        past, logits = out.past_key_values, out.logits[:, -1, :].float()
        gens = [torch.Generator().manual_seed(int(s)) for s in seeds] if opt.temperature > 0 else None
        history = torch.zeros(b, max(opt.max_new_tokens, 1), dtype=torch.long)
        lengths = torch.zeros(b, dtype=torch.long)
        done = torch.zeros(b, dtype=torch.bool)
        for step in range(opt.max_new_tokens):
            logits = logits.cpu().clone()
            if bias is not None:
                add_bias(logits, [bias(i, history[i, : int(lengths[i])].tolist()) for i in range(b)])
            ban_repeated_ngrams(logits, history, lengths, opt.no_repeat_ngram)
            nxt = choose_tokens(logits, gens, opt).masked_fill(done, self.eos_id)
            history[~done, step] = nxt[~done]
            lengths += (~done).long()
            done |= nxt == self.eos_id
            if bool(done.all()):
                break
            out = self.lm(input_ids=nxt[:, None].to(self.device), past_key_values=past, use_cache=True)
            past, logits = out.past_key_values, out.logits[:, -1, :].float()
        if stats is not None:
            stats.rows += b
            stats.tokens += int(lengths.sum())
        return [self._detok(history[i, : int(lengths[i])].tolist()) for i in range(b)]

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


def load_inverter(
    checkpoint: str | Path,
    device: str = "cpu",
    lm_spec: str | None = None,
    precision: str = "fp32",
    encoder: Callable[[], object] | None = None,
) -> Inverter:
    """Load a checkpoint folder and the LM it names; a different LM (weights hash) is an error. The whole
    checkpoint is validated first, so a hostile manifest is refused before anything is allocated. lm_spec
    (a user's override) is read against the CWD, the manifest's lm against the checkpoint folder. encoder:
    a function giving the checkpoint's encoder where the caller has it loaded; else int8 loads it itself."""
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
    if encoder is None:

        def encoder():
            return load_encoder(manifest.encoder, device, manifest.normalize, base=folder)

    cache = calibration.calibration_file(folder, device) if resolve_precision(precision, device) == "int8" else None
    return Inverter(manifest, adaptor, lm, tokenizer, device, precision, encoder, cache)


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
