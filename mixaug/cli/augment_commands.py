"""`mixaug augment`, `invert` and `mix`: rows (or two sentences) in, decoded rows out."""

from __future__ import annotations

import json
import re
from typing import Optional

import typer

from ..config import AugmentConfig
from ..errors import MixaugError
from ..terminal import err, printable, progress_bars, show_progress, summary_table
from .shared import AUG, CHECKPOINT, DEVICE, IN_FMT, OUT_FMT, PRECISION, cli_errors, config_from, show_warning


@cli_errors
def augment(
    input: str = typer.Argument(..., help="Dataset file (.jsonl/.json/.csv/.tsv/.parquet, .gz ok) or '-' for stdin."),
    output: Optional[str] = typer.Option(None, "-o", "--output", help="Output file, or '-' for stdout."),
    input_format: Optional[str] = IN_FMT,
    output_format: Optional[str] = OUT_FMT,
    text_column: Optional[str] = typer.Option(AUG.text_column, help="Default: first of text, sentence, content."),
    label_column: Optional[str] = typer.Option(AUG.label_column, help="Default: 'label' if present (else unlabelled)."),
    id_column: Optional[str] = typer.Option(AUG.id_column, help="Default: the row number."),
    num_augmented: Optional[int] = typer.Option(
        AUG.num_augmented, "-n", "--num-augmented", help="New rows (default: as many as input rows)."
    ),
    pairing: Optional[str] = typer.Option(
        AUG.pairing,
        help="intra (same label, default), inter (different labels), random, neighbours (one of the k nearest "
        "rows of the same label, SMOTE's partner), boundary (a near row of another label, λ where the labeller "
        "is least sure) or transfer (a row of another label lends its offset from its label's mean).",
    ),
    balance: Optional[str] = typer.Option(
        AUG.balance,
        "--balance",
        help="equal, or a ratio in (0, 1]: plan the new rows per class so every class reaches that share of the "
        "largest one, rare classes first (-n: the total, each row to the class with the fewest).",
    ),
    max_per_row: Optional[int] = typer.Option(
        AUG.max_per_row,
        "--max-per-row",
        help="With --balance: at most this many new rows per row a class has (more repeat a small class's few "
        "pairs, and scored no better).",
    ),
    neighbours: int = typer.Option(AUG.neighbours, "--neighbours", help="k of --pairing neighbours/boundary."),
    alpha: float = typer.Option(AUG.alpha, help="λ ~ Beta(alpha, alpha)."),
    seed: int = typer.Option(AUG.seed, help="Seeds the plan (pairs, λ) and any sampling."),
    renormalize: bool = typer.Option(
        AUG.renormalize, "--renormalize/--no-renormalize", help="Project mixtures to unit norm."
    ),
    num_candidates: int = typer.Option(AUG.num_candidates, help="Decode K candidates, keep the closest re-encoding."),
    search: str = typer.Option(
        AUG.search, "--search", help="none, or guided: beam search scored by the encoder every 4 tokens (slow)."
    ),
    search_width: int = typer.Option(
        AUG.search_width, "--search-width", help="Hypotheses kept (and extensions of each) by --search guided."
    ),
    anchor: float = typer.Option(
        AUG.anchor,
        "--anchor",
        help="β: pull each decode toward its parents' words (a logit bonus β x λ share x word weight, one per "
        "word, spent once written); 0 = off.",
    ),
    anchor_weights: str = typer.Option(
        AUG.anchor_weights,
        "--anchor-weights",
        help="salience (how much a word tells the classes apart; idf without labels) or idf (how rare it is).",
    ),
    temperature: float = typer.Option(AUG.temperature, help="0 = greedy."),
    top_p: float = typer.Option(AUG.top_p),
    max_new_tokens: int = typer.Option(AUG.max_new_tokens),
    label_policy: Optional[str] = typer.Option(
        AUG.label_policy,
        help="hard (classifier; the default), parent (λ-dominant parent; the default with --balance) or soft.",
    ),
    intrusion: str = typer.Option(AUG.intrusion, help="keep (relabelled) or drop manifold intrusions."),
    min_fidelity: Optional[float] = typer.Option(
        AUG.min_fidelity, help="Drop rows whose re-encoding cosine to the target is below this."
    ),
    max_rounds: int = typer.Option(AUG.max_rounds, help="Planning rounds (retries that replace rejected rows)."),
    only_new: bool = typer.Option(AUG.only_new, "--only-new", help="Write only the new rows."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output file."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the plan and 5 decoded samples; write nothing."),
    limit: Optional[int] = typer.Option(None, help="Read only the first N input rows."),
    stats_json: Optional[str] = typer.Option(
        None, "--stats-json", help="Write the summary as JSON here ('-': stdout)."
    ),
    report: Optional[str] = typer.Option(
        None, "--report", help="Also write an HTML report of the run here (see `mixaug report`)."
    ),
    checkpoint: Optional[str] = CHECKPOINT,
    adapt: bool = typer.Option(
        AUG.adapt, "--adapt", help="Stage 2: refine the checkpoint on this dataset first (cached)."
    ),
    adapt_steps: int = typer.Option(AUG.adapt_steps, help="Training steps for --adapt."),
    adapt_minutes: Optional[float] = typer.Option(AUG.adapt_minutes, help="Wall-clock cap for --adapt."),
    adapt_on: Optional[str] = typer.Option(
        AUG.adapt_on,
        "--adapt-on",
        help="Stage 2 on this file of your own unlabelled text (plus INPUT's texts) first; one adapted "
        "checkpoint per file and budget, whatever --seed (cached).",
    ),
    adapt_on_column: Optional[str] = typer.Option(
        AUG.adapt_on_column,
        "--adapt-on-column",
        help="--adapt-on's text column (default: --text-column where FILE has it, else text/sentence/content).",
    ),
    task_model: str = typer.Option(
        AUG.task_model,
        "--task-model",
        help="none, or finetune: fine-tune the encoder + a head on the labelled rows, refine the checkpoint "
        "on its embeddings (--adapt-steps), then mix, decode and label in that space (cached).",
    ),
    task_steps: int = typer.Option(AUG.task_steps, help="Optimizer steps of --task-model finetune."),
    device: str = DEVICE,
    decode_batch: int = typer.Option(AUG.decode_batch, "--batch-size", help="Rows decoded at once."),
    precision: str = PRECISION,
    engine: str = typer.Option(AUG.engine, "--engine", help="local, or ray: decode on Ray actors (same output)."),
    num_workers: Optional[int] = typer.Option(
        AUG.num_workers, "--num-workers", help="Ray actors (default: one per CPU)."
    ),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress bars or summary."),
):
    """Write INPUT's rows plus new rows decoded from mixed embeddings, with provenance columns."""
    cfg = config_from(AugmentConfig, locals())
    cfg.validate()
    if dry_run:
        from ..files import preview_file
        from ..report import TEXT_CHARS, short

        plan = preview_file(input, cfg, input_format=input_format, limit=limit)
        for sample in plan["samples"]:  # the terminal shows a row as the report does: cut, not whole
            sample.update({k: short(sample[k], TEXT_CHARS) for k in ("a", "b", "decoded")})
        err.print_json(json.dumps(plan, ensure_ascii=False))
        return
    if output is None:
        raise MixaugError("missing -o/--output (use '-' for stdout, or --dry-run)")
    from ..files import augment_file

    with progress_bars(show_progress(quiet)) as stage:
        stats = augment_file(
            input,
            output,
            cfg,
            stats_json=stats_json,
            report=report,
            input_format=input_format,
            output_format=output_format,
            overwrite=overwrite,
            limit=limit,
            progress=stage,
        )
    _finish(stats, cfg, quiet)


