"""The file-level API: a dataset file in, the augmented (or round-tripped) file out, with its stats and report.

    from mixaug import AugmentConfig, augment_file
    stats = augment_file("train.jsonl", "aug.jsonl", AugmentConfig(balance="equal"), stats_json="aug.json")

Each function owns its outputs' lifecycle, the same for the CLI, a notebook and the streamed (`--engine ray`)
path: every output is checked before any work (format known, paths distinct from each other and from the
input, writable, room on the disk for the rows passed through), then all are written together — staged beside
their targets and renamed into place, all or none. '-' means stdout for any of them. `mixaug augment` and
`mixaug invert` are these functions behind their options.
"""

from __future__ import annotations

import json
from pathlib import Path

from .config import AugmentConfig
from .errors import MixaugError

OUTPUT_COLUMNS = ("reconstruction", "fidelity")  # what invert_file adds to each row


class Outputs:
    """The files a run writes (dataset, optional stats JSON and HTML report), checked before any work;
    then written together, all or none."""

    def __init__(
        self,
        input: str | Path,
        output: str | Path | None,
        output_format: str | None = None,
        stats: str | Path | None = None,
        overwrite: bool = False,
        report: str | Path | None = None,
    ):
        from .data.formats import detect_format
        from .data.write import check_distinct, check_output_path

        self.output, self.output_format, self.stats, self.overwrite = output, output_format, stats, overwrite
        self.report = report
        if output is not None:
            detect_format(output, output_format)
        check_distinct({"--output": output, "--stats-json": stats, "--report": report})
        for what, path in (("output", output), ("stats file", stats), ("report", report)):
            if path is not None:
                check_output_path(path, overwrite, inputs=[input], what=what)

    def check_can_hold(self, df) -> None:
        """The output format can hold every value of the input (else one line now, not after decoding),
        and the disk has room for at least the rows passed through."""
        from .data.serialise import check_representable
        from .data.write import check_output_path

        if self.output is None:
            return
        size = check_representable(df, self.output, self.output_format)
        check_output_path(self.output, self.overwrite, min_free_bytes=size)

    def write(self, table, stats: dict | None) -> None:
        """The dataset and the stats file together (both or neither); a '-' stats file after the data."""
        from .data.write import write_dataset, write_stdout
        from .pipeline import stats_json_bytes

        blob = stats_json_bytes(stats) if stats is not None else b""
        extra = [(self.stats, blob)] if self.stats not in (None, "-") else []
        write_dataset(table, self.output, self.output_format, overwrite=self.overwrite, extra=extra)
        if self.stats == "-":
            write_stdout(blob)

    def write_report(self, page: str) -> None:
        from .data.write import write_bytes_atomic, write_stdout

        if self.report == "-":
            write_stdout(page.encode())
        else:
            write_bytes_atomic(self.report, page.encode())


def _streams(cfg: AugmentConfig, input, input_format, output, output_format, report) -> bool:
    """--engine ray streams a JSONL/CSV/TSV file through (a file larger than memory works); the local
    engine, other formats, stdin and a run that draws a report from the whole table read the table whole."""
    from .data.chunked import STREAMABLE, streamable
    from .data.formats import detect_format

    if cfg.engine != "ray" or report is not None or not streamable(input, input_format):
        return False
    return detect_format(output, output_format)[0] in STREAMABLE


def augment_file(
    input: str | Path,
    output: str | Path,
    config: AugmentConfig | None = None,
    *,
    stats_json: str | Path | None = None,
    report: str | Path | None = None,
    input_format: str | None = None,
    output_format: str | None = None,
    overwrite: bool = False,
    limit: int | None = None,
    progress=None,
    **overrides,
) -> dict:
    """Augment the dataset file INPUT into OUTPUT (any format `read_dataset` takes; '-' for stdin/stdout),
    with the stats JSON and the HTML report where asked; returns the run's stats. Keyword overrides change
    single settings of `config` (`augment_file(a, b, balance="equal")`)."""
    from .inputs import as_table, prepare, run_config
    from .stacks import checked_checkpoint

    cfg = run_config(config, overrides)
    outputs = Outputs(input, output, output_format, stats_json, overwrite, report)
    if _streams(cfg, input, input_format, output, output_format, report):
        from .data.write import write_stdout
        from .pipeline import stats_json_bytes
        from .streamed import augment_streamed

        checked_checkpoint(cfg.checkpoint)
        stats = augment_streamed(
            input,
            output,
            cfg,
            progress,
            input_format=input_format,
            output_format=output_format,
            limit=limit,
            overwrite=overwrite,
            stats_json=stats_json,
        )
        if stats_json == "-":
            write_stdout(stats_json_bytes(stats))
        return stats
    from .data.read import read_dataset
    from .pipeline import augment_prepared

    df = as_table(read_dataset(input, input_format, limit))
    prepared = prepare(df, cfg)  # checked once, before any work; the run takes it as it is
    outputs.check_can_hold(df)
    checked_checkpoint(cfg.checkpoint)
    result = augment_prepared(df, prepared, cfg, progress)
    stats = result.attrs.pop("mixaug_stats")
    outputs.write(result, stats)
    if report is not None:
        from .report import render, split

        title = f"mixaug report: {Path(str(output)).name}"
        outputs.write_report(render(split(result, stats=stats), stats, title=title, seed=cfg.seed))
    return stats


