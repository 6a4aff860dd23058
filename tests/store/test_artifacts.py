"""The artifact store keeps blobs under their blake3 digest: round trips, dedup,
integrity checks and atomic writes, on a local folder and on S3 (moto's emulator)."""

from __future__ import annotations

import dataclasses
import socket
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import blake3
import pytest

from ferryml.errors import IntegrityError, InvalidArgument, NotFound, StoreUnavailable
from ferryml.store.artifacts import ArtifactStore, Blob, digest_bytes, digest_file

CONTENT = b"model weights \x00\x01\x02" * 1000


@pytest.fixture
def local_store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(f"file://{tmp_path / 'artifacts'}").open()


@pytest.fixture
def s3_store(s3_bucket: str, s3_options: dict[str, Any]) -> ArtifactStore:
    # A fresh prefix per test: the emulator's bucket lives for the whole session.
    url = f"s3://{s3_bucket}/{uuid.uuid4().hex}"
    return ArtifactStore(url, storage_options=s3_options).open()


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest) -> ArtifactStore:
    """Each contract test runs against every implementation."""
    return request.getfixturevalue(f"{request.param}_store")


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _s3_keys(s3_client: Any, store: ArtifactStore) -> list[str]:
    bucket, prefix = store.url.removeprefix("s3://").split("/", 1)
    listing = s3_client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/")
    return [item["Key"] for item in listing.get("Contents", [])]


# -- the contract, on every store --------------------------------------------------------


def test_put_bytes_then_get_bytes_returns_the_same_content(store: ArtifactStore) -> None:
    blob = store.put_bytes(CONTENT)
    assert store.get_bytes(blob.digest) == CONTENT


def test_put_file_then_get_file_writes_the_same_content(
    store: ArtifactStore, tmp_path: Path
) -> None:
    blob = store.put_file(_write(tmp_path / "model.bin", CONTENT))
    dest = store.get_file(blob.digest, tmp_path / "out" / "nested" / "model.bin")
    assert dest == tmp_path / "out" / "nested" / "model.bin"
    assert dest.read_bytes() == CONTENT


def test_empty_content_round_trips(store: ArtifactStore, tmp_path: Path) -> None:
    blob = store.put_file(_write(tmp_path / "empty", b""))
    assert blob == Blob(blake3.blake3(b"").hexdigest(), 0)
    assert store.get_bytes(blob.digest) == b""


def test_blob_is_the_blake3_digest_and_size_of_the_content(
    store: ArtifactStore, tmp_path: Path
) -> None:
    expected = Blob(blake3.blake3(CONTENT).hexdigest(), len(CONTENT))
    path = _write(tmp_path / "model.bin", CONTENT)
    assert store.put_bytes(CONTENT) == expected
    assert store.put_file(path) == expected
    assert digest_bytes(CONTENT) == expected
    assert digest_file(path) == expected


def test_content_larger_than_one_chunk_round_trips(store: ArtifactStore, tmp_path: Path) -> None:
    data = bytes(range(256)) * (5 * 4096 + 17)  # a little over 5 MiB: several 1 MiB chunks
    blob = store.put_file(_write(tmp_path / "big.bin", data))
    assert blob == Blob(blake3.blake3(data).hexdigest(), len(data))
    assert store.get_file(blob.digest, tmp_path / "copy.bin").read_bytes() == data


def test_exists_is_true_only_for_stored_content(store: ArtifactStore) -> None:
    absent = digest_bytes(b"never stored").digest
    blob = store.put_bytes(CONTENT)
    assert store.exists(blob.digest)
    assert not store.exists(absent)


def test_get_of_an_unknown_digest_raises_not_found_naming_it(
    store: ArtifactStore, tmp_path: Path
) -> None:
    absent = digest_bytes(b"never stored").digest
    with pytest.raises(NotFound, match=absent):
        store.get_bytes(absent)
    with pytest.raises(NotFound, match=absent):
        store.get_file(absent, tmp_path / "out" / "model.bin")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "digest", ["", "abc", "A" * 64, "g" * 64, "0" * 63, "0" * 65, "0" * 63 + "\n", "../" * 21 + "a"]
)
@pytest.mark.parametrize(
    "call",
    [
        lambda store, digest, dest: store.exists(digest),
        lambda store, digest, dest: store.get_bytes(digest),
        lambda store, digest, dest: store.get_file(digest, dest),
        lambda store, digest, dest: store.local_path(digest),
    ],
    ids=["exists", "get_bytes", "get_file", "local_path"],
)
def test_malformed_digest_raises_invalid_argument(
    store: ArtifactStore, tmp_path: Path, digest: str, call: Callable[..., object]
) -> None:
    with pytest.raises(InvalidArgument, match="64 lowercase hex"):
        call(store, digest, tmp_path / "out.bin")


