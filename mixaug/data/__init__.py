"""Datasets in and out: `formats` (what a file can be), `read` (bounded, exact readers), `serialise` (values
to each format), `write` (atomic and named writes), `columns` (text and label columns), `provenance` (the
output table's `mixaug_` columns), `chunked` (a line-format file read and written in chunks). Import each
name from the module that holds it.

Every reader returns a DataFrame of object columns holding the file's own values as Python objects, in
the file's column order: JSON ints stay ints of any size, floats keep every bit, CSV/TSV cells stay the
strings they were ("007", "NA"), Parquet values keep their Arrow type (remembered in `df.attrs`, so a
Parquet file is written back with its own schema). A JSON key that a row lacks is `MISSING` (pd.NA) and
stays absent when that row is written as JSON. A value the output format cannot hold is refused by
`check_representable` before any work, never rounded, renamed or dropped.

TSV is the IANA text/tab-separated-values format (as GLUE's files are): no quoting, so a `"` is an
ordinary character, and a value holding a tab or a line break cannot be written as TSV.
"""
