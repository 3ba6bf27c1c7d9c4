"""The `mixaug` command: a thin Typer layer over the Python API (files, pipeline, training, evaluation, report).

stdout carries data only (an output written to '-', or `mix`/`info` results); progress, logs and the
summary go to stderr. Errors are one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
from pathlib import Path
from typing import Optional

import typer

from .config import DEFAULT_PRECISION, AugmentConfig, TrainConfig
from .errors import MixaugError, MixaugWarning
from .evaluation.config import EvalConfig, shots_text
from .terminal import err, one_line, printable, progress_bars, show_progress, styled_line, summary_table

# Click's plain help, not typer's rich panels: those print a type such as <bool> beside flags that take no value.
app = typer.Typer(
    rich_markup_mode=None,
    context_settings={"max_content_width": 120},  # as wide as the terminal, up to 120 columns
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Augment labelled text datasets by inverted mixup.",
)


# The defaults every option shows and uses, read from the configs (never written twice).
AUG, TRAIN, EVAL = AugmentConfig(), TrainConfig(out=""), EvalConfig(train="", test="", out="")


def _version(value: bool) -> None:
    if value:
        from . import __version__

        print(f"mixaug {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Augment labelled text datasets by inverted mixup."""


def config_from(cls, options: dict, **settings):
    """A config from a command's options of the same names as its fields (typer hands them over as the
    command's arguments), with `settings` on top: no field is passed by hand, so none is forgotten."""
    fields = set(cls.__dataclass_fields__)
    return cls(**{**{k: v for k, v in options.items() if k in fields}, **settings})


def _fail(message: str, code: int = 2) -> None:
    err.print(styled_line("error:", "red", message), soft_wrap=True)
    raise typer.Exit(code)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
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
                warnings.showwarning = _show_warning
                return fn(*args, **kwargs)
        except MixaugError as exc:
            _fail(str(exc))
        except KeyboardInterrupt:
            _fail("interrupted; no output written (decodes done so far are cached for a re-run)", 130)
        except MemoryError:
            _fail("out of memory; try a smaller --batch-size or fewer rows")
        except OSError as exc:  # the environment (disk, permissions, a vanished file), not a bug of ours
            where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
            _fail(f"{exc.strerror or exc}{where}")

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


@app.command()
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
        help="With --balance: at most this many new rows per row a class has (past 5 the rows add nothing a prior "
        "correction does not).",
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
    batch_size: int = typer.Option(AUG.batch_size, help="Rows decoded at once."),
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
        from .files import preview_file
        from .report import TEXT_CHARS, short

        plan = preview_file(input, cfg, input_format=input_format, limit=limit)
        for sample in plan["samples"]:  # the terminal shows a row as the report does: cut, not whole
            sample.update({k: short(sample[k], TEXT_CHARS) for k in ("a", "b", "decoded")})
        err.print_json(json.dumps(plan, ensure_ascii=False))
        return
    if output is None:
        raise MixaugError("missing -o/--output (use '-' for stdout, or --dry-run)")
    from .files import augment_file

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
        _show_warning(
            f"{stats['shortfall']} of {stats['requested']} new rows missing: filters rejected candidates "
            f"and {cfg.max_rounds} planning rounds ran out",
            None,
            "",
            0,
        )


@app.command()
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
    batch_size: int = typer.Option(AUG.batch_size, help="Rows decoded at once."),
    precision: str = PRECISION,
    quiet: bool = typer.Option(False, "-q", "--quiet"),
):
    """Round trip: add `reconstruction` and `fidelity` (cosine of re-encoding to the original) columns."""
    from .files import invert_file

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


@app.command("mix")
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
    from .pipeline import mix_texts

    lams = lam or [round(0.1 * i, 1) for i in range(1, 10)]
    rows = mix_texts(
        text_a, text_b, lams, checkpoint, device, renormalize, num_candidates, precision=precision, anchor=anchor
    )
    for row in rows:  # decoded text reaches a terminal: control characters as escapes, like every other line
        if json_out:
            print(C1.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(row, ensure_ascii=False)))
        else:
            print(f"{row['lambda']:.2f}\t{printable(row['text'], None)}")


