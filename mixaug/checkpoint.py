"""The inversion checkpoint: a readable folder, never a pickle.

    manifest.json        encoder, LM (+ weights hash), soft tokens, prompt template, adaptor shape,
                         training facts and metrics
    adaptor.safetensors  the MLP that maps a sentence embedding to K soft-prompt vectors
    lora/                optional LoRA adapters on the LM (peft layout, safetensors)
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from .errors import MixaugError
from .io import atomic_folder

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ADAPTOR_FILE = "adaptor.safetensors"
LORA_DIR = "lora"
DEFAULT_CHECKPOINT = Path(__file__).parent / "checkpoints" / "default"

# The soft prompt is framed as a chat turn of an instruction LM; {soft} marks where the vectors go.
DEFAULT_TEMPLATE = "<|im_start|>user\n{soft}<|im_end|>\n<|im_start|>assistant\n"


@dataclass
class Manifest:
    """Everything needed to rebuild and validate an inverter; written as manifest.json."""

    encoder: str
    encoder_dim: int
    normalize: bool
    lm: str
    lm_weights_sha256: str
    lm_hidden_size: int
    num_soft_tokens: int = 8
    hidden_dim: int = 1024
    prompt_template: str = DEFAULT_TEMPLATE
    lora: dict | None = None
    training: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    @property
    def adaptor_shape(self) -> dict:
        return {
            "input_dim": self.encoder_dim,
            "hidden_dim": self.hidden_dim,
            "num_soft_tokens": self.num_soft_tokens,
            "output_dim": self.lm_hidden_size,
        }

    def to_json(self) -> str:
        data = asdict(self)
        data["adaptor"] = self.adaptor_shape
        return json.dumps(data, indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str) -> "Manifest":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise MixaugError(f"corrupt checkpoint {where}: manifest.json is not JSON ({exc.msg})") from None
        data.pop("adaptor", None)
        known = set(cls.__dataclass_fields__)
        missing = [k for k in ("encoder", "encoder_dim", "lm", "lm_weights_sha256", "lm_hidden_size") if k not in data]
        if missing:
            raise MixaugError(f"corrupt checkpoint {where}: manifest.json lacks {', '.join(missing)}")
        if data.get("format_version", FORMAT_VERSION) > FORMAT_VERSION:
            raise MixaugError(f"checkpoint {where} has format {data['format_version']}; upgrade mixaug")
        return cls(**{k: v for k, v in data.items() if k in known})


class Adaptor(nn.Module):
    """Sentence embedding -> K soft-prompt vectors in the LM's input-embedding space."""

    def __init__(self, input_dim: int, hidden_dim: int, num_soft_tokens: int, output_dim: int):
        super().__init__()
        self.num_soft_tokens = num_soft_tokens
        self.output_dim = output_dim
        self.net = nn.Sequential(
            nn.Linear(input_dim, hidden_dim),
            nn.GELU(),
            nn.Linear(hidden_dim, num_soft_tokens * output_dim),
        )

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        return self.net(emb).view(emb.shape[0], self.num_soft_tokens, self.output_dim)

    @classmethod
    def from_manifest(cls, manifest: Manifest) -> "Adaptor":
        return cls(manifest.encoder_dim, manifest.hidden_dim, manifest.num_soft_tokens, manifest.lm_hidden_size)


def save_checkpoint(
    folder: str | Path, manifest: Manifest, adaptor: Adaptor, lora_model=None, dtype=torch.float32
) -> Path:
    """Write manifest + adaptor (+ LoRA) into a fresh folder and swap it in atomically."""
    with atomic_folder(folder) as tmp:
        _write_adaptor(tmp, adaptor, dtype)
        if lora_model is not None:
            lora_model.save_pretrained(tmp / LORA_DIR, safe_serialization=True)
            _finish_lora(tmp / LORA_DIR, manifest, dtype)
        (tmp / MANIFEST).write_text(manifest.to_json())
    return Path(folder)


def _write_adaptor(folder: Path, adaptor: Adaptor, dtype) -> None:
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu", dtype).contiguous() for k, v in adaptor.state_dict().items()}
    save_file(tensors, folder / ADAPTOR_FILE, metadata={"format": "mixaug-adaptor"})


def _finish_lora(lora_dir: Path, manifest: Manifest, dtype) -> None:
    """Cast the adapters to dtype and keep the folder readable, portable and reproducible: peft writes a
    blank model card, this machine's path to the base model (the manifest already says which LM it is) and
    target_modules in set order, which changes from one process to the next."""
    (lora_dir / "README.md").unlink(missing_ok=True)
    config_path = lora_dir / "adapter_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = manifest.lm
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if dtype != torch.float32:
        _cast_safetensors(lora_dir / "adapter_model.safetensors", dtype)


def _cast_safetensors(path: Path, dtype) -> None:
    from safetensors.torch import load_file, save_file

    tensors = {k: v.to(dtype) for k, v in load_file(path).items()}
    save_file(tensors, path)


def read_manifest(folder: str | Path) -> Manifest:
    folder = Path(folder)
    if not folder.is_dir():
        raise MixaugError(f"checkpoint not found: {folder} (a checkpoint is a folder with manifest.json)")
    path = folder / MANIFEST
    if not path.exists():
        raise MixaugError(f"corrupt checkpoint {folder}: no manifest.json")
    return Manifest.from_json(path.read_text(encoding="utf-8"), str(folder))


def load_adaptor(folder: str | Path, manifest: Manifest) -> Adaptor:
    """Build the adaptor from the manifest and load its safetensors weights (shapes must match)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    path = folder / ADAPTOR_FILE
    if not path.exists():
        raise MixaugError(f"corrupt checkpoint {folder}: no {ADAPTOR_FILE}")
    try:
        tensors = load_file(path)
    except (SafetensorError, OSError, ValueError) as exc:
        raise MixaugError(f"corrupt checkpoint {folder}: cannot read {ADAPTOR_FILE} ({exc})") from None
    adaptor = Adaptor.from_manifest(manifest)
    try:
        adaptor.load_state_dict({k: v.float() for k, v in tensors.items()})
    except RuntimeError:
        raise MixaugError(
            f"corrupt checkpoint {folder}: {ADAPTOR_FILE} does not match the manifest's adaptor shape "
            f"{manifest.adaptor_shape}"
        ) from None
    return adaptor.eval()


def export_checkpoint(source: str | Path, dest: str | Path, dtype=torch.float16) -> Path:
    """Copy manifest + adaptor + LoRA (no training state) into dest, casting weights to dtype."""
    source = Path(source)
    manifest = read_manifest(source)
    adaptor = load_adaptor(source, manifest)
    with atomic_folder(dest) as tmp:
        _write_adaptor(tmp, adaptor, dtype)
        if manifest.lora:
            shutil.copytree(source / LORA_DIR, tmp / LORA_DIR)
            _finish_lora(tmp / LORA_DIR, manifest, dtype)
        (tmp / MANIFEST).write_text(manifest.to_json())
    return Path(dest)
