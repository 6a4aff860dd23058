"""``ferry gc``: deleted runs go for good, unreferenced old blobs are reclaimed, and nothing
that is referred to, young, or reused by a concurrent writer is lost."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier

import ferryml as ferry
from ferryml.config import Settings
from ferryml.data.workspace import Workspace
from ferryml.errors import InvalidArgument, NotFound
from ferryml.gc import collect_garbage, parse_grace
from ferryml.registry.models import Registry
from ferryml.store.artifacts import ArtifactStore, digest_bytes
from ferryml.tracking.client import FerryClient

DAY = 86400.0


@pytest.fixture
def artifacts(settings: Settings) -> ArtifactStore:
    return ArtifactStore(settings.artifacts_url).open()


def _age(artifacts: ArtifactStore, *digests: str, days: float = 2) -> None:
    """Make blobs look written ``days`` ago, as blobs left by runs of the past do."""
    when = time.time() - days * DAY
    for digest in digests:
        path = artifacts.local_path(digest)
        assert path is not None
        os.utime(path, (when, when))


def _all_blobs(artifacts: ArtifactStore) -> set[str]:
    return artifacts.list_digests()


def test_gc_removes_deleted_runs_and_the_blobs_only_they_held(
    client: FerryClient, settings: Settings, artifacts: ArtifactStore
) -> None:
    experiment_id = client.create_experiment("e")
    gone = client.create_run(experiment_id, capture_environment=False).run_id
    kept = client.create_run(experiment_id, capture_environment=False).run_id
    client.log_text(gone, "only in the deleted run", "a.txt")
    client.log_text(gone, "shared", "shared.txt")
    client.log_text(kept, "shared", "shared.txt")
    client.flush()
    only, shared = digest_bytes(b"only in the deleted run"), digest_bytes(b"shared")
    _age(artifacts, only.digest, shared.digest)
    client.delete_run(gone)

    report = collect_garbage(settings)

    assert (report.runs, report.experiments, report.blobs) == (1, 0, 1)
    assert report.bytes == only.size
    assert _all_blobs(artifacts) == {shared.digest}
    with pytest.raises(NotFound, match=f"Run '{gone}' not found"):
        client.get_run(gone)
    assert client.get_run(kept).info.lifecycle_stage == "active"
    assert artifacts.get_bytes(shared.digest) == b"shared"


def test_gc_removes_deleted_experiments_with_their_runs(
    client: FerryClient, settings: Settings
) -> None:
    experiment_id = client.create_experiment("e")
    run_id = client.create_run(experiment_id, capture_environment=False).run_id
    client.delete_experiment(experiment_id)

    report = collect_garbage(settings)

    assert (report.experiments, report.runs) == (1, 0)
    with pytest.raises(NotFound, match=f"Run '{run_id}' not found"):
        client.get_run(run_id)
    client.create_experiment("e")  # the name is free again


def test_gc_keeps_young_blobs_until_the_grace_period_is_over(
    settings: Settings, artifacts: ArtifactStore
) -> None:
    young = artifacts.put_bytes(b"written a moment ago, not recorded yet").digest

    assert collect_garbage(settings).blobs == 0
    assert _all_blobs(artifacts) == {young}
    assert collect_garbage(settings, grace=0).blobs == 1
    assert _all_blobs(artifacts) == set()


def test_gc_keeps_the_files_of_dataset_versions_until_they_are_deleted(
    settings: Settings, artifacts: ArtifactStore
) -> None:
    workspace = Workspace(settings)
    first = workspace.add_frame(pd.DataFrame({"a": [1, 2]}), "t")
    second = workspace.add_frame(pd.DataFrame({"a": [3, 4]}), "t")
    files = {e.digest for e in workspace.manifest(first).entries}
    stored = _all_blobs(artifacts)
    _age(artifacts, *stored)

    assert collect_garbage(settings).blobs == 0

    workspace.delete_version("t@1")
    report = collect_garbage(settings)

    left = _all_blobs(artifacts)
    assert report.blobs == 3  # the first version's table, manifest and profile
    assert first.manifest_digest not in left and not files & left
    assert first.profile_digest not in left
    assert workspace.load(second.ref)["a"].tolist() == [3, 4]
    workspace.close()


def test_gc_keeps_a_registered_model_after_its_run_is_removed(fluent: Settings) -> None:
    with ferry.start_run() as run:
        info = ferry.log_model(DummyClassifier().fit([[0], [1]], [0, 1]), registered_model_name="m")
    artifacts = ArtifactStore(fluent.artifacts_url).open()
    _age(artifacts, *_all_blobs(artifacts))
    ferry.delete_run(run.info.run_id)

    assert collect_garbage(fluent).runs == 1
    predicted = ferry.load_model("models:/m/1").predict(pd.DataFrame({"x": [0.5]}))
    assert len(predicted) == 1  # the package and its files are all there

    registry = Registry(fluent)
    registry.delete_version("m", 1)
    registry.close()
    collect_garbage(fluent)

    assert info.model_uri and _all_blobs(artifacts) == set()


def test_a_dry_run_changes_nothing(
    client: FerryClient, settings: Settings, artifacts: ArtifactStore
) -> None:
    experiment_id = client.create_experiment("e")
    run_id = client.create_run(experiment_id, capture_environment=False).run_id
    client.log_text(run_id, "x", "x.txt")
    client.delete_run(run_id)
    _age(artifacts, digest_bytes(b"x").digest)

    report = collect_garbage(settings, dry_run=True)

    assert (report.runs, report.blobs, report.bytes, report.dry_run) == (1, 1, 1, True)
    assert client.get_run(run_id).info.lifecycle_stage == "deleted"
    assert _all_blobs(artifacts) == {digest_bytes(b"x").digest}


def test_a_blob_reused_after_gc_listed_it_is_kept(tmp_path: Path) -> None:
    artifacts = ArtifactStore(str(tmp_path / "a")).open()
    old = artifacts.put_bytes(b"old content").digest
    _age(artifacts, old)
    cutoff = time.time() - DAY
    assert artifacts.list_stale_blobs(cutoff) == {old: 11}

    artifacts.put_bytes(b"old content")  # a writer logs the same bytes again

    assert artifacts.delete_blob(old, unless_used_after=cutoff) is False
    assert artifacts.get_bytes(old) == b"old content"
    assert artifacts.list_stale_blobs(cutoff) == {}


def test_leftovers_of_crashed_writers_and_collections_are_cleaned(tmp_path: Path) -> None:
    artifacts = ArtifactStore(str(tmp_path / "a")).open()
    digest = artifacts.put_bytes(b"moved aside by a gc that crashed").digest
    path = artifacts.local_path(digest)
    assert path is not None
    aside = path.with_name(f".{path.name}.0123456789ab.gc")
    os.rename(path, aside)
    temp = path.with_name(f".{path.name}.0123456789abcdef.tmp")
    temp.write_bytes(b"half")
    os.utime(temp, (time.time() - 2 * DAY,) * 2)

    assert artifacts.delete_leftovers(time.time() - DAY) == 2

    assert artifacts.get_bytes(digest) == b"moved aside by a gc that crashed"
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


def test_gc_refuses_remote_stores_before_removing_anything_and_bad_grace_periods(
    client: FerryClient, settings: Settings, s3_bucket: str, s3_env: str
) -> None:
    run_id = client.create_run(client.create_experiment("e"), capture_environment=False).run_id
    client.delete_run(run_id)
    remote = Settings(
        home=settings.home, store_url=settings.store_url, artifacts_url=f"s3://{s3_bucket}/gc"
    )
    with pytest.raises(InvalidArgument, match="needs a local artifact store; 's3://"):
        collect_garbage(remote)
    assert client.get_run(run_id).info.lifecycle_stage == "deleted"  # not removed
    with pytest.raises(InvalidArgument, match="Grace period 'soon' is not a duration"):
        parse_grace("soon")
    assert parse_grace("6h") == 6 * 3600


def test_gc_stops_before_deleting_when_a_manifest_is_missing(
    settings: Settings, artifacts: ArtifactStore
) -> None:
    workspace = Workspace(settings)
    version = workspace.add_frame(pd.DataFrame({"a": [1]}), "t")
    workspace.close()
    path = artifacts.local_path(version.manifest_digest)
    assert path is not None
    path.unlink()
    _age(artifacts, *_all_blobs(artifacts))

    with pytest.raises(NotFound, match="ferry gc stopped before deleting any blob: dataset"):
        collect_garbage(settings)
    assert len(_all_blobs(artifacts)) == 2  # the table and its profile stay


WRITER = textwrap.dedent(
    """
    import sys
    from ferryml.tracking.client import FerryClient

    client = FerryClient()
    experiment_id = client.create_experiment("writer")
    for i in range(int(sys.argv[1])):
        run_id = client.create_run(experiment_id, capture_environment=False).run_id
        client.log_text(run_id, f"old {i}", "old.txt")  # the bytes of an old, unused blob
        client.log_text(run_id, f"new {i}", "new.txt")
        client.set_terminated(run_id)
    client.close()
    """
)


def test_gc_running_beside_a_writer_loses_nothing_the_writer_records(
    client: FerryClient, settings: Settings, artifacts: ArtifactStore, tmp_path: Path
) -> None:
    count = 150
    old = [artifacts.put_bytes(f"old {i}".encode()).digest for i in range(count)]
    _age(artifacts, *old)
    env = {
        **os.environ,
        "FERRY_HOME": str(settings.home),
        "FERRY_STORE": settings.store_url,
        "FERRY_ARTIFACTS": settings.artifacts_url,
    }
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(count)], env=env, cwd=tmp_path, stderr=subprocess.PIPE
    )
    passes = 0
    while writer.poll() is None or passes == 0:
        collect_garbage(settings, grace=3600)
        passes += 1
    _, err = writer.communicate()
    assert writer.returncode == 0, err
    collect_garbage(settings, grace=3600)

    experiment = client.get_experiment_by_name("writer")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], max_results=1000).runs
    assert len(runs) == count
    for run in runs:
        for entry in client.list_artifacts(run.run_id):
            assert artifacts.get_bytes(entry.digest)  # present, and its bytes check out


def test_ferry_gc_on_the_command_line(
    cli: Callable[..., tuple[int, str, str]], sqlite_settings: Settings
) -> None:
    client = FerryClient(sqlite_settings)
    run_id = client.create_run(client.create_experiment("e"), capture_environment=False).run_id
    client.log_text(run_id, "bytes", "f.txt")
    client.delete_run(run_id)
    client.close()
    home = ("--home", str(sqlite_settings.home))

    code, out, _ = cli(*home, "gc", "--dry-run", "--grace", "0")
    assert (code, out) == (
        0,
        "Would remove 1 deleted run for good; would delete 1 unreferenced blob (5 B); kept 0 "
        "referenced blobs.\n",
    )
    client = FerryClient(sqlite_settings)
    experiment_id = client.create_experiment("gone")
    client.create_run(experiment_id, capture_environment=False)
    client.delete_experiment(experiment_id)
    client.close()
    code, out, _ = cli(*home, "gc")
    assert (code, out) == (
        0,
        "Removed 1 deleted experiment with its runs and 1 other deleted run for good; "
        "deleted 0 unreferenced blobs (0 B); kept 0 referenced blobs and every blob newer "
        "than 1d.\n",
    )
    code, _, err = cli(*home, "gc", "--grace", "soon")
    assert (code, err) == (
        2,
        "error: Grace period 'soon' is not a duration; write seconds or a number with s, m, "
        "h or d, e.g. 30m, 6h, 1d.\n",
    )


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in ("FERRY_HOME", "FERRY_STORE", "FERRY_ARTIFACTS"):
        monkeypatch.delenv(key, raising=False)
    yield
