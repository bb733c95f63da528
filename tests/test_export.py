"""results/NAME.parquet: list parameters kept as lists (pyarrow is in requirements.txt)."""
from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from memlab.export import decode_json_columns, write_parquet


def merged_table() -> pd.DataFrame:
    """A results table as the store merges it for the CSV: list parameters as JSON text."""
    return pd.DataFrame({"widths": ["[512]", "[256, 256]", "[128, 128, 128]"], "lr": [0.1, 0.01, 0.001],
                         "model": ["mlp", "mlp", "cnn"], "note": ["[draft", None, "ok"],
                         "_index": [0, 1, 2], "_key": ["a", "b", "c"], "test_acc": [0.9, 0.95, float("nan")]})


def test_parquet_keeps_lists_as_lists(tmp_path):
    path = write_parquet(merged_table(), tmp_path / "results" / "sgd.parquet")
    assert path == tmp_path / "results" / "sgd.parquet"
    table = pq.read_table(path)
    widths = table.schema.field("widths").type
    assert pa.types.is_list(widths) and pa.types.is_integer(widths.value_type)
    df = table.to_pandas()
    assert [list(w) for w in df["widths"]] == [[512], [256, 256], [128, 128, 128]]
    assert list(df["note"][[0, 2]]) == ["[draft", "ok"] and pd.isna(df["note"][1])   # text stays text
    assert df["lr"].tolist() == [0.1, 0.01, 0.001] and pd.isna(df["test_acc"][2])
    assert list(df.columns) == list(merged_table().columns)
    assert not list(path.parent.glob(".*"))          # written atomically: no temporary left


def test_a_column_arrow_cannot_type_stays_json_text(tmp_path):
    df = pd.DataFrame({"mixed": ['[1, "a"]', "[2]"], "x": [1, 2]})
    out = pq.read_table(write_parquet(df, tmp_path / "m.parquet")).to_pandas()
    assert list(out["mixed"]) == ['[1, "a"]', "[2]"]


def test_decode_json_columns_leaves_the_input_alone():
    df = merged_table()
    decoded = decode_json_columns(df)
    assert decoded["widths"][1] == [256, 256] and df["widths"][1] == "[256, 256]"