def test_put_file_of_a_missing_file_raises_not_found_naming_the_path(
    store: ArtifactStore, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-file.bin"
    with pytest.raises(NotFound, match="no-such-file.bin"):
        store.put_file(missing)


def test_put_file_of_a_folder_raises_invalid_argument(store: ArtifactStore, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="is a folder"):
        store.put_file(tmp_path)


# -- local folder ------------------------------------------------------------------------


def test_storing_the_same_content_twice_keeps_one_local_blob(
    local_store: ArtifactStore, tmp_path: Path
) -> None:
    first = local_store.put_bytes(CONTENT)
    second = local_store.put_file(_write(tmp_path / "same.bin", CONTENT))
    assert first == second
    blobs = [p for p in (tmp_path / "artifacts" / "blobs").rglob("*") if p.is_file()]
    assert blobs == [local_store.local_path(first.digest)]


def test_local_blob_lives_at_blobs_fanout_path(local_store: ArtifactStore, tmp_path: Path) -> None:
    digest = local_store.put_bytes(CONTENT).digest
    path = tmp_path / "artifacts" / "blobs" / digest[:2] / digest[2:]
    assert local_store.local_path(digest) == path
    assert path.read_bytes() == CONTENT


def test_local_blobs_are_read_only_so_hard_links_cannot_be_edited_in_place(
    local_store: ArtifactStore,
) -> None:
    path = local_store.local_path(local_store.put_bytes(CONTENT).digest)
    assert path is not None
    assert path.stat().st_mode & 0o222 == 0


def _tamper(path: Path) -> None:
    path.chmod(0o644)  # blobs are read-only; root ignores that, other users do not
    path.write_bytes(b"tampered" + path.read_bytes()[8:])


def test_tampered_local_blob_raises_integrity_error_on_get_bytes(
    local_store: ArtifactStore,
) -> None:
    digest = local_store.put_bytes(CONTENT).digest
    _tamper(local_store.local_path(digest))  # type: ignore[arg-type]
    with pytest.raises(IntegrityError, match=digest):
        local_store.get_bytes(digest)


def test_get_bytes_without_verify_returns_stored_bytes_unchecked(
    local_store: ArtifactStore,
) -> None:
    digest = local_store.put_bytes(CONTENT).digest
    _tamper(local_store.local_path(digest))  # type: ignore[arg-type]
    assert local_store.get_bytes(digest, verify=False).startswith(b"tampered")


def test_get_file_of_a_tampered_blob_leaves_dest_untouched(
    local_store: ArtifactStore, tmp_path: Path
) -> None:
    digest = local_store.put_bytes(CONTENT).digest
    _tamper(local_store.local_path(digest))  # type: ignore[arg-type]
    out = tmp_path / "out"
    out.mkdir()
    dest = _write(out / "model.bin", b"old")
    with pytest.raises(IntegrityError, match=digest):
        local_store.get_file(digest, dest)
    assert dest.read_bytes() == b"old"
    assert list(out.iterdir()) == [dest]  # no temp file left beside it


def test_leftover_temp_file_does_not_break_a_later_put_of_the_same_content(
    local_store: ArtifactStore,
) -> None:
    blob = digest_bytes(CONTENT)
    final = local_store.local_path(blob.digest)
    assert final is not None
    # What a writer killed mid-copy leaves behind: half the content in a temp file.
    final.parent.mkdir(parents=True)
    leftover = _write(final.with_name(f".{final.name}.0123456789abcdef.tmp"), CONTENT[:100])
    assert not local_store.exists(blob.digest)
    assert local_store.put_bytes(CONTENT) == blob
    assert local_store.get_bytes(blob.digest) == CONTENT
    assert leftover.read_bytes() == CONTENT[:100]  # not mistaken for the blob


def test_put_replaces_a_stored_blob_of_the_wrong_size(local_store: ArtifactStore) -> None:
    # A power cut can leave a blob truncated; dedup must not keep it forever.
    blob = digest_bytes(CONTENT)
    final = local_store.local_path(blob.digest)
    assert final is not None
    final.parent.mkdir(parents=True)
    _write(final, CONTENT[:10])
    assert local_store.put_bytes(CONTENT) == blob
    assert local_store.get_bytes(blob.digest) == CONTENT


def test_open_raises_store_unavailable_when_root_cannot_be_created(tmp_path: Path) -> None:
    # A path under a regular file: unwritable even for root, unlike chmod.
    root = _write(tmp_path / "file.txt", b"") / "sub"
    store = ArtifactStore(f"file://{root}")
    with pytest.raises(StoreUnavailable, match="FERRY_ARTIFACTS") as raised:
        store.open()
    assert f"file://{root}" in str(raised.value)


def test_put_into_an_unwritable_root_raises_store_unavailable(tmp_path: Path) -> None:
    store = ArtifactStore(str(_write(tmp_path / "file.txt", b"") / "sub"))
    with pytest.raises(StoreUnavailable, match="file.txt/sub"):
        store.put_bytes(CONTENT)


def test_constructor_does_no_io(tmp_path: Path) -> None:
    ArtifactStore(str(tmp_path / "artifacts"))
    assert list(tmp_path.iterdir()) == []


def test_plain_absolute_path_is_a_local_store(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "artifacts")).open()
    digest = store.put_bytes(CONTENT).digest
    assert store.local_path(digest) == tmp_path / "artifacts" / "blobs" / digest[:2] / digest[2:]
    assert store.url == str(tmp_path / "artifacts")