def _finish(stats: dict, cfg, quiet: bool) -> None:
    if not quiet:
        err.print(summary_table(stats))
    if stats["shortfall"]:
        show_warning(
            f"{stats['shortfall']} of {stats['requested']} new rows missing: filters rejected candidates "
            f"and {cfg.max_rounds} planning rounds ran out",
            None,
            "",
            0,
        )


@cli_errors
def invert(
    input: str = typer.Argument(..., help="Dataset file or '-'."),
    output: str = typer.Option(..., "-o", "--output"),
    input_format: Optional[str] = IN_FMT,
    output_format: Optional[str] = OUT_FMT,
    text_column: Optional[str] = typer.Option(None),
    num_candidates: int = typer.Option(1),
    search: str = typer.Option(
        "none", "--search", help="none, or guided: beam search scored by the encoder every 4 tokens (slow)."
    ),
    search_width: int = typer.Option(
        AUG.search_width, "--search-width", help="Hypotheses kept (and extensions of each) by --search guided."
    ),
    limit: Optional[int] = typer.Option(None),
    overwrite: bool = typer.Option(False, "--overwrite"),
    stats_json: Optional[str] = typer.Option(
        None, "--stats-json", help="Write cosine / token-F1 / BLEU as JSON here ('-': stdout)."
    ),
    group_column: Optional[str] = typer.Option(None, help="Also report the metrics per value of this column."),
    checkpoint: Optional[str] = CHECKPOINT,
    device: str = DEVICE,
    batch_size: int = typer.Option(AUG.decode_batch, help="Rows decoded at once."),
    precision: str = PRECISION,
    quiet: bool = typer.Option(False, "-q", "--quiet"),
):
    """Round trip: add `reconstruction` and `fidelity` (cosine of re-encoding to the original) columns."""
    from ..files import invert_file

    with progress_bars(show_progress(quiet)) as stage:
        stats = invert_file(
            input,
            output,
            text_column=text_column,
            group_column=group_column,
            stats_json=stats_json,
            input_format=input_format,
            output_format=output_format,
            overwrite=overwrite,
            limit=limit,
            checkpoint=checkpoint,
            device=device,
            batch_size=batch_size,
            num_candidates=num_candidates,
            precision=precision,
            search=search,
            search_width=search_width,
            progress=stage,
        )
    if not quiet:
        for name, st in stats.items():
            err.print(
                f"{name}: {st['n']} rows, cosine {st['cosine']:.4f}, token-F1 {st['token_f1']:.4f}, "
                f"word-F1 {st['word_f1']:.4f}, BLEU {st['bleu']:.2f}"
            )