@app.command()
@cli_errors
def info(checkpoint: Optional[str] = CHECKPOINT, device: str = DEVICE):
    """Print the checkpoint manifest, resolved model locations, device and versions (JSON)."""
    from .inversion.checkpoint import describe
    from .stacks import checkpoint_path

    print(json.dumps(describe(checkpoint_path(checkpoint), device), indent=2, ensure_ascii=False))


@app.command()
@cli_errors
def train(
    out: Path = typer.Option(..., "--out", help="Run folder (checkpoint/, state, train_log.jsonl)."),
    corpus: Optional[list[str]] = typer.Option(
        None, "--corpus", help="Text file(s), one sentence per line, or datasets."
    ),
    text_column: Optional[str] = typer.Option(TRAIN.text_column),
    split_sentences: bool = typer.Option(TRAIN.split_sentences, "--split-sentences"),
    min_words: int = typer.Option(TRAIN.min_words),
    max_words: int = typer.Option(TRAIN.max_words),
    max_sentences: Optional[int] = typer.Option(TRAIN.max_sentences),
    lm: Optional[str] = typer.Option(
        TRAIN.lm, help="LM spec: hub id, folder or .gguf (default SmolLM2-135M-Instruct)."
    ),
    encoder: Optional[str] = typer.Option(TRAIN.encoder),
    num_soft_tokens: int = typer.Option(TRAIN.num_soft_tokens),
    hidden_dim: int = typer.Option(TRAIN.hidden_dim),
    lora_r: int = typer.Option(TRAIN.lora_r, help="LoRA rank on q,k,v,o (0 = adaptor only)."),
    lr: Optional[float] = typer.Option(
        None, help=f"Peak learning rate (default: {TRAIN.lr:g}; on --resume: the run's own)."
    ),
    batch_size: int = typer.Option(TRAIN.batch_size, help="The optimizer's batch (sentences per step)."),
    max_steps: Optional[int] = typer.Option(TRAIN.max_steps),
    max_minutes: Optional[float] = typer.Option(TRAIN.max_minutes),
    eval_every: Optional[int] = typer.Option(
        None, help=f"Steps between held-out evaluations (default: {TRAIN.eval_every})."
    ),
    eval_size: int = typer.Option(TRAIN.eval_size),
    save_every: Optional[int] = typer.Option(
        None, help=f"Steps between saved checkpoints (default: {TRAIN.save_every})."
    ),
    noise_std: Optional[float] = typer.Option(
        None, help=f"Stage 3: Gaussian noise on input embeddings (default: {TRAIN.noise_std:g})."
    ),
    mix_prob: Optional[float] = typer.Option(
        None,
        help=f"Stage 3: share of inputs replaced by mixtures (target: dominant parent) (default: {TRAIN.mix_prob:g}).",
    ),
    decay_from: Optional[int] = typer.Option(
        TRAIN.decay_from, help="From this step the lr falls linearly to 0 at --max-steps (default: constant lr)."
    ),
    seed: int = typer.Option(TRAIN.seed),
    device: str = DEVICE,
    resume: bool = typer.Option(TRAIN.resume, "--resume"),
    quiet: bool = typer.Option(False, "-q", "--quiet"),
):
    """Train (or --resume) an inversion checkpoint on unlabelled sentences (stage 1 alignment)."""
    options = dict(locals())
    from .data.write import check_out_folder
    from .training.train import saved_config
    from .training.train import train as run_train

    check_out_folder(out)
    # Settings a resumed run may change: left out (None), they keep the run's own values, not the defaults.
    base = saved_config(out) if resume else TRAIN
    kept = {k: getattr(base, k) for k in ("lr", "eval_every", "save_every", "noise_std", "mix_prob", "decay_from")}
    given = {k: v for k, v in options.items() if not (k in kept and v is None)}
    cfg = config_from(
        TrainConfig,
        given,
        **{k: v for k, v in kept.items() if options[k] is None},
        out=str(out),
        corpus=list(corpus or []),
    )
    path = run_train(cfg, progress=not quiet and err.is_terminal, log=lambda m: err.print(m, highlight=False))
    print(str(path))


