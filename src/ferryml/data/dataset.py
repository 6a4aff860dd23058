"""Parquet datasets larger than memory: one file, a folder, or an ``s3://`` prefix, hive-
partitioned or not (``date=2026-12-01/part-0.parquet``), read file by file in record
batches of at most ``batch_rows`` rows, so memory stays bounded whatever the size.

``profile_dataset`` profiles one here, batch by batch, or on a Dask cluster, where each
worker profiles whole files and the client merges their profiles. Both merge the same
per-file profiles in file order, so a cluster gives exactly the local result; against
``profile_frame`` of the whole table in memory, the profile agrees within ``merge``'s terms
(exact counts, missing values, min, max and frequencies; mean and std to float rounding;
histograms within their binning), and exactly when the data is one batch.

Example:
    >>> profile = profile_dataset("s3://logs/churn", where={"date": "2026-12-01"})
    >>> profile = profile_dataset("logs/", executor="dask", address="tcp://10.0.0.5:8786")
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from ferryml.data.profile import Profile, merge, profile_frame
from ferryml.errors import InvalidArgument, NotFound

__all__ = ["BATCH_ROWS", "ParquetDataset", "iter_batches", "open_dataset", "profile_dataset"]

BATCH_ROWS = 250_000  # ~50 MB a batch of 25 numeric columns: small beside any machine


@dataclass(frozen=True)
class ParquetDataset:
    """A Parquet dataset, opened: its files (after ``where``'s partition pruning), in path
    order, and its schema, hive partition columns included. Picklable: a Dask worker
    reads its files from it."""

    url: str
    fragments: tuple[Any, ...]  # pyarrow.dataset.ParquetFileFragment, one a file
    schema: pa.Schema
    filter: Any = None  # pyarrow.dataset.Expression on rows, from where=

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(f.path for f in self.fragments)

    @property
    def column_names(self) -> list[str]:
        return list(self.schema.names)


def open_dataset(
    url: str | os.PathLike[str],
    *,
    columns: Sequence[str] | None = None,
    where: Mapping[str, Any] | None = None,
) -> ParquetDataset:
    """Open a Parquet file, folder or ``s3://`` prefix; read nothing but its listing and one
    file's footer.

    Args:
        url: a local path or an fsspec URL (``s3://bucket/prefix``); S3 credentials and
            endpoint come from the usual AWS variables.
        columns: columns the caller will read; checked here.
        where: ``{column: value}`` (or a list of values) that rows must match; on a hive
            partition column (``date``) it skips whole files, e.g. ``{"date": "2026-12-01"}``.

    Raises:
        NotFound: nothing is at ``url``.
        InvalidArgument: it holds no Parquet file, a file is not Parquet, or a column named
            in ``columns`` or ``where`` is not in the data.
    """
    text = os.fspath(url)
    filesystem, path = _filesystem(text)
    info = filesystem.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise NotFound(
            f"Dataset {text!r} not found. Give a Parquet file, a folder of them or an s3:// prefix."
        )
    source: Any = path if info.type == pafs.FileType.Directory else [path]
    try:
        dataset = ds.dataset(
            source,
            filesystem=filesystem,
            format="parquet",
            partitioning="hive" if info.type == pafs.FileType.Directory else None,
            ignore_prefixes=[".", "_"],
        )
    except (pa.ArrowInvalid, OSError) as e:
        raise _not_parquet(text, e) from e
    schema = dataset.schema
    if not schema.names:
        raise InvalidArgument(f"Dataset {text!r} holds no Parquet file; write some there first.")
    _check_columns(text, schema, [*(columns or []), *(where or {})])
    expression = _where(text, schema, where)
    fragments = tuple(sorted(dataset.get_fragments(filter=expression), key=lambda f: f.path))
    if not fragments and expression is None:
        raise InvalidArgument(f"Dataset {text!r} holds no Parquet file; write some there first.")
    return ParquetDataset(text, fragments, schema, expression)


def iter_batches(
    dataset: ParquetDataset,
    *,
    columns: Sequence[str] | None = None,
    batch_rows: int = BATCH_ROWS,
    fragments: Iterable[Any] | None = None,
) -> Iterator[pa.RecordBatch]:
    """The rows of ``dataset`` (or of some of its ``fragments``), file by file in path order,
    in batches of at most ``batch_rows`` rows; only ``columns`` when given.

    Raises:
        InvalidArgument: a file is not Parquet or its columns do not match the others'.
    """
    _check_batch_rows(batch_rows)
    for fragment in dataset.fragments if fragments is None else fragments:
        yield from _fragment_batches(dataset, fragment, columns, batch_rows)


def _fragment_batches(
    dataset: ParquetDataset, fragment: Any, columns: Sequence[str] | None, batch_rows: int
) -> Iterator[pa.RecordBatch]:
    try:
        # One batch read ahead, one file at a time: memory is a few batches, not a file.
        batches = fragment.to_batches(
            schema=dataset.schema,
            columns=list(columns) if columns is not None else None,
            filter=dataset.filter,
            batch_size=batch_rows,
            batch_readahead=1,
            fragment_readahead=1,
        )
        for batch in batches:
            if batch.num_rows:
                yield batch
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OSError) as e:
        raise _not_parquet(dataset.url, e, fragment.path) from e


def profile_dataset(
    url: str | os.PathLike[str] | ParquetDataset,
    *,
    columns: Sequence[str] | None = None,
    where: Mapping[str, Any] | None = None,
    bins: int = 20,
    max_categories: int = 50,
    batch_rows: int = BATCH_ROWS,
    executor: Any = None,
    address: str | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> Profile:
    """Profile a Parquet dataset larger than memory (see ``open_dataset`` for ``url``,
    ``columns`` and ``where``; ``bins`` and ``max_categories`` as in ``profile_frame``).

    Args:
        batch_rows: rows profiled at once; memory grows with it, not with the data.
        executor: ``"local"`` (stream here), ``"dask"`` (the scheduler at ``address``, or a
            LocalCluster for the call) or a ``distributed.Client``; default ``dask`` when
            ``ferry.yaml`` has ``dask: {address: ...}``, else local.
        on_progress: called with each batch's row count (locally) or each file's (on Dask).

    Returns:
        The dataset's ``Profile``.

    Raises:
        NotFound, InvalidArgument: as ``open_dataset``; InvalidArgument too if no row matches.
        StoreUnavailable: the Dask scheduler cannot be reached.
    """
    from ferryml._dask import runner

    dataset = url if isinstance(url, ParquetDataset) else open_dataset(url, columns=columns)
    if where is not None:
        dataset = open_dataset(dataset.url, columns=columns, where=where)
    _check_batch_rows(batch_rows)
    options = (columns, bins, max_categories, batch_rows)
    result: Profile | None = None
    with runner(executor, address=address, root=_project_root()) as run:
        report = on_progress if run.name == "local" else None
        tasks = [(dataset, fragment, options, report) for fragment in dataset.fragments]
        for part in run.map(_profile_fragment, tasks):
            if part is None:
                continue
            profile = Profile.from_dict(part)
            if on_progress is not None and run.name != "local":
                on_progress(profile.rows)
            result = profile if result is None else merge(result, profile)
    if result is None:
        raise InvalidArgument(
            f"Dataset {dataset.url!r} has no rows"
            + (f" where {dict(where)}" if where else "")
            + "; check the path and the where= values."
        )
    return result


def _profile_fragment(
    task: tuple[ParquetDataset, Any, tuple[Any, ...], Callable[[int], None] | None],
) -> dict[str, Any] | None:
    """One file's profile, batch by batch, as ``to_dict()`` (what crosses to the client)."""
    dataset, fragment, (columns, bins, max_categories, batch_rows), report = task
    result: Profile | None = None
    for batch in _fragment_batches(dataset, fragment, columns, batch_rows):
        part = profile_frame(batch.to_pandas(), bins=bins, max_categories=max_categories)
        result = part if result is None else merge(result, part)
        if report is not None:
            report(batch.num_rows)
    return None if result is None else result.to_dict()


# -- helpers ----------------------------------------------------------------------------


def _filesystem(url: str) -> tuple[pafs.FileSystem, str]:
    if "://" not in url or url.startswith("file://"):
        return pafs.LocalFileSystem(), os.path.abspath(url.removeprefix("file://"))
    try:
        from fsspec.core import url_to_fs

        fs, path = url_to_fs(url)
    except (ImportError, ValueError) as e:
        raise InvalidArgument(
            f"Cannot open {url!r}: {e}. Use a local path or an fsspec URL such as "
            "s3://bucket/prefix (S3 needs s3fs)."
        ) from e
    return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), path


def _not_parquet(url: str, e: Exception, file: str | None = None) -> InvalidArgument:
    where = f"{file} in dataset {url!r}" if file else f"Dataset {url!r}"
    reason = str(e).splitlines()[0] if str(e) else type(e).__name__
    return InvalidArgument(
        f"{where} cannot be read as Parquet ({reason}); keep only Parquet files with the "
        "same columns there (names starting with . or _ are skipped)."
    )


def _check_columns(url: str, schema: pa.Schema, wanted: Iterable[str]) -> None:
    missing = [c for c in dict.fromkeys(wanted) if c not in schema.names]
    if missing:
        raise InvalidArgument(
            f"Dataset {url!r} has no column {', '.join(map(repr, missing))}; it has "
            f"{', '.join(map(repr, schema.names))}."
        )


def _where(url: str, schema: pa.Schema, where: Mapping[str, Any] | None) -> Any:
    expression = None
    for name, value in (where or {}).items():
        kind = schema.field(name).type
        values = list(value) if isinstance(value, list | tuple | set | frozenset) else [value]
        try:
            scalars = [pa.scalar(v).cast(kind) for v in values]
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
            raise InvalidArgument(
                f"where={{{name!r}: {value!r}}} does not match column {name!r} of dataset "
                f"{url!r}, which holds {kind} values ({e})."
            ) from e
        term = ds.field(name).isin(pa.array(scalars, type=kind))
        expression = term if expression is None else expression & term
    return expression


def _check_batch_rows(batch_rows: int) -> None:
    if isinstance(batch_rows, bool) or not isinstance(batch_rows, int) or batch_rows < 1:
        raise InvalidArgument(f"batch_rows must be a whole number >= 1, got {batch_rows!r}.")


def _project_root() -> Any:
    """The project whose ``ferry.yaml`` may name a Dask cluster, if any."""
    from ferryml.config import find_root

    return find_root(os.getcwd())
