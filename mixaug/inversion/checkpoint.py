"""The inversion checkpoint: a readable folder, never a pickle.

manifest.json        encoder, LM (+ weights hash), soft tokens, prompt template, adaptor shape,
                     training facts and metrics
adaptor.safetensors  the MLP that maps a sentence embedding to K soft-prompt vectors
lora/                optional LoRA adapters on the LM (peft layout, safetensors)

Every field is refused on its own when out of bounds (see the MAX_ constants); the prompt template, bounded
here in characters, is bounded in the LM's tokens too, by the inverter that tokenizes it.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..data.write import atomic_folder, copy_named, read_small
from ..errors import MixaugError
from ..errors import summary as _line

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ADAPTOR_FILE = "adaptor.safetensors"
LORA_DIR = "lora"
LORA_FILES = ("adapter_config.json", "adapter_model.safetensors")  # all of lora/ that mixaug reads
DEFAULT_CHECKPOINT = Path(__file__).parents[1] / "checkpoints" / "default"

# The soft prompt is framed as a chat turn of an instruction LM; {soft} marks where the vectors go.
DEFAULT_TEMPLATE = "<|im_start|>user\n{soft}<|im_end|>\n<|im_start|>assistant\n"

# Bounds on what a manifest may ask for: far above any real inverter, far below an allocation that hurts.
MAX_DIM = 65536  # encoder_dim, hidden_dim, lm_hidden_size
MAX_SOFT_TOKENS = 512
MAX_LORA_R = 1024
MAX_TEMPLATE_CHARS = 10_000
MAX_TEMPLATE_TOKENS = 256  # checked once the LM's tokenizer is loaded, before any decode allocates its cache
MAX_JSON_BYTES = 16 << 20  # manifest.json, adapter_config.json, a safetensors header
_DTYPE_BYTES = {"F16": 2, "BF16": 2, "F32": 4}
_REQUIRED = ("encoder", "encoder_dim", "lm", "lm_weights_sha256", "lm_hidden_size")


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
    def from_json(cls, text: str, where: str) -> Manifest:
        """Parse manifest.json, refusing any field of the wrong type or out of range: these values size
        tensors and loops later, so a hostile one must stop here as a one-line error."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise MixaugError(f"corrupt checkpoint {where}: manifest.json is not JSON ({exc.msg})") from None
        except (ValueError, RecursionError) as exc:  # a 5,000-digit number, [[[[...
            raise MixaugError(f"corrupt checkpoint {where}: manifest.json is not JSON ({_line(exc)})") from None
        if not isinstance(data, dict):
            raise MixaugError(f"corrupt checkpoint {where}: manifest.json must be a JSON object, found {_show(data)}")
        version = data.get("format_version", FORMAT_VERSION)
        if not _is_int(version) or version < 1:
            raise MixaugError(
                f"corrupt checkpoint {where}: manifest.json field 'format_version' must be a positive integer, "
                f"found {_show(version)}"
            )
        if version > FORMAT_VERSION:
            raise MixaugError(f"checkpoint {where} has format {version}; upgrade mixaug")
        missing = [k for k in _REQUIRED if k not in data]
        if missing:
            raise MixaugError(f"corrupt checkpoint {where}: manifest.json lacks {', '.join(missing)}")
        data.pop("adaptor", None)
        known = set(cls.__dataclass_fields__)
        data = {k: v for k, v in data.items() if k in known}
        check_manifest_fields(data, where)
        return cls(**data)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _show(value, limit: int = 60) -> str:
    """A found value for a one-line message: JSON, shortened."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_spec(value) -> bool:
    return (
        isinstance(value, str)
        and bool(value.strip())
        and len(value) <= 4096
        and not any(c in value for c in "\x00\n\r")
    )


def check_manifest_fields(data: dict, where: str) -> None:
    """Type and range checks for manifest fields (those present; absent ones take the dataclass defaults)."""

    def bad(key: str, want: str, value) -> None:
        raise MixaugError(
            f"corrupt checkpoint {where}: manifest.json field '{key}' must be {want}, found {_show(value)}"
        )

    for key in ("encoder", "lm"):
        if key in data and not _is_spec(data[key]):
            bad(key, "a model name or path (a one-line string)", data[key])
    sha = data.get("lm_weights_sha256", "0" * 64)
    if not (isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)):
        bad("lm_weights_sha256", "64 lowercase hex digits", sha)
    for key, top in (
        ("encoder_dim", MAX_DIM),
        ("lm_hidden_size", MAX_DIM),
        ("hidden_dim", MAX_DIM),
        ("num_soft_tokens", MAX_SOFT_TOKENS),
    ):
        if key in data and not (_is_int(data[key]) and 1 <= data[key] <= top):
            bad(key, f"an integer from 1 to {top}", data[key])
    if "normalize" in data and not isinstance(data["normalize"], bool):
        bad("normalize", "true or false", data["normalize"])
    template = data.get("prompt_template", DEFAULT_TEMPLATE)
    if not (isinstance(template, str) and template.count("{soft}") == 1 and len(template) <= MAX_TEMPLATE_CHARS):
        bad("prompt_template", f"a string of at most {MAX_TEMPLATE_CHARS} characters with {{soft}} once", template)
    for key in ("training", "metrics"):
        if key in data and not isinstance(data[key], dict):
            bad(key, "an object", data[key])
    lora = data.get("lora")
    if lora is None:
        return
    if not isinstance(lora, dict):
        bad("lora", "null or an object with r, alpha and target_modules", lora)
    r, alpha, modules = lora.get("r"), lora.get("alpha"), lora.get("target_modules")
    if not (_is_int(r) and 1 <= r <= MAX_LORA_R):
        bad("lora.r", f"an integer from 1 to {MAX_LORA_R}", r)
    if not _is_number(alpha):
        bad("lora.alpha", "a number", alpha)
    if not (isinstance(modules, list) and 0 < len(modules) <= 256 and all(_is_spec(m) for m in modules)):
        bad("lora.target_modules", "a non-empty list of module names", modules)


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
    def from_manifest(cls, manifest: Manifest) -> Adaptor:
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
    """The checked manifest of a checkpoint folder (see Manifest.from_json); weights are not looked at."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MixaugError(f"checkpoint not found: {folder} (a checkpoint is a folder with manifest.json)")
    path = folder / MANIFEST
    if not path.is_file():
        raise MixaugError(f"corrupt checkpoint {folder}: no manifest.json")
    return Manifest.from_json(_read_text(path, folder, MANIFEST), str(folder))