@app.command("adapt")
@cli_errors
def adapt_cmd(
    input: str = typer.Argument(..., help="Dataset whose texts to adapt to (or '-')."),
    input_format: Optional[str] = IN_FMT,
    text_column: Optional[str] = typer.Option(None),
    adapt_steps: int = typer.Option(AUG.adapt_steps),
    adapt_minutes: Optional[float] = typer.Option(AUG.adapt_minutes),
    seed: int = typer.Option(AUG.seed),
    checkpoint: Optional[str] = CHECKPOINT,
    device: str = DEVICE,
    quiet: bool = typer.Option(False, "-q", "--quiet"),
):
    """Stage 2: refine a checkpoint on a dataset's own texts; prints the (cached) adapted checkpoint path."""
    from .files import adapt_file

    say = (lambda m: None) if quiet else (lambda m: err.print(m, highlight=False))
    options = dict(input=input, input_format=input_format, text_column=text_column, checkpoint=checkpoint)
    settings = dict(steps=adapt_steps, minutes=adapt_minutes, seed=seed, device=device, progress=show_progress(quiet))
    print(str(adapt_file(**options, **settings, log=say)))


@app.command("report")
@cli_errors
def report_cmd(
    input: str = typer.Argument(..., help="A file `mixaug augment` wrote (any format), or '-'."),
    output: Optional[str] = typer.Option(
        None, "-o", "--output", help="HTML file (default: INPUT's name + .report.html; '-': stdout)."
    ),
    input_format: Optional[str] = IN_FMT,
    stats_json: Optional[str] = typer.Option(
        None, "--stats-json", help="The run's --stats-json file: adds rejections and settings."
    ),
    text_column: Optional[str] = typer.Option(
        None, help="Default: from the stats file, else the column the new rows fill, else text/sentence/content."
    ),
    label_column: Optional[str] = typer.Option(
        None, help="Default: from the stats file, else the other column the new rows fill, else 'label' if present."
    ),
    id_column: Optional[str] = typer.Option(
        None, help="What mixaug_parent_a/b name (default: from the stats file, else the row number)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite"),
    quiet: bool = typer.Option(False, "-q", "--quiet"),
):
    """One self-contained HTML page about an augmented file: map, label counts, λ, fidelity, intrusions, samples."""
    from .report import report_file

    output, size = report_file(
        input, output, input_format, stats_json, text_column, label_column, id_column, overwrite=overwrite
    )
    if output != "-" and not quiet:
        err.print(f"wrote {output} ({size / 1024:.0f} KiB)", highlight=False)


