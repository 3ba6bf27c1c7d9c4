"""What the CLI shows on the terminal (stderr): one console that prints user text inert, the error and
warning lines, progress bars and the augment summary. stdout carries data only and never passes here."""

from __future__ import annotations

from contextlib import contextmanager

from rich.console import Console
from rich.table import Table
from rich.text import Text


class Terminal(Console):
    """stderr, where user text is shown: every str printed is literal text (no rich markup, control
    characters C0 and C1 shown as \\xNN, line breaks kept), so a label, a file name, a column or a group
    can neither open a tag (a link, a style) nor reach the terminal raw. Styles come only from the Text
    objects the CLI builds itself (`styled_line`). One mechanism, at the one place text is printed."""

    def print(self, *objects, **kwargs) -> None:
        kwargs["markup"] = False
        kwargs.setdefault("highlight", False)
        super().print(*(Text(printable(o, None, keep="\n")) if isinstance(o, str) else o for o in objects), **kwargs)


err = Terminal(stderr=True, markup=False, highlight=False)


def one_line(message) -> str:
    """A message as one line of plain text: whitespace folded, control characters (C0, C1) as \\xNN."""
    return printable(" ".join(str(message).split()), limit=None)


def styled_line(kind: str, style: str, message) -> Text:
    """An error or warning line: our styled prefix, then the message as one line of literal text."""
    return Text.assemble((kind, style), " ", one_line(message))


def printable(value, limit: int | None = 60, keep: str = "") -> str:
    """User text shown on a terminal: control characters (C0, C1; all but those in `keep`) and other
    unprintable ones as \\xNN, cut to `limit` characters."""
    text = "".join(c if c.isprintable() or c in keep else f"\\x{ord(c):02x}" for c in str(value))
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


@contextmanager
def progress_bars(enabled: bool):
    """Yields a (stage, total) -> advance(n) factory backed by rich progress bars on stderr."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    if not enabled:
        yield None
        return
    with Progress(
        TextColumn("{task.description:<18}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    ) as bar:

        def stage(name: str, total: int):
            task = bar.add_task(name, total=total)
            return lambda n: bar.advance(task, n)

        yield stage


def show_progress(quiet: bool) -> bool:
    return not quiet and err.is_terminal


def summary_table(stats: dict) -> Table:
    table = Table(title="mixaug augment", show_header=False, title_justify="left")
    for key in (
        "rows_read",
        "rows_skipped_empty_text",
        "requested",
        "new_rows",
        "shortfall",
        "pairing",
        "label_policy",
        "intrusion_rate",
        "mean_fidelity",
        "seconds",
        "rows_per_s",
    ):
        table.add_row(key.replace("_", " "), str(stats.get(key)))
    if stats.get("balance") is not None:  # --balance: where the rows went (labels are user text: no markup)
        table.add_row("balance", str(stats["balance"]))
        table.add_row("max per row", str(stats.get("max_per_row")))
        for c in stats["new_rows_per_class"]:
            if c["planned_from"]:
                table.add_row(Text(f"new rows for {printable(c['label'])}"), str(c["planned_from"]))
    for reason, count in stats.get("rejected", {}).items():
        table.add_row(f"rejected: {reason}", str(count))
    return table
