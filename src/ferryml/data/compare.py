"""``ferry data diff A B``: files added, removed and modified; for tables also the schema
change, the row counts and what moved in each column, from the stored profiles."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ferryml.data.profile import CategoricalProfile, NumericProfile, Profile
from ferryml.data.schema import Schema, SchemaDiff
from ferryml.data.workspace import TABLE_SUFFIXES, Workspace
from ferryml.errors import InvalidArgument

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ColumnShift", "DataDiff", "TableDiff", "diff_versions"]

# Modified tables inside folders are read and compared up to this many.
MAX_TABLES = 20


@dataclass(frozen=True)
class ColumnShift:
    """One statistic of a column, before and after, e.g. ``("age", "mean", 41.2, 44.9)``."""

    column: str
    statistic: str
    before: float | str | None
    after: float | str | None


@dataclass(frozen=True)
class TableDiff:
    """A modified table file inside a folder: its rows, schema change and column shifts."""

    path: str
    rows: tuple[int, int]
    schema: SchemaDiff
    shifts: tuple[ColumnShift, ...]


@dataclass(frozen=True)
class DataDiff:
    a: str
    b: str
    same_dataset: bool
    kinds: tuple[str, str]  # file | folder | table, before and after
    added: tuple[str, ...]
    removed: tuple[str, ...]
    modified: tuple[str, ...]
    rows: tuple[int | None, int | None]
    schema: SchemaDiff | None
    shifts: tuple[ColumnShift, ...]
    tables: tuple[TableDiff, ...] = ()  # modified tables inside folders

    @property
    def identical(self) -> bool:
        return not (self.added or self.removed or self.modified)


def diff_versions(ws: Workspace, a: str, b: str) -> DataDiff:
    """Compare two versions, each ``NAME@VERSION`` or ``NAME`` (the latest).

    Raises:
        NotFound: a name or version does not exist.
    """
    va, vb = ws.version(a), ws.version(b)
    before = {e.path: e.digest for e in ws.manifest(va).entries}
    after = {e.path: e.digest for e in ws.manifest(vb).entries}
    schema = shifts = None
    if va.schema and vb.schema:
        schema = Schema.from_dict(json.loads(va.schema)).diff(
            Schema.from_dict(json.loads(vb.schema))
        )
    if va.profile_digest and vb.profile_digest:
        shifts = _shifts(ws.profile(va), ws.profile(vb))
    modified = tuple(sorted(p for p in set(before) & set(after) if before[p] != after[p]))
    tables = [p for p in modified if p and p.lower().endswith(TABLE_SUFFIXES)][:MAX_TABLES]
    return DataDiff(
        a=va.ref,
        b=vb.ref,
        same_dataset=va.name == vb.name,
        kinds=(va.kind, vb.kind),
        added=tuple(sorted(set(after) - set(before))),
        removed=tuple(sorted(set(before) - set(after))),
        modified=modified,
        rows=(va.rows, vb.rows),
        schema=schema,
        shifts=tuple(shifts or ()),
        tables=tuple(_table_diff(ws, p, before[p], after[p]) for p in tables),
    )


def _table_diff(ws: Workspace, path: str, a: str, b: str) -> TableDiff:
    from ferryml.data.profile import profile_frame
    from ferryml.data.schema import infer_schema

    x, y = (_frame(ws, path, digest) for digest in (a, b))
    return TableDiff(
        path,
        (len(x), len(y)),
        infer_schema(x).diff(infer_schema(y)),
        tuple(_shifts(profile_frame(x), profile_frame(y))),
    )


def _frame(ws: Workspace, path: str, digest: str) -> pd.DataFrame:
    import pandas as pd

    from ferryml.data.workspace import read_errors

    data = io.BytesIO(ws.artifacts.get_bytes(digest))
    try:
        return pd.read_csv(data) if path.lower().endswith(".csv") else pd.read_parquet(data)
    except read_errors() as e:
        raise InvalidArgument(f"Table {path} cannot be read: {e}") from e


def _shifts(a: Profile, b: Profile) -> list[ColumnShift]:
    """What moved, per column present in both: location, spread and missing rate for
    numbers; the most common value and the missing rate for categories."""
    found = []
    for name in [c for c in a.columns if c in b.columns]:
        x, y = a.columns[name], b.columns[name]
        pairs: list[tuple[str, float | str | None, float | str | None]] = []
        if isinstance(x, NumericProfile) and isinstance(y, NumericProfile):
            pairs = [
                ("mean", x.mean, y.mean),
                ("std", x.std, y.std),
                ("min", x.min, y.min),
                ("max", x.max, y.max),
            ]
        elif isinstance(x, CategoricalProfile) and isinstance(y, CategoricalProfile):
            pairs = [
                ("top", _top(x), _top(y)),
                ("distinct", len(x.frequencies), len(y.frequencies)),
            ]
        pairs.append(("missing_rate", x.missing_rate, y.missing_rate))
        found += [ColumnShift(name, s, u, v) for s, u, v in pairs if not _same(u, v)]
    return found


def _top(p: CategoricalProfile) -> str | None:
    return max(p.frequencies, key=lambda k: p.frequencies[k]) if p.frequencies else None


def _same(u: float | str | None, v: float | str | None) -> bool:
    if isinstance(u, float) and isinstance(v, float):
        return abs(u - v) <= 1e-12 * max(1.0, abs(u), abs(v)) or (u != u and v != v)
    return u == v
