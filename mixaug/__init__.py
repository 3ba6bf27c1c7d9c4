"""mixaug: augment labelled text datasets by inverted mixup (decode mixed sentence embeddings to text)."""

from .config import AugmentConfig
from .errors import MixaugError
from .io import read_dataset, write_dataset
from .pipeline import augment, invert, load_stack, mix_texts, preview

__all__ = [
    "AugmentConfig", "MixaugError", "augment", "invert", "load_stack", "mix_texts", "preview",
    "read_dataset", "write_dataset",
]
__version__ = "0.1.0"
