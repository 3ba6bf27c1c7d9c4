"""mixaug: augment labelled text datasets by inverted mixup (decode mixed sentence embeddings to text).

Names are imported on first use (PEP 562), so `import mixaug` and the CLI's `--help` start in a fraction of
a second instead of importing torch and pandas.
"""

__version__ = "0.1.0"

_EXPORTS = {
    "AugmentConfig": "config",
    "LogitAdjustedClassifier": "adjust",
    "MixaugError": "errors",
    "MixaugWarning": "errors",
    "MixupSampler": "sampler",
    "augment": "pipeline",
    "augment_file": "files",
    "invert_file": "files",
    "invert_stats": "files",
    "preview_file": "files",
    "invert": "pipeline",
    "load_stack": "stacks",
    "mix_texts": "pipeline",
    "preview": "pipeline",
    "read_dataset": "data.read",
    "write_dataset": "data.write",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mixaug' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_EXPORTS])