@app.command("eval")
@cli_errors
def eval_cmd(
    train: str = typer.Option(..., "--train", help="Labelled training file."),
    test: str = typer.Option(..., "--test", help="Labelled test file."),
    out: Path = typer.Option(..., "--out", help="Folder for report.md, plots, results.json, summary.json."),
    text_column: Optional[str] = typer.Option(EVAL.text_column),
    label_column: Optional[str] = typer.Option(EVAL.label_column),
    shots: str = typer.Option(shots_text(EVAL.shots), help="Comma-separated: examples per class, or 'all'."),
    seeds: int = typer.Option(EVAL.seeds),
    methods: Optional[str] = typer.Option(
        None,
        help="Comma-separated: none, class-weights, oversample, eda, smote, embed-mixup, paraphrase, "
        "mixaug[+adapt|+pool|+task|+guided|+anchor<β>|+weighted][:<hard|parent|soft>:<intra|inter|random|neighbours|"
        "boundary>[:keep|drop]] (pool: --adapt-on TRAIN; weighted: rows weigh their mixaug_weight; drop: --intrusion drop). Default: all but class-weights, oversample and smote; with --rare-classes those "
        "three, none, eda, embed-mixup and mixaug with each pairing.",
    ),
    classifier: str = typer.Option(
        ",".join(EVAL.classifiers),
        help="Comma-separated, each scores every method: logreg (frozen embeddings), tfidf (TF-IDF + logistic "
        "regression), finetune (the encoder + a head, the same number of steps for every method).",
    ),
    finetune_steps: int = typer.Option(
        EVAL.finetune_steps,
        help="Optimizer steps of the finetune classifier, for every method (and of mixaug+task's task model).",
    ),
    ratio: float = typer.Option(EVAL.ratio, help="New rows per original row."),
    max_new_rows: int = typer.Option(EVAL.max_new_rows, help="Cap on new rows per run."),
    rare_classes: int = typer.Option(
        EVAL.rare_classes,
        "--rare-classes",
        help="The imbalanced setting: this many classes (drawn per seed) keep only --rare-shots rows, and every "
        "method makes rows for them alone, up to the largest class; macro-F1 and their recall are the headline.",
    ),
    rare_shots: int = typer.Option(
        EVAL.rare_shots, "--rare-shots", help="Rows a rare class keeps (with --rare-classes)."
    ),
    max_test: int = typer.Option(EVAL.max_test, help="Score on at most this many TEST rows (seeded sample)."),
    fidelity_n: int = typer.Option(EVAL.fidelity_n, help="TEST texts to invert for the fidelity section."),
    control_pairs: int = typer.Option(EVAL.control_pairs, help="Pairs for the controllability curve."),
    seed: int = typer.Option(EVAL.seed),
    checkpoint: Optional[str] = CHECKPOINT,
    device: str = DEVICE,
    batch_size: int = typer.Option(EVAL.batch_size, help="Rows decoded at once."),
    precision: str = PRECISION,
    quiet: bool = typer.Option(False, "-q", "--quiet"),
):
    """Compare augmentation methods side by side on TRAIN/TEST: accuracy, fidelity, intrusion, speed."""
    options = dict(locals())
    from .data.write import check_out_folder
    from .evaluation.config import DEFAULT_METHODS, IMBALANCED_METHODS, parse_shots
    from .evaluation.journal import JOURNAL
    from .evaluation.run import run_eval

    cfg = config_from(
        EvalConfig,
        options,
        out=str(out),
        shots=parse_shots(shots),
        methods=[m.strip() for m in methods.split(",")]
        if methods
        else list(IMBALANCED_METHODS if rare_classes else DEFAULT_METHODS),
        classifiers=[c.strip() for c in classifier.split(",") if c.strip()],
    )
    cfg.validate()
    check_out_folder(out)
    try:
        with progress_bars(show_progress(quiet)) as stage:
            results = run_eval(cfg, stage, say=(lambda m: None) if quiet else (lambda m: err.print(m, highlight=False)))
    except KeyboardInterrupt:
        journal = out / JOURNAL
        if not journal.exists():
            raise
        _fail(f"interrupted; finished runs are kept in {journal}: the same command resumes from them", 130)
    if not quiet:
        err.print(f"wrote {out}/report.md, results.json, summary.json")
    print(json.dumps(results["summary"], default=str))


@app.command()
@cli_errors
def export(
    source: Path = typer.Argument(..., help="A checkpoint folder or a training run folder."),
    dest: Path = typer.Argument(..., help="Where to write the exported checkpoint."),
    fp16: bool = typer.Option(True, "--fp16/--fp32", help="Store weights as float16 (half the size)."),
    overwrite: bool = typer.Option(False, "--overwrite"),
):
    """Copy a checkpoint (manifest, adaptor, LoRA) without training state, optionally in fp16."""
    import torch

    from .inversion.checkpoint import export_checkpoint
    from .stacks import checkpoint_path

    if dest.exists() and not overwrite:  # before the source is even resolved, as ever
        raise MixaugError(f"{dest} exists (pass --overwrite)")
    export_checkpoint(checkpoint_path(source), dest, torch.float16 if fp16 else torch.float32, overwrite)
    print(str(dest))


cache_app = typer.Typer(
    rich_markup_mode=None,
    no_args_is_help=False,
    help="Show what $MIXAUG_CACHE holds by kind, or remove it (all of it can be rebuilt).",
)
app.add_typer(cache_app, name="cache")
KIND = typer.Option(
    None, "--kind", help="Only this kind (repeat for several): decodes, int8, embeddings, adapted, task, lm."
)


@cache_app.callback(invoke_without_command=True)
@cli_errors
def cache_show(ctx: typer.Context, json_out: bool = typer.Option(False, "--json", help="The summary as JSON.")):
    """Per kind: entries, size, and when the oldest and newest were written."""
    if ctx.invoked_subcommand is not None:
        return
    from .cache import cache_dir
    from .cache_admin import human, summary

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
    from .cache_admin import age_seconds

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
    from .cache import cache_dir
    from .cache_admin import human, remove

    gone = remove(cache_dir(), kind, older_than, dry_run)
    for e in gone:
        print(printable(e.path, None))  # the paths are the command's data
    verb = "would remove" if dry_run else "removed"
    err.print(f"{verb} {len(gone)} entries ({human(sum(e.bytes for e in gone))})")


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
