"""`mixaug cache` (show), `cache prune` and `cache clear`: what $MIXAUG_CACHE holds, and removing it."""

from __future__ import annotations

import json
from typing import Optional

import typer

from ..terminal import err, printable
from .shared import cli_errors

cache_app = typer.Typer(
    rich_markup_mode=None,
    no_args_is_help=False,
    help="Show what $MIXAUG_CACHE holds by kind, or remove it (all of it can be rebuilt).",
)
KIND = typer.Option(
    None, "--kind", help="Only this kind (repeat for several): decodes, int8, embeddings, adapted, task, lm."
)


@cache_app.callback(invoke_without_command=True)
@cli_errors
def cache_show(ctx: typer.Context, json_out: bool = typer.Option(False, "--json", help="The summary as JSON.")):
    """Per kind: entries, size, and when the oldest and newest were written."""
    if ctx.invoked_subcommand is not None:
        return
    from ..cache import cache_dir
    from ..cache_admin import human, summary

    facts = summary(cache_dir())
    if json_out:
        print(json.dumps(facts, indent=2, ensure_ascii=False))
        return
    print(f"{printable(facts['cache_dir'], None)}: {human(facts['bytes'])}")
    for k in facts["kinds"]:
        when = f"  written {k['oldest'][:10]} to {k['newest'][:10]}" if k["entries"] else ""
        print(f"  {k['kind']:<11}{k['entries']:>6} entries {human(k['bytes']):>10}{when}  ({k['holds']})")


@cache_app.command("prune")
@cli_errors
def cache_prune(
    older_than: str = typer.Option(..., "--older-than", help="Remove entries last written longer ago: 30d, 12h, 45m."),
    kind: Optional[list[str]] = KIND,
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be removed; remove nothing."),
):
    """Remove cache entries last written more than --older-than ago."""
    from ..cache_admin import age_seconds

    _remove(kind, age_seconds(older_than), dry_run)


@cache_app.command("clear")
@cli_errors
def cache_clear(
    kind: Optional[list[str]] = KIND,
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be removed; remove nothing."),
):
    """Remove every cache entry (of --kind)."""
    _remove(kind, None, dry_run)


def _remove(kind, older_than, dry_run: bool) -> None:
    from ..cache import cache_dir
    from ..cache_admin import human, remove

    gone = remove(cache_dir(), kind, older_than, dry_run)
    for e in gone:
        print(printable(e.path, None))  # the paths are the command's data
    verb = "would remove" if dry_run else "removed"
    err.print(f"{verb} {len(gone)} entries ({human(sum(e.bytes for e in gone))})")
