"""The optimizer's side of a training run: the batches each step sees, the loss, the learning-rate schedule,
stage 3's perturbed inputs, the state --resume reads back, and the steps themselves (`Run`, `run_steps`).
`train.train` sets a run up (corpus, models, resume checks) and hands it to `run_steps`."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import TrainConfig
from ..data.write import append_named, write_named
from ..errors import MixaugError
from ..errors import summary as _line
from ..inversion.checkpoint import Adaptor, Manifest, save_checkpoint
from ..inversion.invert import Inverter


# -- batches -------------------------------------------------------------------------------------
class _PermCache:
    """Rows of each step: a seeded permutation per epoch, so a resumed run sees the same stream."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.perms = n, seed, {}

    def batch(self, step: int, batch_size: int) -> list[int]:
        out = []
        for pos in range(step * batch_size, (step + 1) * batch_size):
            epoch, offset = divmod(pos, self.n)
            if epoch not in self.perms:
                self.perms = {epoch: np.random.default_rng([self.seed, epoch]).permutation(self.n)}
            out.append(int(self.perms[epoch][offset]))
        return out


def lm_loss(inverter: Inverter, soft: torch.Tensor, targets: Sequence[str], max_tokens: int) -> torch.Tensor:
    """Mean token NLL of each target (+ end-of-turn) given its soft prompt inside the template."""
    return prompt_loss(inverter, inverter.prompt_embeds(soft), targets, max_tokens)


def prompt_loss(inverter: Inverter, prompt: torch.Tensor, targets: Sequence[str], max_tokens: int) -> torch.Tensor:
    """Mean token NLL of each target (+ end-of-turn) after its prompt embeddings [B, P, H] (any prompt of the
    inverter's LM: lm_loss's template, or a corrector's longer one)."""
    tok = inverter.tokenizer
    ids = [tok(t, add_special_tokens=False)["input_ids"][:max_tokens] + [inverter.eos_id] for t in targets]
    length = max(len(x) for x in ids)
    b = len(ids)
    target = torch.full((b, length), inverter.eos_id, dtype=torch.long)
    labels = torch.full((b, length), -100, dtype=torch.long)
    mask = torch.zeros((b, length), dtype=torch.long)
    for i, x in enumerate(ids):
        target[i, : len(x)] = torch.tensor(x)
        labels[i, : len(x)] = torch.tensor(x)
        mask[i, : len(x)] = 1
    embeds = torch.cat([prompt, inverter.embed_tokens(target).to(prompt.dtype)], dim=1)
    p = prompt.shape[1]
    attn = torch.cat([torch.ones((b, p), dtype=torch.long), mask], dim=1).to(inverter.device)
    # Only the positions that predict target tokens need vocabulary logits (saves ~30% of the step).
    logits = inverter.lm(inputs_embeds=embeds, attention_mask=attn, logits_to_keep=length + 1).logits[:, :-1]
    return torch.nn.functional.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]), labels.to(inverter.device).reshape(-1), ignore_index=-100
    )


# -- state (safetensors + json, never pickle) -------------------------------------------------------
def trainable_params(adaptor: Adaptor, lm) -> dict[str, torch.nn.Parameter]:
    params = {f"adaptor.{k}": v for k, v in adaptor.named_parameters()}
    params.update({f"lm.{k}": v for k, v in lm.named_parameters() if v.requires_grad})
    return params


def _save_state(run: Path, params: dict, optimizer, info: dict) -> None:
    from safetensors.torch import save

    tensors = {f"param/{k}": v.detach().cpu().contiguous() for k, v in params.items()}
    names = list(params)
    for idx, st in optimizer.state_dict()["state"].items():
        for key, val in st.items():
            tensors[f"optim/{names[idx]}/{key}"] = torch.as_tensor(val).detach().cpu().contiguous()
    write_named(run / "state.safetensors", save(tensors))
    write_named(run / "state.json", json.dumps(info, indent=1).encode())