def validate_checkpoint(folder: str | Path, manifest: Manifest | None = None) -> Manifest:
    """Check a checkpoint without building a tensor: the manifest, then the safetensors headers and the LoRA
    config against it. Cheap (headers only), so callers run it before loading any model; returns the manifest."""
    folder = Path(folder)
    if manifest is None:
        manifest = read_manifest(folder)
    else:
        check_manifest_fields(asdict(manifest), str(folder))
    _check_adaptor_file(folder, manifest)
    if manifest.lora:
        _check_lora(folder, manifest)
    return manifest


def _read_text(path: Path, folder: Path, label: str) -> str:
    """A small JSON file's text, read with a size bound so a huge file cannot exhaust memory."""
    raw = read_small(path, f"corrupt checkpoint {folder}: {label}", MAX_JSON_BYTES)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MixaugError(f"corrupt checkpoint {folder}: {label} is not UTF-8 text") from None


def read_safetensors_header(path: Path, folder: Path, label: str) -> dict[str, dict]:
    """name -> {dtype, shape} from a safetensors header alone (8-byte little-endian length, then JSON), each
    entry checked against the file: dtype F16/BF16/F32, byte range inside the file and matching the shape.
    No tensor is read, so a file claiming huge tensors costs nothing."""

    def bad(why: str) -> MixaugError:
        return MixaugError(f"corrupt checkpoint {folder}: cannot read {label} ({why})")

    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise bad("shorter than a safetensors header")
            n = struct.unpack("<Q", head)[0]
            if n > min(MAX_JSON_BYTES, size - 8):
                raise bad(f"header length {n} does not fit the file of {size} bytes")
            raw = fh.read(n)
    except OSError as exc:
        raise bad(exc.strerror or _line(exc)) from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise bad("its header is not JSON") from None
    if not isinstance(header, dict):
        raise bad(f"its header must be a JSON object, found {_show(header)}")
    data_len = size - 8 - n
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict):
            raise bad(f"tensor {_show(name, 160)} has no dtype, shape and data_offsets")
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if not isinstance(dtype, str) or dtype not in _DTYPE_BYTES:
            raise bad(f"tensor {_show(name, 160)} has dtype {_show(dtype)}; expected F16, BF16 or F32")
        if not (isinstance(shape, list) and len(shape) <= 8 and all(_is_int(d) and d >= 0 for d in shape)):
            raise bad(f"tensor {_show(name, 160)} has shape {_show(shape)}")
        if not (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(_is_int(o) for o in offsets)
            and 0 <= offsets[0] <= offsets[1] <= data_len
        ):
            raise bad(f"tensor {_show(name, 160)} has data_offsets {_show(offsets)} beyond its {data_len} data bytes")
        if offsets[1] - offsets[0] != math.prod(shape) * _DTYPE_BYTES[dtype]:
            size_found = offsets[1] - offsets[0]
            raise bad(f"tensor {_show(name, 160)} has shape {shape} but {size_found} bytes of {dtype} data")
        tensors[name] = {"dtype": dtype, "shape": shape}
    return tensors


