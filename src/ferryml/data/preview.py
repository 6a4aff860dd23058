"""The first rows of a table file, read without loading the whole file."""

from __future__ import annotations

import math
from typing import Any, BinaryIO

__all__ = ["head_rows"]


def head_rows(source: BinaryIO, name: str, rows: int) -> tuple[list[str], list[list[Any]]]:
    """Column names and the first ``rows`` rows of a CSV, TSV or Parquet file (by ``name``'s
    ending), each value JSON-ready (numbers, strings, booleans, None).

    Raises:
        InvalidArgument: the bytes are not a table of that format.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from ferryml.errors import InvalidArgument

    try:
        if name.endswith((".parquet", ".pq")):
            batches = pq.ParquetFile(source).iter_batches(batch_size=rows)
            first = next(batches, None)
            table = pa.Table.from_batches([first]) if first is not None else None
        else:
            delimiter = "\t" if name.endswith(".tsv") else ","
            reader = pacsv.open_csv(source, parse_options=pacsv.ParseOptions(delimiter=delimiter))
            table = pa.Table.from_batches([reader.read_next_batch()]).slice(0, rows)
    except StopIteration:
        return [], []
    except (pa.ArrowException, OSError, ValueError) as e:
        raise InvalidArgument(f"{name!r} is not a readable table: {e}") from e
    if table is None:
        return [], []
    table = table.slice(0, rows)
    columns = table.column_names
    values = [[_plain(row[c]) for c in columns] for row in table.to_pylist()]
    return columns, values


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return str(value)
