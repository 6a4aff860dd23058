"""Batch inference over a Parquet dataset (a folder or an ``s3://`` prefix, hive-partitioned
or not): its files' record batches are the chunks, ``part-FFFFF-BBBBB.parquet`` for batch B
of file F, so a rerun resumes and a Dask cluster, where each worker predicts whole files,
writes the very parts a local run writes."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ferryml.config import Settings
from ferryml.data.dataset import ParquetDataset, _fragment_batches, open_dataset

if TYPE_CHECKING:
    from ferryml.registry.package import LoadedModel

__all__ = [
    "is_dataset",
    "listing_digest",
    "open_input",
    "organise",
    "predict_on",
    "read_chunks",
    "rows_of",
    "stored_columns",
]


def is_dataset(source: str) -> bool:
    """Whether ``source`` is read as a dataset: a folder, a remote URL, or a name without
    extension (which, absent, gets the dataset's "not found")."""
    return "://" in source or Path(source).is_dir() or not Path(source).suffix


def open_input(source: str) -> ParquetDataset:
    return open_dataset(source)


def listing_digest(dataset: ParquetDataset) -> dict[str, Any]:
    """What the manifest pins of a dataset: its files, their sizes and times. Hashing the
    bytes would read the whole dataset once more before predicting."""
    infos = []
    for fragment in dataset.fragments:
        info = fragment.filesystem.get_file_info(fragment.path)
        mtime = info.mtime_ns if info.mtime_ns is not None else None
        infos.append([fragment.path, info.size, mtime])
    text = json.dumps(infos, separators=(",", ":"))
    return {"files": len(infos), "listing_sha256": hashlib.sha256(text.encode()).hexdigest()}


def part_name(file: int, batch: int) -> str:
    return f"part-{file:05d}-{batch:05d}.parquet"


def stored_columns(dataset: ParquetDataset) -> list[str]:
    """The columns the files hold, without those their hive folders give (``date``): what
    a folder output laid out like the input writes in its files."""
    stored = set(dataset.fragments[0].physical_schema.names) if dataset.fragments else set()
    return [n for n in dataset.schema.names if n in stored]


def read_chunks(
    dataset: ParquetDataset, parts: Path, chunk_rows: int, columns: list[str] | None
) -> Iterator[tuple[Path, Any]]:
    """Every batch of every file, with the part it goes to, in file order."""
    for f, fragment in enumerate(dataset.fragments):
        for b, batch in enumerate(_fragment_batches(dataset, fragment, columns, chunk_rows)):
            yield parts / part_name(f, b), batch


def predict_on(
    run: Any,
    dataset: ParquetDataset,
    parts: Path,
    chunking: tuple[int, list[str] | None, str],
    settings: Settings,
    digest: str,
    uri: str,
    on_progress: Callable[[int], None],
) -> tuple[int, int, int]:
    """Predict on a Dask cluster: one task a file, each loading the model from the artifact
    store once per worker process; (rows, chunks, resumed chunks)."""
    tasks = [
        (dataset, f, fragment, parts, chunking, settings, digest, uri)
        for f, fragment in enumerate(dataset.fragments)
    ]
    rows = chunks = resumed = 0
    for done, count, kept in run.map(_predict_file, tasks):
        rows, chunks, resumed = rows + done, chunks + count, resumed + kept
        on_progress(done)
    return rows, chunks, resumed


def _predict_file(task: tuple[Any, ...]) -> tuple[int, int, int]:
    from ferryml.serving.batch import _is_complete, _write_part

    dataset, f, fragment, parts, (chunk_rows, columns, column), settings, digest, uri = task
    model = _model(settings, digest, uri)
    rows = chunks = resumed = 0
    for b, batch in enumerate(_fragment_batches(dataset, fragment, columns, chunk_rows)):
        part = parts / part_name(f, b)
        chunks += 1
        if _is_complete(part, batch.num_rows):
            resumed += 1
            rows += batch.num_rows
            continue
        rows += _write_part(model, batch, part, column=column)
    return rows, chunks, resumed


@functools.lru_cache(maxsize=4)
def _model(settings: Settings, digest: str, uri: str) -> LoadedModel:
    """The model package ``digest`` (checked against its digest, as the client did before
    sending it), loaded once per worker process."""
    from ferryml.registry.package import LoadedModel, load_package
    from ferryml.store.factory import open_artifact_store

    artifacts = open_artifact_store(settings)
    try:
        meta, predictor, background = load_package(artifacts, digest)
    finally:
        if hasattr(artifacts, "close"):
            artifacts.close()
    return LoadedModel(meta, predictor, uri, background=background)


def organise(dataset: ParquetDataset, parts: Path, target: Path) -> None:
    """The parts as the folder ``target``, laid out as the input (hive folders kept): file
    ``date=2026-12-01/part-0.parquet``'s batches become ``date=2026-12-01/part-0-00000.parquet``
    and on. Renames, no copy."""
    root = os.path.commonpath([f.path for f in dataset.fragments]) if dataset.fragments else ""
    if len(dataset.fragments) == 1:
        root = os.path.dirname(dataset.fragments[0].path)
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for f, fragment in enumerate(dataset.fragments):
        relative = Path(os.path.relpath(fragment.path, root)) if root else Path(fragment.path)
        b = 0
        while (part := parts / part_name(f, b)).is_file():
            place = tmp / relative.parent / f"{Path(relative.name).stem}-{b:05d}.parquet"
            place.parent.mkdir(parents=True, exist_ok=True)
            os.replace(part, place)
            b += 1
    os.replace(tmp, target)


def rows_of(dataset: ParquetDataset) -> int:
    """Rows of the dataset, from its files' footers."""
    return sum(int(f.metadata.num_rows) for f in dataset.fragments)
