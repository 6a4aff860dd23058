"""The object store fails: S3 (moto's server) behind a proxy that answers 503, never
answers, or cuts an upload half-way. A blob is stored whole or not at all, the error names
the store and what failed, and the same call (a monitor's pass too) works once the fault
ends."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest
from fault_proxy import FaultProxy

from ferryml.config import Settings
from ferryml.data import transfer
from ferryml.data.workspace import Workspace
from ferryml.errors import StoreUnavailable
from ferryml.store.artifacts import ArtifactStore, digest_bytes

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def proxy(s3_endpoint: str) -> Iterator[FaultProxy]:
    host, port = s3_endpoint.removeprefix("http://").split(":")
    proxy = FaultProxy((host, int(port)))
    yield proxy
    proxy.stop()


@pytest.fixture
def healthy(proxy: FaultProxy) -> Iterator[FaultProxy]:
    """The proxy, passing everything again after the test."""
    yield proxy
    proxy.set("pass")


def _store(proxy: FaultProxy, prefix: str) -> ArtifactStore:
    # Short timeouts and few retries keep the test quick; the defaults behave alike, slower
    # (botocore's 60 s timeouts, s3fs's five attempts).
    options: dict[str, Any] = {
        "client_kwargs": {"endpoint_url": proxy.url, "region_name": "us-east-1"},
        "key": "testing",
        "secret": "testing",
        "config_kwargs": {
            "connect_timeout": 1,
            "read_timeout": 1,
            "retries": {"max_attempts": 2, "mode": "standard"},
        },
    }
    fsspec.filesystem("s3", use_listings_cache=False, **options).retries = 1  # the store's
    return ArtifactStore(f"s3://ferry-test-artifacts/{prefix}", storage_options=options).open()


def _keys(s3_client: Any, prefix: str) -> list[str]:
    listed = s3_client.list_objects_v2(Bucket="ferry-test-artifacts", Prefix=prefix)
    return [o["Key"] for o in listed.get("Contents", [])]


@pytest.mark.parametrize("fault", ["error", "hang"])
def test_a_failing_object_store_stores_nothing_says_so_and_works_once_it_is_back(
    healthy: FaultProxy, s3_client: Any, fault: str
) -> None:
    store = _store(healthy, f"faults-{fault}")
    data = os.urandom(100_000)
    healthy.set(fault)
    with pytest.raises(StoreUnavailable) as refused:
        store.put_bytes(data)
    message = str(refused.value)
    digest = digest_bytes(data).digest
    assert re.match(f"(Checking|Writing) blob {digest} in artifact store 's3://", message)
    assert "Check the store is reachable" in message
    assert (
        re.search("503|Service ?Unavailable", message) is not None
        if fault == "error"
        else ("timeout" in message.lower())
    )
    assert _keys(s3_client, f"faults-{fault}/") == []
    healthy.set("pass")
    blob = store.put_bytes(data)
    assert store.get_bytes(blob.digest) == data  # read back and checked against its digest


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    """A 3 MiB file: an upload long enough to be cut after its first MiB."""
    path = tmp_path / "weights.bin"
    path.write_bytes(os.urandom(3 << 20))
    return path


@pytest.mark.parametrize("cuts", [1, None], ids=["cut once", "cut every time"])
def test_an_upload_cut_half_way_is_stored_whole_or_not_at_all(
    healthy: FaultProxy, s3_client: Any, weights: Path, cuts: int | None
) -> None:
    prefix = f"faults-cut-{cuts}"
    store = _store(healthy, prefix)
    healthy.set("drop", drop_after=1 << 20, drop_limit=cuts)
    if cuts is None:
        with pytest.raises(StoreUnavailable, match="Check the store is reachable"):
            store.put_file(weights)
        assert _keys(s3_client, f"{prefix}/") == []  # no partial object
        healthy.set("pass")
    blob = store.put_file(weights)  # cut once: the retry sends the whole blob
    assert healthy.drops == (cuts or 0)
    assert _keys(s3_client, f"{prefix}/") == [f"{prefix}/blobs/{blob.digest[:2]}/{blob.digest[2:]}"]
    assert store.get_bytes(blob.digest) == weights.read_bytes()


def test_data_push_through_a_failing_store_resumes_and_copies_each_blob_once(
    healthy: FaultProxy,
    s3_client: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _use_proxy(monkeypatch, healthy)
    import s3fs

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(5):
        (folder / f"{i}.bin").write_bytes(os.urandom(20_000))
    workspace = Workspace(Settings.resolve(cwd=tmp_path, environ={}))
    remote = "s3://ferry-test-artifacts/faults-push"
    try:
        workspace.add(str(folder))
        healthy.set("drop", drop_after=5_000)  # every upload cut: nothing gets through
        with pytest.raises(StoreUnavailable, match="faults-push"):
            transfer.push(workspace, remote)
        healthy.set("pass")
        report = transfer.push(workspace, remote)
        assert report.copied + report.present == 6  # 5 files and the manifest
        again = transfer.push(workspace, remote)
        assert (again.copied, again.present) == (0, 6)
    finally:
        workspace.close()
        s3fs.S3FileSystem.clear_instance_cache()
    assert len(_keys(s3_client, "faults-push/")) == 6


def test_a_packed_push_cut_half_way_leaves_no_index_and_resumes_whole(
    healthy: FaultProxy,
    s3_client: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _use_proxy(monkeypatch, healthy)
    import s3fs

    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(transfer.PACK_MIN + 50):
        (folder / f"{i}.bin").write_bytes(os.urandom(4096))
    workspace = Workspace(Settings.resolve(cwd=tmp_path, environ={}))
    remote = "s3://ferry-test-artifacts/faults-packs"
    try:
        workspace.add(str(folder))
        healthy.set("drop", drop_after=100_000)  # packs are cut, small objects pass
        with pytest.raises(StoreUnavailable, match="faults-packs"):
            transfer.push(workspace, remote)
        assert not [k for k in _keys(s3_client, "faults-packs/") if k.endswith(".idx")]
        healthy.set("pass")
        report = transfer.push(workspace, remote)
        assert (report.copied, report.present) == (transfer.PACK_MIN + 51, 0)
        again = transfer.push(workspace, remote)
        assert (again.copied, again.present) == (0, transfer.PACK_MIN + 51)
    finally:
        workspace.close()
        s3fs.S3FileSystem.clear_instance_cache()


def test_a_monitor_pass_is_refused_while_the_object_store_fails_and_checks_each_window_after(
    healthy: FaultProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    import ferryml as ferry
    from ferryml.monitoring.monitors import MonitorSpec, add_monitor, run_monitor
    from ferryml.serving.predlog import PredictionLog

    settings = _s3_settings(monkeypatch, healthy, tmp_path, "faults-monitor")
    X = pd.DataFrame({"a": np.random.default_rng(0).normal(0.0, 1.0, 200)})
    ferry.configure(home=settings.home, store=settings.store_url, artifacts=settings.artifacts_url)
    try:
        with ferry.start_run():
            model = LogisticRegression().fit(X, X["a"] > 0)
            ferry.log_model(model, training_data=X, registered_model_name="m")
        ferry.set_registered_model_alias("m", "champion", 1)
        with PredictionLog(settings) as log:
            for hour in range(3):
                ids = [f"h{hour}-{i}" for i in range(50)]
                log.record("d", "primary", "m", 1, ids, X[:50] + hour, [0] * 50, 1.0,
                           time=1_717_200_000.0 + hour * 3600)  # fmt: skip
        add_monitor(settings, MonitorSpec("watch", "d", "model:m@champion", "1h"))
        healthy.set("error")
        with pytest.raises(StoreUnavailable, match="faults-monitor' is unreachable"):
            run_monitor(settings, "watch")
        healthy.set("pass")
        assert len(run_monitor(settings, "watch")) == 3  # each window, once
        assert run_monitor(settings, "watch") == []
    finally:
        ferry.configure(
            home=settings.home, store=settings.store_url, artifacts=settings.artifacts_url
        )
        import s3fs

        s3fs.S3FileSystem.clear_instance_cache()


def _s3_settings(
    monkeypatch: pytest.MonkeyPatch, proxy: FaultProxy, tmp_path: Path, prefix: str
) -> Settings:
    """A project whose metadata is in SQLite and whose artifacts are on S3, through ``proxy``."""
    _use_proxy(monkeypatch, proxy)
    return Settings(
        home=tmp_path / "home",
        store_url=f"sqlite:///{tmp_path / 'ferry.db'}",
        artifacts_url=f"s3://ferry-test-artifacts/{prefix}",
        root=tmp_path,
    )


def _use_proxy(monkeypatch: pytest.MonkeyPatch, proxy: FaultProxy) -> None:
    """Configure S3 as users do, through the proxy, with few retries."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()  # an earlier test's client points elsewhere


