"""`augment_streamed`: augment a dataset file read and written as a stream, so a file larger than memory works.

Memory holds what planning, labelling and the filter need from every row (the text, label and id
columns) and one chunk of the rest; the rows' embeddings live in a disk-backed array beside the output.
The input is read three times: once to check it (every error the whole-file reader gives) and learn its
columns, once for the text/label/id columns (and to check the output format can hold each row), once to
copy the rows through. The output is the whole-table path's (`pipeline.augment` + `data.write.write_dataset`),
byte for byte (tested). `files.augment_file` (and so `mixaug augment --engine ray`) takes this path for JSONL/CSV/TSV files.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from . import stacks
from .config import AugmentConfig
from .data.chunked import CHUNK_ROWS, STREAMABLE, ChunkedReader, ChunkedWriter
from .data.columns import column_list, resolve_label_column, resolve_text_column
from .data.formats import detect_format
from .data.provenance import build_output, check_no_collision
from .data.serialise import GzipStream, serialise
from .data.write import check_distinct, check_output_path
from .errors import MixaugError
from .inputs import prepare, run_config
from .pipeline import Progress, generate, new_rows_frame, no_progress, run_stats, stats_json_bytes


def augment_streamed(
    input: str | Path,
    output: str | Path,
    config: AugmentConfig | None = None,
    progress: Progress | None = None,
    *,
    input_format: str | None = None,
    output_format: str | None = None,
    limit: int | None = None,
    overwrite: bool = False,
    stats_json: str | Path | None = None,
    chunk_rows: int = CHUNK_ROWS,
    **overrides,
) -> dict:
    """Augment INPUT into OUTPUT (both JSONL, CSV or TSV, gzipped or not; OUTPUT may be '-' for stdout),
    streaming the rows through. Writes `stats_json` with the output (all or none) and returns the stats."""
    cfg = run_config(config, overrides)
    progress = progress or no_progress
    started = time.time()
    out_fmt, out_gz = detect_format(output, output_format)
    if out_fmt not in STREAMABLE:
        raise MixaugError(f"a streamed run writes {', '.join(STREAMABLE)}, not {out_fmt}; name such an output")
    check_distinct({"output": output, "stats file": stats_json})
    check_output_path(output, overwrite, inputs=[input])
    if stats_json not in (None, "-"):
        check_output_path(stats_json, overwrite, inputs=[input], what="stats file")
    src = ChunkedReader(input, input_format, limit, chunk_rows)

    head = src.empty()
    check_no_collision(head)
    if src.rows == 0:
        raise MixaugError("the dataset is empty (no rows)")
    text_col = resolve_text_column(pd.DataFrame(columns=head.columns, index=[0]), cfg.text_column)
    label_col = resolve_label_column(head, cfg.label_column)
    if cfg.id_column and cfg.id_column not in head.columns:
        raise MixaugError(f"id column '{cfg.id_column}' not found; columns found: {column_list(head.columns)}")
    keys = list(dict.fromkeys(c for c in (text_col, label_col, cfg.id_column) if c))
    parts, size, first = [], 0, True
    squeeze = GzipStream() if out_gz else None  # the size a .gz output will take
    for chunk in src.chunks():  # the columns every row must give, and: can the output hold each row?
        parts.append(chunk[keys])
        data = serialise(chunk, out_fmt, header=first, first_row=int(chunk.index[0]))
        size += len(squeeze.compress(data)) if squeeze else len(data)
        first = False
    size += len(squeeze.flush()) if squeeze else 0
    narrow = pd.concat(parts, ignore_index=True) if parts else head[keys]
    p = prepare(narrow, replace(cfg, text_column=text_col, label_column=label_col))
    check_output_path(output, overwrite, inputs=[input], min_free_bytes=size)

    stack, decoder, task = stacks.load_for(p, cfg)
    try:
        # beside the output (a disk, where $TMPDIR may be memory), or in $TMPDIR for stdout
        near = None if str(output) == "-" else Path(os.path.realpath(output)).parent
        with tempfile.TemporaryDirectory(prefix=".mixaug-emb-", dir=near) as tmp:
            shape = (len(p.texts), stack.encoder.dim)
            need = shape[0] * shape[1] * 4 + 4096
            free = shutil.disk_usage(tmp).free
            if free < need:
                raise MixaugError(
                    f"not enough space for the rows' embeddings in {tmp}: {need:,} bytes needed, {free:,} free"
                )
            emb = np.lib.format.open_memmap(Path(tmp) / "emb.npy", mode="w+", dtype=np.float32, shape=shape)
            advance = progress("encode", len(p.texts))
            for start in range(0, len(p.texts), chunk_rows):  # embeddings are batch-invariant: chunks change no bit
                block = p.texts[start : start + chunk_rows]
                emb[start : start + len(block)] = stack.encoder.encode(block, cfg.decode_batch, on_batch=advance)
            g = generate(p, emb, cfg, stack, decoder, progress, task)
            del emb
    finally:
        if decoder is not None:
            decoder.close()
    stats = run_stats(p, g, cfg, stack, src.rows, started)

    writer = ChunkedWriter(output, output_format)
    try:
        if not cfg.only_new:
            none = new_rows_frame([], p, cfg)
            for chunk in src.chunks():
                writer.write(build_output(chunk, none, text_col, label_col, only_new=False))
        new = new_rows_frame(g.rows, p, cfg)
        writer.write(build_output(head, new, text_col, label_col, only_new=True))
        extra = [(stats_json, stats_json_bytes(stats))] if stats_json not in (None, "-") else []
        check_output_path(output, overwrite)  # nothing appeared there meanwhile (as write_dataset checks)
        writer.commit(extra=extra)
    except BaseException:
        writer.discard()
        raise
    return stats
