"""Datasets in and out: `formats` (what a file can be), `read` (bounded, exact readers), `serialise` (values
to each format), `write` (atomic and named writes), `columns` (text and label columns). `mixaug.io` is
the one import most code needs: it re-exports these."""