STORE_PIPELINE = """
from ferryml.pipelines import pipeline, step

CALLS: list = []
FAIL = None  # set by the test: makes the object store fail


@step
def load(n: int) -> list:
    CALLS.append("load")
    return list(range(n))


@step
def total(rows: list) -> int:
    CALLS.append("total")
    if FAIL is not None:
        FAIL()
    return sum(rows)


@pipeline
def counting(n: int = 5):
    return total(load(n))
"""


def test_a_pipeline_run_while_the_object_store_fails_ends_failed_and_resumes(
    healthy: FaultProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from ferryml.pipelines.engine import load_target, run_pipeline
    from ferryml.tracking.client import FerryClient

    settings = _s3_settings(monkeypatch, healthy, tmp_path, "faults-pipeline")
    module = f"store_{tmp_path.name}"
    (tmp_path / f"{module}.py").write_text(STORE_PIPELINE)
    sys.path.insert(0, str(tmp_path))
    try:
        pipeline = load_target(f"{module}:counting")
        steps = sys.modules[module]
        steps.FAIL = lambda: healthy.set("error")  # while the second step runs
        first = run_pipeline(pipeline, settings=settings)
        assert (first.status, first.steps["total"].status) == ("FAILED", "FAILED")
        assert "Service Unavailable" in (first.steps["total"].error or "")
        steps.FAIL = None
        healthy.set("pass")
        again = run_pipeline(pipeline, settings=settings, resume=first.run_id)
        assert (again.status, again.output()) == ("FINISHED", 10)
        assert steps.CALLS == ["load", "total", "total"]  # load came from the cache
        client = FerryClient(settings)
        try:
            ended = client.get_run(first.run_id).info.status
        finally:
            client.close()
        assert ended.value == "FAILED"
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(module, None)
        import s3fs

        s3fs.S3FileSystem.clear_instance_cache()
