import gzip
import json

import pandas as pd
import pytest

from mixaug.data.columns import resolve_label_column, resolve_text_column
from mixaug.data.formats import detect_format
from mixaug.data.read import read_dataset
from mixaug.data.write import write_dataset
from mixaug.errors import MixaugError

DF = pd.DataFrame({"text": ["a b", 'c, "d"', "e\nf"], "label": ["x", "y", "x"], "id": ["007", "2", "3"]})


@pytest.mark.parametrize(
    "name", ["d.jsonl", "d.json", "d.csv", "d.tsv", "d.parquet", "d.jsonl.gz", "d.csv.gz", "d.tsv.gz"]
)
def test_round_trip_every_format(tmp_path, name):
    path = tmp_path / name
    df = DF.replace({"e\nf": "e f"}) if ".tsv" in name else DF  # TSV has no quoting: no line breaks in values
    write_dataset(df, path)
    back = read_dataset(path)
    assert list(back.columns) == list(df.columns)
    assert back.astype(str).equals(df.astype(str))


def test_csv_cells_stay_strings(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,label,id\nhello,NA,007\n")
    back = read_dataset(path)
    assert back.loc[0, "id"] == "007" and back.loc[0, "label"] == "NA"


def test_refuses_overwrite_and_leaves_file(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("keep\n")
    with pytest.raises(MixaugError, match="exists"):
        write_dataset(DF, path)
    assert path.read_text() == "keep\n"


def test_malformed_jsonl_names_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "ok"}\n{"text": "ok"}\n{"text": broken}\n')
    with pytest.raises(MixaugError, match="line 3"):
        read_dataset(path)


def test_non_utf8(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(b"text,label\ncaf\xe9,x\n")
    with pytest.raises(MixaugError, match="UTF-8.*line 2"):
        read_dataset(path)


def test_unknown_extension_and_missing_file(tmp_path):
    with pytest.raises(MixaugError, match="unknown file extension '.xlsx'"):
        detect_format(tmp_path / "d.xlsx")
    with pytest.raises(MixaugError, match="not found"):
        read_dataset(tmp_path / "nope.jsonl")


def test_bad_gzip(tmp_path):
    path = tmp_path / "d.jsonl.gz"
    path.write_bytes(b"not gzip")
    with pytest.raises(MixaugError, match="gzip"):
        read_dataset(path)


def test_gzip_output_is_deterministic(tmp_path):
    write_dataset(DF, tmp_path / "a.jsonl.gz")
    write_dataset(DF, tmp_path / "b.jsonl.gz")
    assert (tmp_path / "a.jsonl.gz").read_bytes() == (tmp_path / "b.jsonl.gz").read_bytes()
    assert json.loads(gzip.decompress((tmp_path / "a.jsonl.gz").read_bytes()).splitlines()[0])["id"] == "007"


def test_column_resolution():
    assert resolve_text_column(pd.DataFrame({"sentence": ["s"], "label": ["l"]}), None) == "sentence"
    with pytest.raises(MixaugError, match="columns found: body, y"):
        resolve_text_column(pd.DataFrame({"body": ["b"], "y": ["y"]}), None)
    with pytest.raises(MixaugError, match="empty"):
        resolve_text_column(pd.DataFrame({"text": []}), None)
    with pytest.raises(MixaugError, match="label column 'y' not found; columns found: text"):
        resolve_label_column(pd.DataFrame({"text": []}), "y")
    assert resolve_label_column(pd.DataFrame({"text": []}), None) is None
