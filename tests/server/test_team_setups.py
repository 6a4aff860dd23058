"""The team server as a team runs it: S3 artifacts, TLS, several workers, and deployments
changed by a maintainer with who and why recorded."""

from __future__ import annotations

import datetime
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from team_world import TeamServer, add_users, free_port

pytestmark = pytest.mark.e2e

_CLIENT = """
import ferryml as ferry
ferry.set_experiment("team")
with ferry.start_run() as run:
    ferry.log_metric("m", 1.5)
    open("a.txt", "w").write("artifact bytes")
    ferry.log_artifact("a.txt")
c = ferry.FerryClient()
c.download_artifacts(run.info.run_id, "a.txt", "back")
print(open("back/a.txt").read(), c.get_run(run.info.run_id).data.metrics["m"])
"""


def _client(server: TeamServer, cwd: Path, extra: dict[str, str] | None = None) -> str:
    env = server.client_env()
    env.update(extra or {})
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_CLIENT)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture
def started(store_url: str, tmp_path: Path) -> Iterator[list[TeamServer]]:
    """Servers a test builds and starts itself; each is stopped after."""
    servers: list[TeamServer] = []
    yield servers
    for server in servers:
        server.stop()


def _server(store_url: str, tmp_path: Path, artifacts: str | None = None) -> TeamServer:
    server = TeamServer(
        store_url,
        artifacts or (tmp_path / "server-artifacts").as_uri(),
        tmp_path / "server-home",
        free_port(),
    )
    server.tokens = add_users(store_url)
    return server


def test_artifacts_on_s3_go_through_the_server(
    store_url: str,
    tmp_path: Path,
    client_dir: Path,
    started: list[TeamServer],
    s3_endpoint: str,
    s3_bucket: str,
    s3_client: object,
) -> None:
    server = _server(store_url, tmp_path, f"s3://{s3_bucket}/team-{tmp_path.name}")
    server.extra_env = {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    started.append(server.start())
    assert _client(server, client_dir) == "artifact bytes 1.5"
    listed = s3_client.list_objects_v2(Bucket=s3_bucket, Prefix=f"team-{tmp_path.name}/blobs/")  # type: ignore[attr-defined]
    assert listed["KeyCount"] >= 1  # the blob is in the bucket, not on the server's disk
    assert not (tmp_path / "server-home" / "uploads").exists() or not any(
        (tmp_path / "server-home" / "uploads").iterdir()
    )


def test_tls_with_the_teams_certificate(
    store_url: str, tmp_path: Path, client_dir: Path, started: list[TeamServer]
) -> None:
    cert, key = _self_signed(tmp_path)
    server = _server(store_url, tmp_path)
    server.args = ("--ssl-certfile", str(cert), "--ssl-keyfile", str(key))
    server.scheme = "https"
    started.append(server.start())
    assert _client(server, client_dir, {"SSL_CERT_FILE": str(cert)}) == "artifact bytes 1.5"
    untrusted = subprocess.run(
        [sys.executable, "-c", "import ferryml as ferry; ferry.FerryClient().search_runs(['1'])"],
        cwd=client_dir,
        env=server.client_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert untrusted.returncode != 0 and "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr


def test_several_workers_share_the_store(
    store_url: str, tmp_path: Path, client_dir: Path, started: list[TeamServer]
) -> None:
    server = _server(store_url, tmp_path)
    server.args = ("--workers", "2")
    started.append(server.start())
    assert _client(server, client_dir) == "artifact bytes 1.5"


def test_a_maintainer_changes_a_deployment_and_the_trail_names_them(
    store_url: str, tmp_path: Path, client_dir: Path, started: list[TeamServer]
) -> None:
    server = _server(store_url, tmp_path)
    started.append(server.start())
    code = textwrap.dedent(
        """
        import ferryml as ferry
        from sklearn.dummy import DummyClassifier
        for _ in range(2):
            with ferry.start_run():
                ferry.log_model(DummyClassifier().fit([[0], [1]], [0, 1]), name="m",
                                registered_model_name="api-model")
        """
    )
    subprocess.run(
        [sys.executable, "-c", code], cwd=client_dir, env=server.client_env(), check=True
    )
    with server.http("maintainer") as maintainer:
        r = maintainer.put(
            "/api/v1/deployments/api",
            json={"model": "api-model", "version": 1, "canary": 2, "canary_weight": 10},
        )
        assert r.status_code == 201, r.text
        r = maintainer.post(
            "/api/v1/deployments/api/weights",
            json={"weights": {"v1": 60, "v2": 40}, "reason": "widen"},
        )
        assert r.status_code == 200 and [x["weight"] for x in r.json()["routes"]] == [60, 40]
    with server.http("writer") as writer:
        r = writer.post("/api/v1/deployments/api/rollback", json={"reason": "no"})
        assert r.status_code == 403
        history = writer.get("/api/v1/deployments/api/history").json()
    assert [(e["action"], e["user"], e["reason"]) for e in history] == [
        ("create", "maintainer", ""),
        ("set_weights", "maintainer", "widen"),
    ]
    # The `ferry deploy` commands work through the server too, as a maintainer.
    result = subprocess.run(
        [str(Path(sys.executable).with_name("ferry")), "deploy", "rollback", "api"],
        cwd=client_dir,
        env=server.client_env("maintainer"),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    with server.http("reader") as reader:
        assert reader.get("/api/v1/deployments/api/history").json()[-1]["user"] == "maintainer"


def _self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path