@pytest.mark.parametrize("url", ["relative/path", "s3:/one-slash", "file://relative", "s3://"])
def test_url_that_is_neither_absolute_nor_a_store_raises_invalid_argument(url: str) -> None:
    with pytest.raises(InvalidArgument):
        ArtifactStore(url)


def test_unknown_protocol_raises_invalid_argument() -> None:
    with pytest.raises(InvalidArgument, match="nosuchproto"):
        ArtifactStore("nosuchproto://bucket/prefix").open()


def test_blob_is_immutable() -> None:
    blob = digest_bytes(CONTENT)
    with pytest.raises(dataclasses.FrozenInstanceError):
        blob.size = 0  # type: ignore[misc]


# -- S3 ----------------------------------------------------------------------------------


def test_storing_the_same_content_twice_keeps_one_s3_object(
    s3_store: ArtifactStore, s3_client: Any, tmp_path: Path
) -> None:
    first = s3_store.put_bytes(CONTENT)
    second = s3_store.put_file(_write(tmp_path / "same.bin", CONTENT))
    assert first == second
    prefix = s3_store.url.split("/", 3)[3]
    assert _s3_keys(s3_client, s3_store) == [
        f"{prefix}/blobs/{first.digest[:2]}/{first.digest[2:]}"
    ]


def test_s3_exists_sees_a_blob_written_by_another_client(
    s3_store: ArtifactStore, s3_client: Any, s3_bucket: str
) -> None:
    blob = digest_bytes(CONTENT)
    assert not s3_store.exists(blob.digest)
    prefix = s3_store.url.split("/", 3)[3]
    key = f"{prefix}/blobs/{blob.digest[:2]}/{blob.digest[2:]}"
    s3_client.put_object(Bucket=s3_bucket, Key=key, Body=CONTENT)
    assert s3_store.exists(blob.digest)
    assert s3_store.get_bytes(blob.digest) == CONTENT


def test_tampered_s3_blob_raises_integrity_error(
    s3_store: ArtifactStore, s3_client: Any, s3_bucket: str, tmp_path: Path
) -> None:
    digest = s3_store.put_bytes(CONTENT).digest
    (key,) = _s3_keys(s3_client, s3_store)
    s3_client.put_object(Bucket=s3_bucket, Key=key, Body=b"tampered")
    with pytest.raises(IntegrityError, match=digest):
        s3_store.get_bytes(digest)
    with pytest.raises(IntegrityError, match=digest):
        s3_store.get_file(digest, tmp_path / "out.bin")
    assert list(tmp_path.iterdir()) == []


def test_s3_store_has_no_local_path(s3_store: ArtifactStore) -> None:
    assert s3_store.local_path(s3_store.put_bytes(CONTENT).digest) is None


def test_open_raises_store_unavailable_for_a_missing_bucket(s3_options: dict[str, Any]) -> None:
    store = ArtifactStore("s3://no-such-bucket-here/x", storage_options=s3_options)
    with pytest.raises(StoreUnavailable, match="'no-such-bucket-here'.*does not exist"):
        store.open()


@pytest.mark.parametrize(
    "call",
    [
        lambda store: store.open(),
        lambda store: store.put_bytes(CONTENT),
        lambda store: store.get_bytes(digest_bytes(CONTENT).digest),
    ],
    ids=["open", "put_bytes", "get_bytes"],
)
def test_unreachable_s3_endpoint_raises_store_unavailable_naming_it(
    call: Callable[[ArtifactStore], object],
) -> None:
    # A socket bound but not listening refuses connections, and holds the port meanwhile.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        options = {
            "client_kwargs": {
                "endpoint_url": f"http://127.0.0.1:{port}",
                "region_name": "us-east-1",
            },
            "config_kwargs": {"retries": {"max_attempts": 1}},  # fail fast, no backoff
            "key": "testing",
            "secret": "testing",
        }
        store = ArtifactStore("s3://bucket/prefix", storage_options=options)
        with pytest.raises(StoreUnavailable, match=f"127.0.0.1:{port}"):
            call(store)


def test_fsync_store_round_trips_and_dedups(tmp_path: Path) -> None:
    store = ArtifactStore((tmp_path / "durable").as_uri(), fsync=True).open()
    first = store.put_bytes(b"power-loss safe")
    assert store.put_bytes(b"power-loss safe") == first
    assert store.get_bytes(first.digest) == b"power-loss safe"


def test_a_large_file_is_stored_by_a_kernel_copy_under_the_digest_of_its_bytes(
    local_store: ArtifactStore, tmp_path: Path
) -> None:
    data = bytes(range(256)) * (12 << 12) + b"tail"  # 12 MiB and a bit: copied in the kernel
    source = _write(tmp_path / "large.bin", data)
    expected = blake3.blake3(data).hexdigest()
    for blob in (local_store.ingest_file(source), local_store.put_file(source)):
        assert blob == Blob(expected, len(data))
        local = local_store.local_path(expected)
        assert local is not None and local.read_bytes() == data
