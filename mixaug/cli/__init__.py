"""The `mixaug` command: a thin Typer layer over the Python API (files, pipeline, training, evaluation, report).

stdout carries data only (an output written to '-', or `mix`/`info` results); progress, logs and the
summary go to stderr. Errors are one line on stderr and a non-zero exit, never a traceback. Here: the command
tree and `main`; each command lives in its group's module, what they share in `shared`.
"""

from __future__ import annotations

import os
import sys

import typer

from ..terminal import err, one_line, styled_line
from .augment_commands import augment, invert, mix_cmd
from .cache_commands import cache_app
from .checkpoint_commands import adapt_cmd, export, info, train
from .eval_commands import eval_cmd, report_cmd

# Click's plain help, not typer's rich panels: those print a type such as <bool> beside flags that take no value.
app = typer.Typer(
    rich_markup_mode=None,
    context_settings={"max_content_width": 120},  # as wide as the terminal, up to 120 columns
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Augment labelled text datasets by inverted mixup.",
)


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        print(f"mixaug {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Augment labelled text datasets by inverted mixup."""


# The command tree, in the order --help lists it; each command's function lives in the module of its group.
app.command()(augment)
app.command()(invert)
app.command("mix")(mix_cmd)
app.command()(info)
app.command()(train)
app.command("adapt")(adapt_cmd)
app.command("report")(report_cmd)
app.command("eval")(eval_cmd)
app.command()(export)
app.add_typer(cache_app, name="cache")


def main() -> None:
    """The console entry point: usage errors as one `error:` line (exit 2), bugs as one `internal error:` line
    (exit 1; MIXAUG_DEBUG=1 shows the traceback)."""
    try:  # typer >= 0.20 carries its own copy of click
        from typer._click import exceptions as click_errors
    except ImportError:  # pragma: no cover - older typer on top of click
        from click import exceptions as click_errors

    import signal

    def stop(signum, frame):
        raise KeyboardInterrupt  # the same path as Ctrl-C: temp files removed, one line, exit 130

    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), stop)
    try:
        code = app(prog_name="mixaug", standalone_mode=False)
    except getattr(click_errors, "NoArgsIsHelpError", ()) as exc:  # `mixaug` alone: the help, as --help prints it
        print(exc.format_message())
        sys.exit(exc.exit_code)
    except click_errors.UsageError as exc:
        message = one_line(exc.format_message())
        if message:
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            err.print(styled_line("error:", "red", message + hint), soft_wrap=True)
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print(styled_line("error:", "red", "interrupted; no output written"), soft_wrap=True)
        sys.exit(130)
    except click_errors.ClickException as exc:
        err.print(styled_line("error:", "red", exc.format_message()), soft_wrap=True)
        sys.exit(exc.exit_code)
    except SystemExit:
        raise
    except Exception as exc:  # a bug, not bad input: still one line, with a way to get the traceback
        if os.environ.get("MIXAUG_DEBUG"):
            raise
        err.print(
            styled_line("internal error:", "red", f"{type(exc).__name__}: {exc} (set MIXAUG_DEBUG=1 for a traceback)"),
            soft_wrap=True,
        )
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
