"""`mixaug report` and `eval`: an augmented file drawn as HTML; augmentation methods compared on TRAIN/TEST."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ..evaluation.config import EvalConfig, shots_text
from ..terminal import err, progress_bars, show_progress
from .shared import CHECKPOINT, DEVICE, EVAL, IN_FMT, PRECISION, cli_errors, config_from, fail


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
    from ..report import report_file

    output, size = report_file(
        input, output, input_format, stats_json, text_column, label_column, id_column, overwrite=overwrite
    )
    if output != "-" and not quiet:
        err.print(f"wrote {output} ({size / 1024:.0f} KiB)", highlight=False)


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
    decode_batch: int = typer.Option(EVAL.decode_batch, "--batch-size", help="Rows decoded at once."),
    precision: str = PRECISION,
    quiet: bool = typer.Option(False, "-q", "--quiet"),
):
    """Compare augmentation methods side by side on TRAIN/TEST: accuracy, fidelity, intrusion, speed."""
    options = dict(locals())
    from ..data.write import check_out_folder
    from ..evaluation.config import DEFAULT_METHODS, IMBALANCED_METHODS, parse_shots
    from ..evaluation.journal import JOURNAL
    from ..evaluation.run import run_eval

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
        fail(f"interrupted; finished runs are kept in {journal}: the same command resumes from them", 130)
    if not quiet:
        err.print(f"wrote {out}/report.md, results.json, summary.json")
    print(json.dumps(results["summary"], default=str))