C1 = re.compile("[\x7f-\x9f]")  # DEL and C1 controls: JSON leaves them raw, a terminal acts on them (CSI is 0x9b)


@cli_errors
def mix_cmd(
    text_a: str = typer.Argument(...),
    text_b: str = typer.Argument(...),
    lam: Optional[list[float]] = typer.Option(
        None, "--lam", help="λ (weight of TEXT_A); repeat for several. Default 0.1…0.9."
    ),
    renormalize: bool = typer.Option(True, "--renormalize/--no-renormalize"),
    num_candidates: int = typer.Option(1),
    anchor: float = typer.Option(
        AUG.anchor, "--anchor", help="β: pull each decode toward the two texts' words (see augment --anchor)."
    ),
    json_out: bool = typer.Option(False, "--json", help="One JSON object per line."),
    checkpoint: Optional[str] = CHECKPOINT,
    device: str = DEVICE,
    precision: str = PRECISION,
):
    """Print the decoded mixture of two sentences at each λ."""
    from ..pipeline import mix_texts

    lams = lam or [round(0.1 * i, 1) for i in range(1, 10)]
    rows = mix_texts(
        text_a, text_b, lams, checkpoint, device, renormalize, num_candidates, precision=precision, anchor=anchor
    )
    for row in rows:  # decoded text reaches a terminal: control characters as escapes, like every other line
        if json_out:
            print(C1.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(row, ensure_ascii=False)))
        else:
            print(f"{row['lambda']:.2f}\t{printable(row['text'], None)}")
