"""Reading and writing datasets: exact values in, the same values out, or one line saying why not.

The code lives in `mixaug.data` (formats, read, serialise, files, columns); this module is the one import
most code needs, and names every part of it.

Every reader returns a DataFrame of object columns holding the file's own values as Python objects, in
the file's column order: JSON ints stay ints of any size, floats keep every bit, CSV/TSV cells stay the
strings they were ("007", "NA"), Parquet values keep their Arrow type (remembered in `df.attrs`, so a
Parquet file is written back with its own schema). A JSON key that a row lacks is `MISSING` (pd.NA) and
stays absent when that row is written as JSON. A value the output format cannot hold is refused by
`check_representable` before any work, never rounded, renamed or dropped.

TSV is the IANA text/tab-separated-values format (as GLUE's files are): no quoting, so a `"` is an
ordinary character, and a value holding a tab or a line break cannot be written as TSV.
"""

from __future__ import annotations

from .data.columns import (  # noqa: F401
    column_list,
    quoted,
    resolve_label_column,
    resolve_text_column,
)
from .data.formats import (  # noqa: F401
    _JSON_LINE_BREAKS,
    ABSENT_KEYS,
    ARROW_SCHEMA,
    FORMATS,
    MISSING,
    TEXT_COLUMN_CANDIDATES,
    CannotHold,
    detect_format,
    is_missing,
)
from .data.read import (  # noqa: F401
    _LONE_CR,
    _SURROGATE_ESCAPE,
    MAX_CELLS,
    MAX_DEPTH,
    MAX_JSON_BYTES,
    MAX_LINE_BYTES,
    MAX_PARQUET_BYTES,
    _check_depth,
    _check_header,
    _check_unicode,
    _decode_utf8,
    _finite_float,
    _frame_from_records,
    _held,
    _input_stream,
    _JsonProblem,
    _no_constants,
    _object_without_duplicates,
    _parquet_table,
    _parse_json,
    _read_bytes,
    _read_delimited,
    _read_json,
    _read_jsonl,
    _read_parquet,
    _records_csv,
    _records_tsv,
    _refuse_cells,
    _values,
    binary_lines,
    check_readable,
    delimited_frame,
    delimited_rows,
    jsonl_records,
    read_dataset,
    text_lines,
    universal,
)
from .data.serialise import (  # noqa: F401
    GzipStream,
    _arrow_table,
    _column_names,
    _csv_field,
    _delimited,
    _dump_json,
    _json_records,
    _json_value,
    _same,
    _serialise,
    _text_cell,
    _where,
    check_representable,
    serialise,
)
from .data.write import (  # noqa: F401
    _IS_A_LINK,
    _link_refused,
    _open_named,
    _open_staged,
    _remove,
    _same_file,
    _seal_staged,
    _stage,
    _umask,
    _write_error,
    append_named,
    atomic_folder,
    check_distinct,
    check_out_folder,
    check_output_path,
    copy_named,
    make_private,
    make_readable,
    named_file,
    named_folder,
    read_json_file,
    read_small,
    write_bytes_atomic,
    write_dataset,
    write_files_atomic,
    write_named,
    write_stdout,
)