def preview_file(
    input: str | Path,
    config: AugmentConfig | None = None,
    *,
    input_format: str | None = None,
    limit: int | None = None,
    **overrides,
) -> dict:
    """What `augment_file` would do with INPUT (the plan and a few decoded samples), writing nothing."""
    from .data.read import read_dataset
    from .inputs import as_table, prepare, run_config
    from .pipeline import preview_prepared
    from .stacks import checked_checkpoint

    cfg = run_config(config, overrides)
    df = as_table(read_dataset(input, input_format, limit))
    prepared = prepare(df, cfg)
    checked_checkpoint(cfg.checkpoint)
    return preview_prepared(df, prepared, cfg)


def group_keys(values: list, column: str) -> list[str]:
    """Stats keys for group values: text as is, anything else as JSON; two values that would share a key
    (1 and "1"), or a group named like the overall entry, are refused before any work."""
    keys, first = [], {}
    for v in values:
        key = v if isinstance(v, str) else json.dumps(v, default=str, ensure_ascii=False)
        if key == "all":
            raise MixaugError(f"group column '{column}' has a group named 'all', the name of the overall entry")
        if key in first and type(first[key]) is not type(v):
            raise MixaugError(f"group column '{column}' holds {first[key]!r} and {v!r}, which would share one group")
        first.setdefault(key, v)
        keys.append(key)
    return keys


def invert_stats(rows, text_column: str, keys: list[str] | None = None) -> dict:
    """Round-trip metrics of an `invert` table (its `reconstruction` and `fidelity` columns): "all", and one
    entry per group where `keys` (one per row, see group_keys) are given. Rows left undecoded are left out."""
    import pandas as pd

    from .metrics import reconstruction_report

    done = rows[rows["fidelity"].notna()]

    def report(part):
        return reconstruction_report(
            part[text_column].tolist(), part["reconstruction"].tolist(), part["fidelity"].to_numpy(dtype=float)
        )

    stats = {"all": report(done)}
    if keys is not None:
        by = pd.Series(keys, index=rows.index).loc[done.index]
        stats.update({k: report(g) for k, g in done.groupby(by, sort=True)})
    return stats


def invert_file(
    input: str | Path,
    output: str | Path,
    *,
    text_column: str | None = None,
    group_column: str | None = None,
    stats_json: str | Path | None = None,
    input_format: str | None = None,
    output_format: str | None = None,
    overwrite: bool = False,
    limit: int | None = None,
    checkpoint: str | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    num_candidates: int = 1,
    precision: str | None = None,
    search: str = "none",
    search_width: int | None = None,
    progress=None,
) -> dict:
    """Round-trip every text of INPUT through the checkpoint into OUTPUT (the rows with `reconstruction` and
    `fidelity` columns added); returns the metrics ("all", and per `group_column` value)."""
    from .data.columns import column_list, resolve_text_column
    from .data.read import read_dataset
    from .inputs import clean_texts
    from .pipeline import invert
    from .stacks import checked_checkpoint

    defaults = AugmentConfig()
    batch_size = defaults.decode_batch if batch_size is None else batch_size
    precision = defaults.precision if precision is None else precision
    search_width = defaults.search_width if search_width is None else search_width
    AugmentConfig(
        num_candidates=num_candidates,
        decode_batch=batch_size,
        precision=precision,
        search=search,
        search_width=search_width,
        device=device,
    ).validate()
    outputs = Outputs(input, output, output_format, stats_json, overwrite)
    df = read_dataset(input, input_format, limit)
    if group_column and group_column not in df.columns:
        raise MixaugError(f"group column '{group_column}' not found; columns found: {column_list(df.columns)}")
    text_col = resolve_text_column(df, text_column)
    clean_texts(df, text_col)
    keys = group_keys(df[group_column].tolist(), group_column) if group_column else None
    for col in OUTPUT_COLUMNS:
        if col in df.columns:
            raise MixaugError(f"input already has a '{col}' column; rename or drop it")
    outputs.check_can_hold(df)
    checked_checkpoint(checkpoint)
    out = invert(
        df,
        text_column,
        checkpoint,
        device,
        batch_size,
        num_candidates,
        progress=progress,
        precision=precision,
        search=search,
        search_width=search_width,
    )
    stats = invert_stats(out, text_col, keys)
    outputs.write(out, stats if stats_json is not None else None)
    return stats


def adapt_file(
    input: str | Path,
    *,
    input_format: str | None = None,
    text_column: str | None = None,
    checkpoint: str | None = None,
    steps: int | None = None,
    minutes: float | None = None,
    seed: int = 0,
    device: str = "auto",
    progress: bool = False,
    log=None,
) -> Path:
    """Stage 2 on a file: refine the checkpoint on INPUT's own texts (cached by texts and settings); returns
    the adapted checkpoint's folder."""
    from .inputs import file_texts
    from .stacks import checked_checkpoint, checkpoint_path
    from .training.train import adapt

    steps = AugmentConfig().adapt_steps if steps is None else steps
    AugmentConfig(adapt_steps=steps, adapt_minutes=minutes, seed=seed, device=device).validate()
    texts = file_texts(input, text_column, input_format=input_format)
    checked_checkpoint(checkpoint)
    return adapt(texts, checkpoint_path(checkpoint), steps, minutes, seed, device, progress=progress, log=log)
