"""Over S3 artifacts, ``ferry server --signed-urls`` lets clients move blobs straight to
and from the bucket; the server still stores only bytes that hash to their digest."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import blake3
import httpx
import pytest
from team_world import TeamServer, running_server

from ferryml.store.http import ServerClient
from ferryml.store.http_artifacts import HttpArtifactStore

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def signing_server(
    tmp_path_factory: pytest.TempPathFactory, s3_endpoint: str, s3_bucket: str
) -> Iterator[TeamServer]:
    folder = tmp_path_factory.mktemp("signed")
    aws = {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    yield from running_server(
        f"sqlite:///{folder / 'ferry.db'}",
        folder,
        artifacts=f"s3://{s3_bucket}/signed",
        args=("--signed-urls",),
        env=aws,
    )


def test_blobs_travel_straight_to_and_from_the_bucket(
    signing_server: TeamServer, tmp_path: Path, s3_endpoint: str, s3_client: Any, s3_bucket: str
) -> None:
    source = tmp_path / "model.bin"
    source.write_bytes(os.urandom(3 << 20))
    store = HttpArtifactStore(ServerClient(signing_server.url, signing_server.tokens["writer"]))
    try:
        blob = store.put_file(source)
        back = store.get_file(blob.digest, tmp_path / "back.bin")
    finally:
        store.close()
    assert back.read_bytes() == source.read_bytes()
    with signing_server.http("reader") as http:
        url = http.get(f"/api/v1/blobs/{blob.digest}/url").json()["url"]
    assert url.startswith(s3_endpoint)  # the client was sent to the bucket
    key = f"signed/blobs/{blob.digest[:2]}/{blob.digest[2:]}"
    assert s3_client.head_object(Bucket=s3_bucket, Key=key)["ContentLength"] == 3 << 20
    staged = s3_client.list_objects_v2(Bucket=s3_bucket, Prefix="signed/uploads/")
    assert staged["KeyCount"] == 0


def test_bytes_put_at_a_signed_url_are_stored_only_if_they_match(
    signing_server: TeamServer, s3_client: Any, s3_bucket: str
) -> None:
    claimed = blake3.blake3(b"what the client claims").hexdigest()
    with signing_server.http() as http:
        signed = http.post(f"/api/v1/blobs/{claimed}/signed-uploads").json()
        assert httpx.put(signed["url"], content=b"other bytes").status_code == 200
        r = http.post(f"/api/v1/blobs/{claimed}/signed-uploads/{signed['upload_id']}")
        assert r.status_code == 422 and "nothing was stored" in r.json()["error"]["message"]
        assert http.head(f"/api/v1/blobs/{claimed}").status_code == 404
        r = http.post(f"/api/v1/blobs/{claimed}/signed-uploads/{'0' * 32}")
        assert r.status_code == 404 and "Nothing was PUT" in r.json()["error"]["message"]
    staged = s3_client.list_objects_v2(Bucket=s3_bucket, Prefix="signed/uploads/")
    assert staged["KeyCount"] == 0
    with signing_server.http("reader") as http:
        r = http.post(f"/api/v1/blobs/{claimed}/signed-uploads")
        assert r.status_code == 403