def load_state(run: Path, params: dict, optimizer, info: dict) -> dict:
    """The weights and optimizer moments of state.safetensors, checked against the run's parameters; `info`
    is state.json as `_state_info` read it."""
    from safetensors.torch import load_file

    try:
        tensors = load_file(run / "state.safetensors")
    except Exception as exc:  # safetensors raises its own types for a bad file
        raise MixaugError(f"cannot resume {run}: state.safetensors: {_line(exc)}") from None
    with torch.no_grad():
        for k, v in params.items():
            saved = tensors.get(f"param/{k}")
            if saved is None or saved.shape != v.shape or saved.dtype != v.dtype:
                raise MixaugError(f"cannot resume {run}: state.safetensors has no {k} of shape {tuple(v.shape)}")
            v.copy_(saved)
    names = list(params)
    sd = optimizer.state_dict()
    state = {}
    for idx, name in enumerate(names):
        entry = {key.rsplit("/", 1)[1]: t for key, t in tensors.items() if key.startswith(f"optim/{name}/")}
        for key, t in entry.items():
            if key != "step" and t.shape != params[name].shape:
                raise MixaugError(
                    f"cannot resume {run}: state.safetensors' optimizer {key} of {name} has the wrong shape"
                )
        if entry:
            state[idx] = entry
    sd["state"] = state
    optimizer.load_state_dict(sd)
    return info


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up, constant, then (with decay_from) a linear fall to 0 at max_steps. A function of the
    step alone, so a resumed run follows the same schedule as an uninterrupted one; a phase that stops at
    or before decay_from is not affected by it."""
    lr = cfg.lr * min(1.0, (step + 1) / max(1, cfg.warmup_steps))
    if cfg.decay_from is not None and step >= cfg.decay_from:
        lr *= (cfg.max_steps - step) / (cfg.max_steps - cfg.decay_from)
    return lr


def _stage3_inputs(emb, targets, train_emb, train_texts, cfg: TrainConfig, step: int):
    """Stage-3 robustness: perturb inputs so off-manifold (mixed) embeddings still decode fluently."""
    if cfg.noise_std <= 0 and cfg.mix_prob <= 0:
        return emb, targets
    g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
    targets = list(targets)
    if cfg.mix_prob > 0:
        pick = torch.rand(len(targets), generator=g) < cfg.mix_prob
        partners = torch.randint(0, len(train_texts), (len(targets),), generator=g)
        lam = 0.7 + 0.3 * torch.rand(len(targets), generator=g)  # dominant parent keeps >= 70%
        other = torch.as_tensor(train_emb[partners.numpy()], device=emb.device)
        mixed = lam[:, None].to(emb.device) * emb + (1 - lam[:, None].to(emb.device)) * other
        emb = torch.where(pick[:, None].to(emb.device), mixed, emb)
    if cfg.noise_std > 0:
        emb = emb + cfg.noise_std * torch.randn(emb.shape, generator=g).to(emb.device)
    return torch.nn.functional.normalize(emb, dim=-1), targets


def _append_jsonl(path: Path, record: dict) -> None:
    append_named(path, (json.dumps(record, ensure_ascii=False) + "\n").encode())


def _hardware(device: str) -> str:
    import platform

    if device == "cuda":
        return torch.cuda.get_device_name(0)
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def stderr_console():
    from rich.console import Console

    return Console(stderr=True)


# -- the run -------------------------------------------------------------------------------------
@dataclass
class Run:
    """A training run being stepped: its models, optimizer and data, and what its checkpoints record."""

    cfg: TrainConfig
    folder: Path
    stage: str  # "align" (stage 1) or "adapt" (stage 2, from an init checkpoint)
    device: str
    manifest: Manifest
    adaptor: Adaptor
    lm: Any
    inverter: Inverter
    encoder: Any
    params: dict[str, torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    train_texts: list[str]
    eval_texts: list[str]
    train_emb: np.ndarray
    eval_emb: np.ndarray
    corpus_sha256: str
    step: int = 0
    elapsed_before: float = 0.0
    history: list[dict] = field(default_factory=list)
    start: float = 0.0

    def elapsed(self) -> float:
        return self.elapsed_before + time.time() - self.start

    def log(self, record: dict) -> None:
        _append_jsonl(self.folder / "train_log.jsonl", record)

    def checkpoint(self, final_metrics: dict | None = None) -> None:
        """checkpoint/ (the usable checkpoint) and the state --resume reads back, as of this step."""
        self.manifest.training = {
            "stage": self.stage,
            "config": asdict(self.cfg),
            "steps": self.step,
            "train_sentences": len(self.train_texts),
            "heldout_sentences": len(self.eval_texts),
            "wall_minutes": round(self.elapsed() / 60, 2),
            "hardware": _hardware(self.device),
        }
        if final_metrics:
            self.manifest.metrics = final_metrics
        save_checkpoint(
            self.folder / "checkpoint", self.manifest, self.adaptor, self.lm if self.manifest.lora else None
        )
        _save_state(
            self.folder,
            self.params,
            self.optimizer,
            {
                "step": self.step,
                "elapsed_s": self.elapsed(),
                "config": asdict(self.cfg),
                "corpus_sha256": self.corpus_sha256,
                "evals": self.history,
            },
        )

    def evaluate(self) -> dict:
        """The held-out sentences decoded and re-encoded: cosine, token-F1 and more, kept in the history."""
        from ..encode import cosine_rows
        from ..metrics import reconstruction_report

        self.lm.eval()
        recon = self.inverter.decode(self.eval_emb, batch_size=64)
        cos = cosine_rows(self.encoder.encode(recon), self.eval_emb)
        self.lm.train()
        report = {
            "step": self.step,
            **reconstruction_report(self.eval_texts, recon, cos),
            "examples": [[a, b] for a, b in list(zip(self.eval_texts, recon))[:3]],
        }
        self.history.append({k: v for k, v in report.items() if k != "examples"})
        return report

    def out_of_budget(self) -> bool:
        cfg = self.cfg
        return (cfg.max_steps is not None and self.step >= cfg.max_steps) or (
            cfg.max_minutes is not None and self.elapsed() >= cfg.max_minutes * 60
        )


def run_steps(run: Run, progress: bool, say: Callable[[str], None]) -> None:
    """The optimizer's steps until the budget is spent, each logged, evaluated and saved on its schedule;
    Ctrl-C saves the run before it stops."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    cfg = run.cfg
    perms = _PermCache(len(run.train_texts), cfg.seed)
    autocast = torch.autocast(
        device_type="cuda" if run.device == "cuda" else "cpu",
        dtype=torch.bfloat16,
        enabled=cfg.bf16 and run.device in ("cpu", "cuda"),
    )
    run.lm.train()
    losses: list[float] = []
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("step {task.completed}"),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=stderr_console(),
        disable=not progress,
    ) as bar:
        task = bar.add_task("training", total=cfg.max_steps, completed=run.step, status="")
        try:
            while not run.out_of_budget():
                lr = learning_rate(cfg, run.step)
                losses.append(_step(run, perms, autocast, lr))
                run.step += 1
                bar.update(task, completed=run.step, status=f"loss {np.mean(losses[-cfg.log_every :]):.3f}")
                _on_schedule(run, losses, lr, say)
        except KeyboardInterrupt:
            say(f"interrupted at step {run.step}: saving")
            run.checkpoint()
            raise


