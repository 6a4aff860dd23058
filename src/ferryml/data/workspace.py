"""Data versioning: add files, folders and tables as content-addressed versions, restore
them, and see what changed. ``Workspace`` is the project folder with its pointer files
and the stores behind them."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ferryml import _naming
from ferryml.config import Settings
from ferryml.data import _files
from ferryml.data._hashcache import HashCache
from ferryml.data._links import parse_links
from ferryml.data._manifest import FileEntry, Manifest
from ferryml.data._pointer import SUFFIX, Pointer, pointer_file
from ferryml.errors import InvalidArgument, NotFound
from ferryml.store.factory import is_server_url, open_artifact_store, open_dataset_store

if TYPE_CHECKING:
    import pandas as pd

    from ferryml.data.profile import Profile
    from ferryml.data.validation import Expectation, ValidationReport
    from ferryml.store.artifacts import ArtifactStore
    from ferryml.store.base import DatasetStore
    from ferryml.store.entities import DatasetVersion  # not at run time: a checkout needs none

__all__ = ["DataStatus", "Restored", "Workspace", "parse_ref"]

TABLE_SUFFIXES = (".parquet", ".pq", ".csv")


@dataclass(frozen=True)
class DataStatus:
    """How a tracked path differs from the version its pointer file names."""

    name: str
    version: int
    path: str
    added: tuple[str, ...]
    removed: tuple[str, ...]
    modified: tuple[str, ...]
    missing: bool  # the path is gone from the workspace

    @property
    def clean(self) -> bool:
        return not (self.added or self.removed or self.modified or self.missing)


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``"name@3"`` -> ("name", 3); ``"name"`` -> ("name", None) for the latest."""
    name, at, version = ref.rpartition("@") if "@" in ref else (ref, "", "")
    if not at:
        return check_name(ref), None
    if not version.isdigit() or int(version) < 1:
        raise InvalidArgument(
            f"Version {version!r} in {ref!r} is not a positive whole number: use NAME@3."
        )
    return check_name(name), int(version)


def check_name(name: str) -> str:
    return _naming.check_name(name, "Dataset", "images/train", paths=True)


class Restored(NamedTuple):
    """One path ``checkout`` restored: its version, the files written, and what became of
    its pointer file (empty when the pointer file named the version to restore)."""

    path: str
    version: int
    written: int
    note: str = ""


