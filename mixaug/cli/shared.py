"""What every `mixaug` command shares: the configs' defaults its options show, the options several commands
take, a config built from a command's options, and the one error mapper (`cli_errors`)."""

from __future__ import annotations

import dataclasses
import functools

import typer

from ..config import DEFAULT_PRECISION, AugmentConfig, TrainConfig
from ..errors import MixaugError, MixaugWarning
from ..evaluation.config import EvalConfig
from ..terminal import err, styled_line

# The defaults every option shows and uses, read from the configs (never written twice).
AUG, TRAIN, EVAL = AugmentConfig(), TrainConfig(out=""), EvalConfig(train="", test="", out="")


def config_from(cls, options: dict, **settings):
    """A config from a command's options of the same names as its fields (typer hands them over as the
    command's arguments), with `settings` on top: no field is passed by hand, so none is forgotten."""
    fields = {f.name for f in dataclasses.fields(cls)}  # not __dataclass_fields__: it holds RENAMED too
    return cls(**{**{k: v for k, v in options.items() if k in fields}, **settings})


def fail(message: str, code: int = 2) -> None:
    err.print(styled_line("error:", "red", message), soft_wrap=True)
    raise typer.Exit(code)


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """MixaugWarning (and any other warning that reaches the CLI) as one 'warning:' line on stderr."""
    err.print(styled_line("warning:", "yellow", message), soft_wrap=True)


def cli_errors(fn):
    """Turn MixaugError (and Ctrl-C) into a one-line message and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import warnings

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # libraries' notices are not for the user of a CLI
                warnings.simplefilter("always", MixaugWarning)
                warnings.showwarning = show_warning
                return fn(*args, **kwargs)
        except MixaugError as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            fail("interrupted; no output written (decodes done so far are cached for a re-run)", 130)
        except MemoryError:
            fail("out of memory; try a smaller --batch-size or fewer rows")
        except OSError as exc:  # the environment (disk, permissions, a vanished file), not a bug of ours
            where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
            fail(f"{exc.strerror or exc}{where}")

    return wrapper


IN_FMT = typer.Option(
    None, "--input-format", help="Format for '-' or an unusual extension: jsonl, json, csv, tsv, parquet."
)
OUT_FMT = typer.Option(None, "--output-format", help="Format for '-' or an unusual extension.")
CHECKPOINT = typer.Option(None, "--checkpoint", help="Checkpoint folder (default: the one shipped in the package).")
DEVICE = typer.Option("auto", "--device", help="auto, cpu, cuda or mps.")
PRECISION = typer.Option(
    DEFAULT_PRECISION,
    "--precision",
    help="The LM's weights while decoding: auto (int8 on CPU, fp32 on GPU), int8 or fp32.",
)
