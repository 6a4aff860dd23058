"""Fixtures for the store tests: an S3 emulator (moto's server mode) on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

S3_BUCKET = "ferry-test-artifacts"


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """URL of a moto S3 server holding an empty bucket, ``s3_bucket``."""
    # Port 0: the OS picks a free port while binding, so no other process can take it
    # in between (and moto's start() would wait forever after a failed bind).
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    try:
        _client(url).create_bucket(Bucket=S3_BUCKET)
        yield url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_bucket(s3_endpoint: str) -> str:
    """Name of the emulator's bucket."""
    return S3_BUCKET


@pytest.fixture(scope="session")
def s3_client(s3_endpoint: str) -> Any:
    """A boto3 client for the emulator, to look at the bucket from outside the store."""
    return _client(s3_endpoint)


@pytest.fixture(scope="session")
def s3_options(s3_endpoint: str) -> dict[str, Any]:
    """``storage_options`` that point s3fs at the emulator."""
    return {
        "client_kwargs": {"endpoint_url": s3_endpoint, "region_name": "us-east-1"},
        "key": "testing",
        "secret": "testing",
    }


def _client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
