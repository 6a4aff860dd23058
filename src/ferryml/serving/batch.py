"""Batch inference: predict a Parquet or CSV file, or a Parquet dataset larger than memory,
chunk by chunk in worker processes or on a Dask cluster, resumably, and record the job as
a run.

Each chunk's rows and predictions go to ``<output>.parts/part-00007.parquet`` (written to a
temporary file and renamed, so a part is whole or absent). A manifest in that folder names
the model package, the input's content digest and the chunk size; a later call with the
same three keeps the parts already written and predicts only the missing chunks. At the end
the parts become ``output`` (Parquet or CSV by its extension) and the folder is removed.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import functools
import json
import multiprocessing
import os
import re
import shutil
import signal
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from ferryml.config import Settings
from ferryml.data.workspace import check_parquet_text, read_errors
from ferryml.errors import AlreadyExists, Conflict, FerryError, InvalidArgument, NotFound
from ferryml.store.artifacts import Blob, digest_file
from ferryml.store.entities import Metric, RunStatus
from ferryml.tracking.client import FerryClient

if TYPE_CHECKING:
    from ferryml.registry.package import LoadedModel

__all__ = ["BatchResult", "kept_parts", "run_batch"]

_FORMATS = (".parquet", ".csv")
_MANIFEST = "manifest.json"
_OURS = re.compile(r"part-\d+(-\d+)?\.parquet|manifest\.json|\..+\.tmp")
Chunk: TypeAlias = "pa.RecordBatch | pd.DataFrame"


@dataclass(frozen=True)
class BatchResult:
    """What a batch job did: its run, the rows and chunks predicted, how many chunks an
    earlier interrupted call had written already, and the output file."""

    run_id: str
    rows: int
    chunks: int
    resumed_chunks: int
    output: Path
    seconds: float


def run_batch(
    model_uri: str,
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    *,
    chunk_rows: int = 50_000,
    workers: int | None = None,
    settings: Settings | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    executor: Any = None,
    address: str | None = None,
    column: str = "prediction",
) -> BatchResult:
    """Predict every row of a Parquet or CSV file, or of a Parquet dataset, with a model;
    write the rows with a ``prediction`` column to ``output_path``.

    Args:
        model_uri: ``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` or ``runs:/ID/PATH``.
        input_path: a ``.parquet`` or ``.csv`` file, or a Parquet dataset larger than
            memory: a folder or an ``s3://`` prefix, hive-partitioned or not.
        output_path: a ``.parquet`` or ``.csv`` file; for a dataset also a new folder
            (no extension), laid out as the input, a file per chunk.
        chunk_rows: rows per chunk, the unit of parallel work and of resuming.
        workers: processes predicting at once here (default: one per CPU); 1 predicts in
            this process.
        settings: the stores of the model and the run (default: the fluent API's, whose
            current experiment gets the run, as a child of the active run if any).
        on_progress: called with (rows done, total rows) after each chunk (on Dask, each
            file); the total is 0 when it is not known up front (CSV).
        executor, address: for a dataset, ``"dask"`` predicts on the cluster at
            ``address`` (or a LocalCluster), a file a task, each worker loading the model
            from the artifact store; or a ``distributed.Client``. Default: ``dask:`` in
            ``ferry.yaml``, else here.
        column: the name of the column predictions go to (say, to score a prediction log
            again beside its ``prediction``).

    Returns:
        The run id, rows, chunks, resumed chunks, output path and seconds taken.

    Raises:
        NotFound: the input or the model does not exist.
        InvalidArgument: an extension is not .parquet or .csv, the input cannot be read or
            already has a ``prediction`` column, or a setting is out of range.
        Conflict: ``<output>.parts`` holds files this function did not write, or the
            output folder exists.

    Example:
        >>> run_batch("models:/churn@champion", "customers.parquet", "scored.parquet")
        >>> run_batch("models:/churn@champion", "s3://logs/churn", "scored", executor="dask")
    """
    from ferryml.serving import _batch_dataset as by_file

    text, target = os.fspath(input_path), Path(output_path)
    dataset = None
    if by_file.is_dataset(text) or executor not in (None, "local"):
        _check_dataset_arguments(target, chunk_rows, workers)
        dataset = by_file.open_input(text)
    else:
        _check_arguments(Path(text), target, chunk_rows, workers)
    workers = workers or os.cpu_count() or 1
    client = FerryClient(settings) if settings is not None else _fluent_client()
    try:
        if dataset is None:
            source = Path(text)
            total = _total_rows(source)
            blob = digest_file(source)
            pinned: dict[str, Any] = {"size": blob.size, "blake3": blob.digest}
            label, digest = str(source.resolve()), blob.digest
            pointer = _data_version(client.settings, source, blob)
        else:
            total = by_file.rows_of(dataset)
            pinned = by_file.listing_digest(dataset)
            # a folder output keeps the hive folders: its files leave their columns out
            columns = None if target.suffix else by_file.stored_columns(dataset)
            pinned["columns"] = columns
            label, digest, pointer = dataset.url, pinned["listing_sha256"], None
        model, package = _load_model(client, model_uri)
        parts = target.with_name(target.name + ".parts")
        manifest = {
            "format": 1,
            "model_uri": model_uri,
            "model_package": package,
            "input": pinned,
            "chunk_rows": chunk_rows,
        }
        if column != "prediction":
            manifest["column"] = column
        _prepare_parts(parts, manifest)
        run_id = _start_run(
            client, settings, model, (label, digest, pointer), target, chunk_rows, workers
        )
        start = time.perf_counter()
        try:
            if dataset is None:
                chunked = _read(Path(text), chunk_rows)
                named = ((parts / f"part-{i:05d}.parquet", c) for i, c in enumerate(chunked))
                rows, chunks, resumed = _predict_chunks(
                    model, named, total, workers, on_progress, text, column
                )
            else:
                rows, chunks, resumed = _predict_dataset(
                    model,
                    dataset,
                    parts,
                    total,
                    (chunk_rows, columns, column),
                    workers,
                    on_progress,
                    (client.settings, package, model_uri, executor, address),
                )
            files = sorted(parts.glob("part-*.parquet"))
            if dataset is not None and not target.suffix:
                by_file.organise(dataset, parts, target)
            else:
                _concatenate(files, target)
        except BaseException as e:
            failed = RunStatus.KILLED if isinstance(e, KeyboardInterrupt) else RunStatus.FAILED
            client.set_terminated(run_id, failed, failure=traceback.format_exc()[-8000:])
            if kept_parts(target)[1] == 0:
                shutil.rmtree(parts, ignore_errors=True)  # nothing a rerun could reuse
            raise
        seconds = time.perf_counter() - start
        now = time.time_ns() // 1_000_000
        values = {"rows": rows, "seconds": seconds, "rows_per_s": rows / max(seconds, 1e-9)}
        values |= {"chunks": chunks, "resumed_chunks": resumed}
        client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in values.items()])
        client.set_terminated(run_id)
        shutil.rmtree(parts)
        return BatchResult(run_id, rows, chunks, resumed, target, seconds)
    finally:
        if settings is not None:
            client.close()


def _predict_dataset(
    model: LoadedModel,
    dataset: Any,
    parts: Path,
    total: int,
    chunking: tuple[int, list[str] | None, str],
    workers: int,
    on_progress: Callable[[int, int], None] | None,
    where: tuple[Settings, str, str, Any, str | None],
) -> tuple[int, int, int]:
    from ferryml._dask import runner
    from ferryml.data.dataset import _project_root
    from ferryml.serving import _batch_dataset as by_file

    settings, package, uri, executor, address = where
    chunk_rows, columns, column = chunking
    with runner(executor, address=address, root=_project_root()) as run:
        if run.name == "local":
            named = by_file.read_chunks(dataset, parts, chunk_rows, columns)
            return _predict_chunks(model, named, total, workers, on_progress, dataset.url, column)
        report = on_progress or (lambda done, total: None)
        done = 0

        def progress(rows: int) -> None:
            nonlocal done
            done += rows
            report(done, total)

        result = by_file.predict_on(
            run, dataset, parts, (chunk_rows, columns, column), settings, package, uri, progress
        )
    if result[1] == 0:
        raise InvalidArgument(f"Input {dataset.url!r} has no rows; there is nothing to predict.")
    return result


def kept_parts(output_path: str | os.PathLike[str]) -> tuple[Path, int]:
    """The parts folder of ``output_path`` and how many predicted chunks it holds, which a
    call with the same arguments reuses."""
    target = Path(output_path)
    parts = target.with_name(target.name + ".parts")
    return parts, len(list(parts.glob("part-*.parquet"))) if parts.is_dir() else 0


def _check_dataset_arguments(target: Path, chunk_rows: int, workers: int | None) -> None:
    if target.suffix and target.suffix.lower() not in _FORMATS:
        raise InvalidArgument(
            f"Output {str(target)!r} has extension {target.suffix!r}; write a .parquet or "
            ".csv file, or a folder (a name without extension)."
        )
    if not target.suffix and target.exists():
        raise Conflict(f"Output folder {str(target)!r} exists; remove it or choose another.")
    if chunk_rows < 1 or (workers is not None and workers < 1):
        raise InvalidArgument(
            f"chunk_rows and workers must be at least 1; got {chunk_rows} and {workers}."
        )


def _check_arguments(source: Path, target: Path, chunk_rows: int, workers: int | None) -> None:
    for path, role in ((source, "Input"), (target, "Output")):
        if path.suffix.lower() not in _FORMATS:
            raise InvalidArgument(
                f"{role} {str(path)!r} has extension {path.suffix or '(none)'!r}; "
                "batch inference reads and writes .parquet and .csv files."
            )
    if not source.is_file():
        raise NotFound(f"Input file {str(source)!r} does not exist. Check the path.")
    if target.resolve() == source.resolve():
        raise InvalidArgument(f"Output {str(target)!r} is the input; choose another path.")
    if chunk_rows < 1 or (workers is not None and workers < 1):
        raise InvalidArgument(
            f"chunk_rows and workers must be at least 1; got {chunk_rows} and {workers}."
        )


def _fluent_client() -> FerryClient:
    from ferryml.tracking.fluent import _fluent

    return _fluent.get_client()


def _load_model(client: FerryClient, uri: str) -> tuple[LoadedModel, str]:
    """The loaded model and its package digest, which the manifest pins: when an alias
    moves, the parts of the old version are not reused."""
    from ferryml.registry.models import Registry
    from ferryml.registry.package import LoadedModel, load_package

    registry = Registry(client=client)
    try:
        digest, version = registry.resolve(uri)
        registry.check_trusted(uri, digest, version)
        meta, predictor, background = load_package(registry.artifacts, digest)
    finally:
        registry.close()
    return LoadedModel(meta, predictor, uri, version, background=background), digest


def _prepare_parts(parts: Path, manifest: dict[str, Any]) -> None:
    file = parts / _MANIFEST
    if parts.is_dir():
        try:
            same = json.loads(file.read_text(encoding="utf-8")) == manifest
        except (OSError, ValueError):
            same = False
        if same:
            for stale in parts.glob(".*.tmp"):  # left by a process killed mid-write
                stale.unlink()
            return
        strangers = sorted(p.name for p in parts.iterdir() if not _OURS.fullmatch(p.name))
        if strangers:
            raise Conflict(
                f"{parts} holds files that batch inference did not write ({strangers[0]}); "
                "move them away or choose another output path."
            )
        shutil.rmtree(parts)
    elif parts.exists():
        raise Conflict(f"{parts} is a file; move it away or choose another output path.")
    parts.mkdir(parents=True)
    _replace_text(file, json.dumps(manifest, sort_keys=True))


def _replace_text(file: Path, text: str) -> None:
    tmp = file.with_name(f".{file.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, file)


def _start_run(
    client: FerryClient,
    settings: Settings | None,
    model: LoadedModel,
    source: tuple[str, str, Any],
    target: Path,
    chunk_rows: int,
    workers: int,
) -> str:
    """A run for the job; ``source`` is the input's label, digest and data version."""
    from ferryml.tracking import fluent

    version = model.version
    if settings is None:
        active = fluent.active_run()
        experiment_id, parent = fluent._experiment_id(), active.run_id if active else None
    else:
        experiment_id, parent = _default_experiment(client), None
    label = f"{version.name}/{version.version}" if version is not None else model.uri
    run = client.create_run(
        experiment_id, run_name=f"batch {label}", tags={"ferry.kind": "batch"}, parent_run_id=parent
    )
    run_id = run.info.run_id
    text, digest, pointer = source
    params: dict[str, Any] = {"model_uri": model.uri, "model_version": label, "input": text}
    params |= {"input_digest": digest, "output": target.resolve()}
    client.log_batch(run_id, params={**params, "chunk_rows": chunk_rows, "workers": workers})
    if pointer is not None:
        client.log_input(run_id, pointer.name, pointer.version, pointer.manifest, "inference")
    return run_id


def _default_experiment(client: FerryClient) -> str:
    from ferryml.tracking.fluent import DEFAULT_EXPERIMENT

    found = client.get_experiment_by_name(DEFAULT_EXPERIMENT)
    if found is None:
        try:
            return client.create_experiment(DEFAULT_EXPERIMENT)
        except AlreadyExists:
            found = client.get_experiment_by_name(DEFAULT_EXPERIMENT)
    assert found is not None
    return found.experiment_id


def _data_version(settings: Settings, source: Path, blob: Blob) -> Any:
    """The pointer of the data version the input is, if it is tracked and unchanged."""
    if not source.with_name(source.name + ".ferry").is_file():
        return None
    from ferryml.data.workspace import Workspace

    workspace = Workspace(settings)
    try:
        [(_, pointer)] = workspace.pointers([str(source.resolve())])
        entries = workspace.manifest(pointer).entries
    except FerryError:  # outside the project, or its files are in another store
        return None
    finally:
        workspace.close()
    return pointer if [e.digest for e in entries] == [blob.digest] else None


def _predict_chunks(
    model: LoadedModel,
    named: Iterable[tuple[Path, Chunk]],
    total: int,
    workers: int,
    on_progress: Callable[[int, int], None] | None,
    source: str,
    column: str = "prediction",
) -> tuple[int, int, int]:
    """Predict each chunk into its part, ``workers`` at a time, skipping the parts an
    earlier call wrote; (rows, chunks, resumed chunks)."""
    report = on_progress or (lambda done, total: None)
    pool: cf.Executor
    task: Callable[[Chunk, Path], int]
    if workers == 1:
        pool, task = _Inline(), functools.partial(_write_part, model, column=column)
    else:
        # fork: workers share the loaded model with this process instead of loading it
        pool, task = (
            cf.ProcessPoolExecutor(
                workers,
                mp_context=multiprocessing.get_context("fork"),
                initializer=_init_worker,
                initargs=(model, column),
            ),
            _work,
        )
    done = chunks = resumed = 0
    in_flight: set[cf.Future[int]] = set()
    try:
        for part, chunk in named:
            chunks += 1
            if _is_complete(part, len(chunk)):
                resumed += 1
                done += len(chunk)
                report(done, total)
                continue
            in_flight.add(pool.submit(task, chunk, part))
            if len(in_flight) >= 2 * workers:  # read ahead, not the whole file into memory
                done += _collect(in_flight)
                report(done, total)
        while in_flight:
            done += _collect(in_flight)
            report(done, total)
    finally:
        # chunks being predicted finish and keep their parts for the next call
        pool.shutdown(wait=True, cancel_futures=True)
    if chunks == 0:
        raise InvalidArgument(f"Input {source!r} has no rows; there is nothing to predict.")
    return done, chunks, resumed


def _collect(in_flight: set[cf.Future[int]]) -> int:
    finished, _ = cf.wait(in_flight, return_when=cf.FIRST_COMPLETED)
    in_flight -= finished
    return sum(future.result() for future in finished)  # a worker's error is raised here


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() == ".parquet"


def _total_rows(source: Path) -> int:
    """The input's rows when its metadata tells (Parquet), else 0; fails early on a file
    that cannot be read, before a run is recorded."""
    with _reading(source):
        if _is_parquet(source):
            rows = int(pq.ParquetFile(source).metadata.num_rows)
            check_parquet_text(source)
        else:
            rows = len(pd.read_csv(source, nrows=1))  # is there a row at all
    if rows == 0:
        raise InvalidArgument(f"Input {str(source)!r} has no rows; there is nothing to predict.")
    return rows if _is_parquet(source) else 0


@contextlib.contextmanager
def _reading(source: Path) -> Iterator[None]:
    kind = "Parquet" if _is_parquet(source) else "CSV"
    try:
        yield
    except read_errors() as e:
        raise InvalidArgument(f"Input {str(source)!r} cannot be read as {kind}: {e}") from e


def _read(source: Path, chunk_rows: int) -> Iterator[Chunk]:
    with _reading(source):
        if _is_parquet(source):
            yield from pq.ParquetFile(source).iter_batches(batch_size=chunk_rows)
        else:
            with pd.read_csv(source, chunksize=chunk_rows) as reader:
                yield from (frame for frame in reader if len(frame))


def _is_complete(part: Path, rows: int) -> bool:
    try:
        return part.is_file() and pq.ParquetFile(part).metadata.num_rows == rows
    except (ValueError, OSError):  # a damaged part is predicted again
        return False


class _Inline(cf.Executor):
    """Runs each task at once in this process: one worker needs no pool."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        future: cf.Future[Any] = cf.Future()
        future.set_result(fn(*args, **kwargs))
        return future


# A worker process's model, set once by its initializer: a pool task cannot carry it (it
# would be pickled with every chunk), and each forked process has its own copy.
_worker_model: LoadedModel | None = None
_worker_column = "prediction"


def _init_worker(model: LoadedModel, column: str) -> None:
    global _worker_model, _worker_column
    _worker_model, _worker_column = model, column
    # Ctrl-C is the parent's to handle: it lets the chunks in flight finish their parts.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # One thread per worker: the workers use the cores already, and GNU OpenMP (used by
    # scikit-learn) deadlocks in a forked child whose parent had started its threads.
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def _work(chunk: Chunk, part: Path) -> int:
    assert _worker_model is not None, "the pool's initializer sets the model"
    return _write_part(_worker_model, chunk, part, column=_worker_column)


def _write_part(model: LoadedModel, chunk: Chunk, part: Path, *, column: str = "prediction") -> int:
    if isinstance(chunk, pa.RecordBatch):
        try:
            table, frame = pa.Table.from_batches([chunk]), chunk.to_pandas()
        except read_errors() as e:  # the file's pandas metadata is damaged
            raise InvalidArgument(f"The input's rows cannot be read as a table: {e}") from e
    else:
        table, frame = pa.Table.from_pandas(chunk, preserve_index=False), chunk
    if column in table.column_names:
        raise InvalidArgument(
            f"The input has a column {column!r} already, where predictions would go; "
            "rename or drop it, or name another column (--column)."
        )
    predictions = np.asarray(model.predict(frame))
    if len(predictions) != len(frame):
        raise InvalidArgument(
            f"Model {model.uri} returned {len(predictions)} predictions for {len(frame)} rows."
        )
    values = pa.array(predictions if predictions.ndim == 1 else list(predictions))
    table = table.append_column(column, values)
    tmp = part.with_name(f".{part.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp, use_dictionary=_dictionary_columns(table.schema))
    os.replace(tmp, part)
    return len(frame)


def _concatenate(files: list[Path], target: Path) -> None:
    schemas = [pq.read_schema(f) for f in files]
    schema = schemas[0]
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        if any(not s.equals(schema) for s in schemas):
            # CSV chunks can infer different types for a column (int, then float with NaN)
            schema = pa.unify_schemas(schemas, promote_options="permissive").remove_metadata()
        target.parent.mkdir(parents=True, exist_ok=True)
        writer = (
            pq.ParquetWriter(tmp, schema, use_dictionary=_dictionary_columns(schema))
            if _is_parquet(target)
            else pa_csv.CSVWriter(tmp, schema)
        )
        with writer:
            for file in files:
                writer.write_table(pq.read_table(file).cast(schema))
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        tmp.unlink(missing_ok=True)
        raise InvalidArgument(
            f"The chunks' columns have types that do not combine ({e}); give the input as "
            "Parquet, or a larger chunk_rows so each chunk sees every kind of value."
        ) from e
    os.replace(tmp, target)


def _dictionary_columns(schema: pa.Schema) -> list[str]:
    # Floats rarely repeat: trying a dictionary for them and falling back made writing
    # 5x slower; other columns (ids, categories, flags) keep it.
    return [f.name for f in schema if not pa.types.is_floating(f.type)]