def _step(run: Run, perms: _PermCache, autocast, lr: float) -> float:
    """One optimizer step on the step's batch; its loss."""
    cfg = run.cfg
    idx = perms.batch(run.step, cfg.train_batch)
    emb = torch.as_tensor(run.train_emb[idx], device=run.device)
    targets = [run.train_texts[i] for i in idx]
    emb, targets = _stage3_inputs(emb, targets, run.train_emb, run.train_texts, cfg, run.step)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    with autocast:
        loss = lm_loss(run.inverter, run.adaptor(emb), targets, cfg.max_target_tokens)
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(list(run.params.values()), 1.0)
    run.optimizer.step()
    return float(loss.detach())


def _on_schedule(run: Run, losses: list[float], lr: float, say: Callable[[str], None]) -> None:
    """After a step: the log line, the held-out evaluation and the saved checkpoint, each when it is due."""
    cfg, step = run.cfg, run.step
    if step % cfg.log_every == 0:
        run.log(
            {
                "step": step,
                "loss": round(float(np.mean(losses[-cfg.log_every :])), 4),
                "lr": lr,
                "elapsed_s": round(run.elapsed(), 1),
            }
        )
    if step % cfg.eval_every == 0:
        report = run.evaluate()
        run.log({"eval": report, "elapsed_s": round(run.elapsed(), 1)})
        say(f"step {step}: held-out cosine {report['cosine']:.3f} token-F1 {report['token_f1']:.3f}")
    if step % cfg.save_every == 0:
        run.checkpoint()


def finish(run: Run) -> Path:
    """The last evaluation (unless this step's is already done) and the final checkpoint, with its metrics."""
    history = run.history
    final = (
        run.evaluate()
        if run.step and (not history or history[-1]["step"] != run.step)
        else (history[-1] if history else {})
    )
    if final:
        run.log({"eval": final, "elapsed_s": round(run.elapsed(), 1)})
    run.checkpoint({k: v for k, v in final.items() if k != "examples"} if final else None)
    return run.folder / "checkpoint"