def _check_adaptor_file(folder: Path, manifest: Manifest) -> None:
    """adaptor.safetensors must hold exactly the adaptor the manifest describes (checked on the header)."""
    path = folder / ADAPTOR_FILE
    if not path.is_file():
        raise MixaugError(f"corrupt checkpoint {folder}: no {ADAPTOR_FILE}")
    tensors = read_safetensors_header(path, folder, ADAPTOR_FILE)
    m = manifest
    out = m.num_soft_tokens * m.lm_hidden_size
    out_name = f"num_soft_tokens*lm_hidden_size={m.num_soft_tokens}*{m.lm_hidden_size}"
    hidden, enc = f"hidden_dim={m.hidden_dim}", f"encoder_dim={m.encoder_dim}"
    want = {
        "net.0.weight": ([m.hidden_dim, m.encoder_dim], f"[{hidden}, {enc}]"),
        "net.0.bias": ([m.hidden_dim], f"[{hidden}]"),
        "net.2.weight": ([out, m.hidden_dim], f"[{out_name}, {hidden}]"),
        "net.2.bias": ([out], f"[{out_name}]"),
    }
    if set(tensors) != set(want):
        raise MixaugError(
            f"corrupt checkpoint {folder}: {ADAPTOR_FILE} does not match the manifest: it holds "
            f"{_show(sorted(tensors))}, expected {sorted(want)}"
        )
    for name, (shape, fields) in want.items():
        if tensors[name]["shape"] != shape:
            raise MixaugError(
                f"corrupt checkpoint {folder}: {ADAPTOR_FILE} does not match the manifest: {name} has shape "
                f"{tensors[name]['shape']}, manifest.json needs {fields}"
            )