class Workspace:
    """The project's data. The constructor does no I/O; stores open on first use.

    Example:
        >>> ws = Workspace()
        >>> version = ws.add("data/images")
        >>> ws.checkout("data/images@1")
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.resolve()
        self.root = self.settings.root
        self._datasets: DatasetStore | None = None
        self._artifacts: ArtifactStore | None = None
        self._cache: HashCache | None = None

    @property
    def datasets(self) -> DatasetStore:
        if self._datasets is None:
            self._datasets = open_dataset_store(self.settings)
        return self._datasets

    @property
    def artifacts(self) -> ArtifactStore:
        if self._artifacts is None:
            self._artifacts = open_artifact_store(self.settings)
        return self._artifacts

    @property
    def cache(self) -> HashCache:
        if self._cache is None:
            self._cache = HashCache(self.settings.home / "cache", self.settings.artifacts_url)
        return self._cache

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()
        if self._datasets is not None:
            self._datasets.close()
            self._datasets = None
        if self._artifacts is not None:
            self._artifacts.close()
            self._artifacts = None

    # -- adding ------------------------------------------------------------------------

    @_files.bulk
    def add(
        self, path: str | os.PathLike[str], name: str | None = None, *, run_id: str | None = None
    ) -> DatasetVersion:
        """Version a file or folder of the project and write its pointer file.

        Only what changed since the last ``add`` is read and stored. Adding unchanged
        content returns the existing version.

        Raises:
            NotFound: the path does not exist.
            InvalidArgument: the path is outside the project, or is the store itself.
        """
        absolute = self._inside(path)
        relative = absolute.relative_to(self.root).as_posix()
        dataset = check_name(name or relative)
        if absolute.is_dir():
            kind = "folder"
        else:
            kind = "table" if absolute.suffix.lower() in TABLE_SUFFIXES else "file"
        # The metadata store opens while another process walks the folder, never on a thread
        # beside file work: opening it is mostly imports, which hold the GIL and starved the
        # file reads (at 2 cores, a first add took 1.5x as long).
        entries, todo = _files.scan(absolute, self.cache, meanwhile=lambda: self.datasets)
        entries += _files.store_files(todo, self.artifacts, self.cache)
        table = self._table_facts(absolute) if kind == "table" else {}
        version = self._record(dataset, Manifest.build(kind, entries), relative, run_id, table)
        Pointer(
            version.name,
            version.version,
            kind,
            relative,
            version.manifest_digest,
            version.files,
            version.size,
        ).write(pointer_file(absolute))
        ignore = self.gitignore_for(absolute)
        if ignore is not None:
            _ignore(ignore, f"/{absolute.name}")
        return version

    def gitignore_for(self, path: str | os.PathLike[str]) -> Path | None:
        """The ``.gitignore`` that ``add`` lists ``path`` in (beside it, as DVC does), so
        git tracks the pointer file and not the data; None outside a git repository."""
        absolute = self._inside(path, must_exist=False)
        folder = absolute.parent
        for above in (folder, *folder.parents):
            if (above / ".git").exists():
                return folder / ".gitignore"
        return None

    def add_frame(
        self, frame: pd.DataFrame, name: str, *, run_id: str | None = None
    ) -> DatasetVersion:
        """Version a DataFrame as a Parquet table."""
        import pandas as pd

        if not isinstance(frame, pd.DataFrame):
            raise InvalidArgument(
                f"add_frame needs a pandas DataFrame; got {type(frame).__name__}. "
                "For files and folders use add(path)."
            )
        check_name(name)
        with tempfile.TemporaryDirectory(prefix="ferry-") as tmp:
            file = Path(tmp) / "data.parquet"
            frame.to_parquet(file, index=False)
            blob = self.artifacts.ingest_file(file)
        manifest = Manifest.build("table", [FileEntry("", blob.digest, blob.size)])
        return self._record(name, manifest, "", run_id, _table_facts_of(frame, self.artifacts))

    def _record(
        self, name: str, manifest: Manifest, source: str, run_id: str | None, table: dict[str, Any]
    ) -> DatasetVersion:
        digest = self.artifacts.put_bytes(manifest.to_bytes()).digest
        try:
            latest = self.datasets.get_dataset_version(name)
        except NotFound:
            latest = None
        if latest is not None and latest.manifest_digest == digest:
            return latest
        return self.datasets.create_dataset_version(
            name,
            kind=manifest.kind,
            manifest_digest=digest,
            files=len(manifest.entries),
            size=manifest.size,
            source=source,
            run_id=run_id,
            **table,
        )

    def _table_facts(self, file: Path) -> dict[str, Any]:
        return _table_facts_of(read_table(file), self.artifacts)

    # -- reading -----------------------------------------------------------------------

    def version(self, ref: str) -> DatasetVersion:
        name, number = parse_ref(ref)
        return self.datasets.get_dataset_version(name, number)

    def manifest(self, version: DatasetVersion | Pointer) -> Manifest:
        digest = version.manifest if isinstance(version, Pointer) else version.manifest_digest
        try:
            data = self.artifacts.get_bytes(digest)
        except NotFound as e:
            pull = (
                "`ferry data pull` (from the team server)"
                if is_server_url(self.settings.store_url)
                else "`ferry data pull --remote URL`"
            )
            raise NotFound(
                f"The files of {version.name}@{version.version} are not in the local store "
                f"{self.settings.artifacts_url}. Fetch them with {pull}."
            ) from e
        return Manifest.from_bytes(data, digest)

    def profile(self, ref: str | DatasetVersion) -> Profile:
        """The stored reference profile of a table version."""
        import json

        from ferryml.data.profile import Profile

        version = self.version(ref) if isinstance(ref, str) else ref
        if version.profile_digest is None:
            raise InvalidArgument(
                f"{version.ref} is a {version.kind}, not a table: only tables have profiles."
            )
        return Profile.from_dict(json.loads(self.artifacts.get_bytes(version.profile_digest)))

    def load(self, ref: str) -> pd.DataFrame | Path:
        """A table version as a DataFrame; a file or folder version as a local path
        (restored once into the cache folder)."""
        version = self.version(ref)
        manifest = self.manifest(version)
        if version.kind == "table":
            entry = manifest.entries[0]
            local = self.artifacts.local_path(entry.digest)
            if local is None:
                local = self._materialize(version, manifest)
            return read_table(local, suffix=Path(version.source).suffix or ".parquet")
        return self._materialize(version, manifest)

    def _materialize(self, version: DatasetVersion, manifest: Manifest) -> Path:
        base = self.settings.home / "cache" / "data" / version.name / str(version.version)
        target = base / (Path(version.source).name or "data") if version.kind != "folder" else base
        _files.restore_files(
            target, list(manifest.entries), self.artifacts, self.cache, self.settings.link
        )
        return target

    def validate(self, ref: str, expectations: list[Expectation] | None = None) -> ValidationReport:
        """Check a table version against ``expectations``, or against those listed for its
        dataset in ``ferry.yaml`` (``data: {NAME: {expectations: [...]}}``).

        Raises:
            InvalidArgument: the version is not a table, or no expectations are given.
        """
        from ferryml.config import read_config
        from ferryml.data.validation import expectation_from_checked, validate

        version = self.version(ref)
        if version.kind != "table":
            raise InvalidArgument(
                f"{version.ref} is a {version.kind}; only tables (CSV, Parquet, DataFrames) "
                "can be validated."
            )
        if expectations is None:
            entry = (read_config(self.root).data or {}).get(version.name)
            if entry is None or not entry.expectations:
                raise InvalidArgument(
                    f"No expectations for {version.name!r} in ferry.yaml; add some, e.g. "
                    f"data: {{{version.name}: {{expectations: [{{not_null: id}}]}}}}"
                )
            expectations = [expectation_from_checked(e) for e in entry.expectations]
        frame = self.load(version.ref)
        assert not isinstance(frame, Path)
        return validate(frame, expectations)

    def list_datasets(self) -> list[DatasetVersion]:
        return self.datasets.list_datasets()

    def delete_version(self, ref: str) -> DatasetVersion:
        """Delete version ``NAME@V`` for good; `ferry gc` then reclaims its files.

        Raises InvalidArgument without a version number, NotFound.
        """
        name, number = parse_ref(ref)
        if number is None:
            raise InvalidArgument(
                f"{ref!r} names no version; delete one version at a time, e.g. {name}@1."
            )
        version = self.datasets.get_dataset_version(name, number)
        self.datasets.delete_dataset_version(name, number)
        return version

    def log(self, name: str) -> list[DatasetVersion]:
        return self.datasets.list_dataset_versions(check_name(name))

    # -- the workspace -----------------------------------------------------------------

    def pointers(self, targets: list[str] | None = None) -> list[tuple[Path, Pointer]]:
        """Pointer files named by ``targets`` (paths or pointer files), or all of them."""
        if not targets:
            files = _files.pointer_files(self.root)
        else:
            files = []
            for target in targets:
                path = self._inside(target, must_exist=False)
                file = path if path.name.endswith(SUFFIX) else pointer_file(path)
                if not file.is_file():
                    raise NotFound(
                        f"No pointer file {file.relative_to(self.root)}: "
                        f"{target!r} is not tracked. Track it with `ferry data add {target}`."
                    )
                files.append(file)
        return [(f, Pointer.read(f)) for f in files]

    @_files.bulk
    def status(self, targets: list[str] | None = None) -> list[DataStatus]:
        """What changed under each tracked path since its pointer file was written."""
        results = []
        for _, pointer in self.pointers(targets):
            path = self.root / pointer.path
            expected = {e.path: e.digest for e in self.manifest(pointer).entries}
            if not path.exists():
                results.append(
                    DataStatus(pointer.name, pointer.version, pointer.path, (), (), (), True)
                )
                continue
            files = list(_files.walk(path)) if path.is_dir() else [("", str(path), path.stat())]
            actual = _files.hash_files(files, self.cache)
            results.append(
                DataStatus(
                    pointer.name,
                    pointer.version,
                    pointer.path,
                    added=tuple(sorted(set(actual) - set(expected))),
                    removed=tuple(sorted(set(expected) - set(actual))),
                    modified=tuple(
                        sorted(p for p in set(actual) & set(expected) if actual[p] != expected[p])
                    ),
                    missing=False,
                )
            )
        return results

    @_files.bulk
    def checkout(
        self,
        target: str | None = None,
        *,
        to: str | os.PathLike[str] | None = None,
        link: str | None = None,
    ) -> list[Restored]:
        """Restore data: ``NAME@VERSION`` (to its original path, or ``to``), a tracked path,
        or, with no target, every pointer file's version. Files already matching are not
        rewritten. ``NAME@VERSION`` restored to its original path moves that path's pointer
        file to the version, so ``ferry data status`` and git see what is there; ``note``
        says what became of the pointer file. ``link`` (``"hardlink,copy"``) overrides the
        settings' link types for the files written.

        Raises InvalidArgument for an unknown link type, NotFound."""
        links = parse_links(link) if link is not None else self.settings.link
        jobs: list[tuple[Path, int, Manifest, DatasetVersion | None]] = []
        if target is not None and not _looks_like_path(self.settings.workdir, target):
            version = self.version(target)
            if not version.source and to is None:
                raise InvalidArgument(
                    f"{version.ref} was added from Python, not from a path: "
                    "pass a destination (`--to PATH`) or use ferryml.data.load."
                )
            # the source is relative to the project root, ``to`` to the working directory
            dest = self._inside(to or self.root / version.source, must_exist=False)
            jobs.append((dest, version.version, self.manifest(version), version))
        else:
            for _, pointer in self.pointers([target] if target else None):
                jobs.append(
                    (self.root / pointer.path, pointer.version, self.manifest(pointer), None)
                )
        done = []
        for dest, number, manifest, named in jobs:
            written = _files.restore_files(
                dest, list(manifest.entries), self.artifacts, self.cache, links
            )
            note = "" if named is None else self._move_pointer(dest, named, manifest, to is None)
            done.append(Restored(dest.relative_to(self.root).as_posix(), number, written, note))
        return done

    def _move_pointer(
        self, dest: Path, version: DatasetVersion, manifest: Manifest, at_source: bool
    ) -> str:
        file = pointer_file(dest)
        shown = file.relative_to(self.root).as_posix()
        if not at_source:
            return "no pointer file moved: --to restores a copy"
        before = Pointer.read(file) if file.exists() else None
        if before is not None and before.name != version.name:
            return f"{shown} names dataset {before.name!r} and was not moved"
        if before is not None and before.version == version.version:
            return f"{shown} names version {version.version} already"
        Pointer(
            version.name,
            version.version,
            manifest.kind,
            version.source,
            version.manifest_digest,
            version.files,
            version.size,
        ).write(file)
        if before is None:
            return f"{shown} written for version {version.version}"
        return f"{shown} moved from version {before.version} to {version.version}"

    def _inside(self, path: str | os.PathLike[str], *, must_exist: bool = True) -> Path:
        absolute = (self.settings.workdir / path).resolve()  # an absolute path stays as it is
        if must_exist and not absolute.exists():
            raise NotFound(f"Path {os.fspath(path)!r} does not exist. Check the path.")
        if absolute != self.root and self.root not in absolute.parents:
            raise InvalidArgument(
                f"Path {os.fspath(path)!r} is outside the project {self.root}; "
                "ferryml versions data inside the project folder."
            )
        home = self.settings.home.resolve()
        if absolute == self.root or absolute == home or home in absolute.parents:
            raise InvalidArgument(
                f"Path {os.fspath(path)!r} is the project or ferryml's own folder; "
                "add a data file or folder inside the project instead."
            )
        return absolute


def _ignore(file: Path, entry: str) -> None:
    """Add ``entry`` to a .gitignore unless a line says it already."""
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    if entry in (line.strip() for line in text.splitlines()):
        return
    sep = "" if not text or text.endswith("\n") else "\n"
    with open(file, "a", encoding="utf-8") as out:
        out.write(f"{sep}{entry}\n")


def _looks_like_path(root: Path, target: str) -> bool:
    return (
        target.endswith(SUFFIX)
        or (root / target).exists()
        or ("@" not in target and pointer_file(root / target).exists())
    )


def read_errors() -> tuple[type[Exception], ...]:
    """What reading a damaged CSV or Parquet file raises: pandas' and pyarrow's parse
    errors, and the KeyError or TypeError of a Parquet file's damaged pandas metadata."""
    import pyarrow as pa

    return (ValueError, OSError, KeyError, TypeError, pa.ArrowException)


def check_parquet_text(file: Path) -> None:
    """Raise ArrowInvalid (a ValueError) if a text column of the Parquet ``file`` holds
    bytes that are not UTF-8: pandas reads them lazily, and whatever touches them later
    fails far from the file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(file)
    text = [
        f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
    ]
    if text:
        pq.read_table(file, columns=text).validate(full=True)


def read_table(file: Path, suffix: str | None = None) -> pd.DataFrame:
    import pandas as pd

    kind = (suffix or file.suffix).lower()
    try:
        if kind == ".csv":
            return pd.read_csv(file)
        frame = pd.read_parquet(file)
        check_parquet_text(file)
        return frame
    except read_errors() as e:
        raise InvalidArgument(f"Table {file.name} cannot be read as {kind}: {e}") from e


def _table_facts_of(frame: pd.DataFrame, artifacts: ArtifactStore) -> dict[str, Any]:
    import json

    from ferryml.data.profile import profile_frame
    from ferryml.data.schema import infer_schema

    profile = profile_frame(frame)
    blob = artifacts.put_bytes(json.dumps(profile.to_dict()).encode())
    return {
        "rows": len(frame),
        "schema": json.dumps(infer_schema(frame).to_dict()),
        "profile_digest": blob.digest,
    }
