"""Results as Parquet: results/NAME.parquet beside results/NAME.csv, list parameters kept as lists.

    python run.py --name sgd_widths      # writes results/sgd_widths.csv (and .parquet with pyarrow)
    pd.read_parquet("results/sgd_widths.parquet")["widths"][0]    # [512, 512], a list, not text

The CSV holds a list or dict cell as JSON text ("[512, 512]"); the Parquet file holds the list
itself, so pandas, polars or DuckDB read it back typed.  Parquet needs pyarrow (the optional
extra `pip install 'memlab[parquet]'`): without it nothing is written and nothing fails.
"""
from __future__ import annotations

import json
from pathlib import Path

from memlab import io


def decode_json_columns(df):
    """A copy of `df` with each column whose cells are all JSON text of a list or a dict (as
    the CSV writes list parameters) decoded back to lists and dicts.  Missing cells stay NaN."""
    import pandas as pd
    out = df.copy()
    for col in df.columns:
        if not (df[col].dtype == object or pd.api.types.is_string_dtype(df[col].dtype)):
            continue
        cells = df[col].dropna()
        if cells.empty or not all(isinstance(v, str) and v[:1] in "[{" for v in cells):
            continue
        try:
            decoded = {i: json.loads(v) for i, v in cells.items()}
        except ValueError:
            continue   # text that only looks like JSON: a string parameter, kept as it is
        if all(isinstance(v, (list, dict)) for v in decoded.values()):
            out[col] = pd.Series([decoded.get(i, v) for i, v in df[col].items()], index=df.index, dtype=object)
    return out


def write_parquet(df, path) -> Path | None:
    """Write `df` (a results table as merged for the CSV) to `path` as Parquet, atomically.

    JSON-text list and dict columns are decoded first (decode_json_columns), so they are
    Parquet lists and structs; a column Arrow cannot type (lists of mixed types, say) stays
    JSON text.  Returns the path, or None without writing when pyarrow is not installed.
    """
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] != "pyarrow":
            raise
        return None

    df = decode_json_columns(df)
    columns = {}
    for col in df.columns:
        try:
            columns[str(col)] = pa.array(df[col], from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            columns[str(col)] = pa.array([None if _missing(v) else json.dumps(v) for v in df[col]], pa.string())
    table = pa.table(columns)
    path = Path(path)
    with io.atomic_path(path, suffix=".parquet") as tmp:
        pq.write_table(table, tmp)
    return path


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and v != v)