def _check_lora(folder: Path, manifest: Manifest) -> None:
    """lora/ must hold a sane peft config whose rank matches the manifest and the adapter tensors: peft sizes
    the adapters from the config alone, before it reads a weight."""
    lora_dir = folder / LORA_DIR
    config_label, weights_label = (f"{LORA_DIR}/{name}" for name in LORA_FILES)
    for label in (config_label, weights_label):
        if not (folder / label).is_file():
            raise MixaugError(f"corrupt checkpoint {folder}: manifest.json names LoRA but there is no {label}")
    text = _read_text(lora_dir / "adapter_config.json", folder, config_label)
    try:
        config = json.loads(text)
    except (ValueError, RecursionError):
        raise MixaugError(f"corrupt checkpoint {folder}: {config_label} is not JSON") from None
    if not isinstance(config, dict):
        raise MixaugError(f"corrupt checkpoint {folder}: {config_label} must be a JSON object, found {_show(config)}")

    def bad(key: str, want: str) -> None:
        raise MixaugError(
            f"corrupt checkpoint {folder}: {config_label} field '{key}' must be {want}, found {_show(config.get(key))}"
        )

    r = config.get("r")
    if not (_is_int(r) and 1 <= r <= MAX_LORA_R):
        bad("r", f"an integer from 1 to {MAX_LORA_R}")
    if r != manifest.lora["r"]:
        bad("r", f"equal to manifest.json's lora.r ({manifest.lora['r']})")
    if config.get("peft_type", "LORA") != "LORA":
        bad("peft_type", '"LORA"')
    if not _is_number(config.get("lora_alpha", 1)):
        bad("lora_alpha", "a number")
    modules = config.get("target_modules")
    if not (isinstance(modules, list) and 0 < len(modules) <= 256 and all(_is_spec(m) for m in modules)):
        bad("target_modules", "a non-empty list of module names")
    if not isinstance(config.get("init_lora_weights", True), bool):  # "pissa", "loftq"...: heavy init work
        bad("init_lora_weights", "true or false")
    for key in ("rank_pattern", "layer_replication", "trainable_token_indices"):  # each sizes or copies modules
        if config.get(key):
            bad(key, "empty (mixaug never writes it)")
    # Variants that change the maths (DoRA, rsLoRA, transposed weights, biases, extra trained modules...):
    # mixaug trains plain LoRA, so a config asking for anything else is not one of its checkpoints.
    for key, value in config.items():
        if (key.startswith("use_") or key in ("fan_in_fan_out", "lora_bias")) and value not in (False, None):
            bad(key, "false (mixaug checkpoints use plain LoRA)")
        if key.endswith("_config") and key != "megatron_config" and value not in (None, {}):
            bad(key, "empty (mixaug checkpoints use plain LoRA)")
        if key in ("modules_to_save", "target_parameters", "layers_to_transform", "exclude_modules") and value:
            bad(key, "empty (mixaug checkpoints use plain LoRA)")
    if config.get("bias", "none") != "none":
        bad("bias", '"none"')
    alpha_pattern = config.get("alpha_pattern") or {}
    if not (isinstance(alpha_pattern, dict) and all(_is_number(v) for v in alpha_pattern.values())):
        bad("alpha_pattern", "an object of numbers")
    tensors = read_safetensors_header(lora_dir / "adapter_model.safetensors", folder, weights_label)
    if not tensors:
        raise MixaugError(f"corrupt checkpoint {folder}: {weights_label} holds no tensors")
    for name, info in tensors.items():
        pieces, shape = name.split("."), info["shape"]
        parts = set(pieces)
        axis = 0 if {"lora_A", "lora_embedding_A"} & parts else 1 if {"lora_B", "lora_embedding_B"} & parts else None
        module = (
            pieces[pieces.index("lora_A" if axis == 0 else "lora_B") - 1]
            if axis is not None and ("lora_A" in parts or "lora_B" in parts)
            else None
        )
        if axis is None or module not in modules:  # peft skips weights it cannot place: the LoRA would vanish
            raise MixaugError(
                f"corrupt checkpoint {folder}: {weights_label} tensor {_show(name, 160)} is not a lora_A/lora_B "
                f"weight of a target module ({', '.join(modules)})"
            )
        if len(shape) < 2 or shape[axis] != r:
            raise MixaugError(
                f"corrupt checkpoint {folder}: {weights_label} tensor {_show(name, 160)} has shape {shape}, "
                f"but {config_label} says r={r}"
            )


def load_adaptor(folder: str | Path, manifest: Manifest) -> Adaptor:
    """Build the adaptor from the manifest and load its safetensors weights, once the file's header has
    been checked against the manifest (so the manifest cannot size a tensor the file does not hold)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    _check_adaptor_file(folder, manifest)
    path = folder / ADAPTOR_FILE
    try:
        tensors = load_file(path)
    except (SafetensorError, OSError, ValueError) as exc:
        raise MixaugError(f"corrupt checkpoint {folder}: cannot read {ADAPTOR_FILE} ({_line(exc)})") from None
    adaptor = Adaptor.from_manifest(manifest)
    try:
        adaptor.load_state_dict({k: v.float() for k, v in tensors.items()})
    except RuntimeError:
        raise MixaugError(
            f"corrupt checkpoint {folder}: {ADAPTOR_FILE} does not match the manifest's adaptor shape "
            f"{manifest.adaptor_shape}"
        ) from None
    return adaptor.eval()


def export_checkpoint(source: str | Path, dest: str | Path, dtype=torch.float16, overwrite: bool = False) -> Path:
    """Copy manifest + adaptor + LoRA (no training state) into dest, casting weights to dtype. Of lora/ only
    LORA_FILES are copied, and a link among them is refused: an export carries no file a link points to.
    dest is checked first: an existing one only with `overwrite`, and only a checkpoint folder, never the
    source or a folder holding it."""
    source, dest = Path(source), Path(dest)
    if dest.exists() and not overwrite:
        raise MixaugError(f"{dest} exists (pass --overwrite)")
    if dest.exists() and not (dest.is_dir() and (dest / MANIFEST).is_file()):
        raise MixaugError(f"{dest} exists and is not a checkpoint folder; --overwrite replaces checkpoints only")
    if dest.resolve() == source.resolve() or dest.resolve() in source.resolve().parents:
        raise MixaugError(f"{dest} holds the source checkpoint {source}; export somewhere else")
    manifest = validate_checkpoint(source)
    adaptor = load_adaptor(source, manifest)
    with atomic_folder(dest) as tmp:
        _write_adaptor(tmp, adaptor, dtype)
        if manifest.lora:
            copy_named(source / LORA_DIR, tmp / LORA_DIR, LORA_FILES)
            _finish_lora(tmp / LORA_DIR, manifest, dtype)
        (tmp / MANIFEST).write_text(manifest.to_json())
    return Path(dest)


def describe(folder: str | Path, device: str = "auto") -> dict:
    """What `mixaug info` prints: the checkpoint's manifest, where its encoder and LM resolve, the device,
    the cache folder and the versions of the libraries it runs on."""
    import importlib.metadata as md

    from ..cache import cache_dir
    from .models import resolve_device, resolve_encoder, resolve_lm

    folder = Path(folder)
    manifest = json.loads(read_manifest(folder).to_json())
    versions = {}
    for pkg in ("mixaug", "torch", "transformers", "sentence-transformers", "peft", "scikit-learn", "pandas"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    return {
        "checkpoint": str(folder),
        "manifest": manifest,
        "encoder_path": str(resolve_encoder(manifest["encoder"], base=folder)),
        "lm_path": str(resolve_lm(manifest["lm"], base=folder)),
        "cache_dir": str(cache_dir()),
        "device": resolve_device(device),
        "versions": versions,
    }


def checkpoint_digest(checkpoint: Path) -> str:
    """What names a checkpoint's caches (decodes, int8 calibration): a hash of the files that decide its
    decodes (the manifest, which holds the LM's weights hash, the adaptor, the LoRA). OSError if one of them
    is there but cannot be read."""
    h = hashlib.sha256()
    for name in ("manifest.json", ADAPTOR_FILE, f"{LORA_DIR}/adapter_model.safetensors"):
        try:
            h.update((Path(checkpoint) / name).read_bytes())
        except (FileNotFoundError, NotADirectoryError):
            continue
    return h.hexdigest()[:20]
