"""Packaging for production: exported folders that check themselves before loading, a
Docker build context that installs and serves as its image would, and Kubernetes manifests
valid against the Kubernetes OpenAPI schemas."""

from __future__ import annotations

import glob
import json
import os
import pickle
import platform
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import numpy as np
import pandas as pd
import pytest
import typer
import yaml
from kubernetes_validate.utils import latest_version
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

import ferryml as ferry
from ferryml.cli import deploy_pack
from ferryml.config import Settings, read_config
from ferryml.errors import AlreadyExists, Conflict, IntegrityError, InvalidArgument, NotFound
from ferryml.registry.models import Registry
from ferryml.registry.package import METADATA, PackageMeta
from ferryml.registry.signing import generate_key
from ferryml.serving.kubernetes import write_k8s_manifests
from ferryml.serving.packaging import (
    MODEL_DIR,
    MODEL_INFO,
    export_model,
    k8s_name,
    load_exported,
    read_exported,
    write_docker_context,
)


@dataclass
class Model:
    settings: Settings
    X: pd.DataFrame
    fitted: Any


def _register(settings: Settings) -> Model:
    ferry.configure(home=settings.home, store=settings.store_url, artifacts=settings.artifacts_url)
    data = load_iris(as_frame=True)
    X = data.data
    fitted = LogisticRegression(max_iter=300).fit(X, data.target)
    with ferry.start_run():
        ferry.log_model(fitted, input_example=X.head(), registered_model_name="m")
    ferry.set_registered_model_alias("m", "champion", 1)
    return Model(settings, X, fitted)


@pytest.fixture
def model(sqlite_settings: Settings) -> Iterator[Model]:
    """Model 'm', version 1 (alias champion): logistic regression on iris."""
    yield _register(sqlite_settings)
    ferry.configure(home=sqlite_settings.home)  # closes the client and its journal


# -- exported folders -----------------------------------------------------------------


def test_an_exported_model_loads_and_predicts_like_the_original(
    model: Model, tmp_path: Path
) -> None:
    exported = export_model(model.settings, "m@champion", tmp_path / "out")
    folder = tmp_path / "out" / MODEL_DIR
    assert exported.folder == folder
    assert sorted(p.name for p in folder.iterdir()) == [METADATA, MODEL_INFO, "model.pkl"]
    info = json.loads((folder / MODEL_INFO).read_text())
    assert {k: info[k] for k in ("name", "version", "package_digest", "flavor")} == {
        "name": "m",
        "version": 1,
        "package_digest": exported.package_digest,
        "flavor": "sklearn",
    }
    registry = Registry(model.settings)
    try:
        stored = registry.artifacts.get_bytes(exported.package_digest)
    finally:
        registry.close()
    assert (folder / METADATA).read_bytes() == stored  # the exact bytes that name the package

    loaded = load_exported(folder)
    np.testing.assert_array_equal(loaded.predict(model.X), model.fitted.predict(model.X))
    assert loaded.version is not None
    assert (loaded.version.name, loaded.version.version, loaded.uri) == ("m", 1, "models:/m/1")
    assert loaded.version.aliases == ("champion",)
    with pytest.raises(InvalidArgument, match="missing column 'sepal length \\(cm\\)'"):
        loaded.predict(model.X.drop(columns="sepal length (cm)"))


def test_a_tampered_exported_file_is_refused_by_name_and_never_unpickled(
    model: Model, tmp_path: Path
) -> None:
    folder = export_model(model.settings, "m/1", tmp_path / "out").folder
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str, str]]:
            return (open, (str(marker), "w"))

    (folder / "model.pkl").write_bytes(pickle.dumps(Payload()))
    with pytest.raises(IntegrityError, match="Model file 'model.pkl' in .* does not match"):
        load_exported(folder)
    assert not marker.exists()


def test_changed_metadata_a_missing_file_or_another_package_are_refused(
    model: Model, tmp_path: Path
) -> None:
    folder = export_model(model.settings, "m", tmp_path / "out").folder
    original = (folder / METADATA).read_bytes()
    (folder / METADATA).write_bytes(original.replace(b'"sklearn"', b'"pyfunc"'))
    with pytest.raises(IntegrityError, match=f"{METADATA} in .* does not hash to the package"):
        load_exported(folder)
    (folder / METADATA).write_bytes(original)
    with pytest.raises(IntegrityError, match="holds package [0-9a-f]{64}, not the expected 0+"):
        load_exported(folder, package_digest="0" * 64)
    (folder / "model.pkl").unlink()
    with pytest.raises(IntegrityError, match="Model file 'model.pkl' is missing from exported"):
        load_exported(folder)


def test_a_folder_that_is_no_export_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="holds no exported model \\(model.json is missing\\)"):
        load_exported(tmp_path)
    (tmp_path / MODEL_INFO).write_text('{"name": "m"}')
    with pytest.raises(InvalidArgument, match="is not a model record"):
        read_exported(tmp_path)


def test_export_refuses_an_existing_folder_and_unknown_models(model: Model, tmp_path: Path) -> None:
    (tmp_path / "out" / MODEL_DIR).mkdir(parents=True)
    with pytest.raises(AlreadyExists, match="model exists already; remove it"):
        export_model(model.settings, "m@champion", tmp_path / "out")
    with pytest.raises(NotFound, match="has no alias 'staging'"):
        export_model(model.settings, "m@staging", tmp_path / "other")
    assert not (tmp_path / "other").exists()


def test_export_refuses_a_stored_file_changed_after_it_was_logged(
    model: Model, tmp_path: Path
) -> None:
    registry = Registry(model.settings)
    try:
        digest = registry.version("m/1").package_digest
        meta = PackageMeta.from_bytes(registry.artifacts.get_bytes(digest), digest)
        blob = registry.artifacts.local_path(meta.files["model.pkl"])
    finally:
        registry.close()
    assert blob is not None
    os.chmod(blob, 0o644)
    blob.write_bytes(b"not the model")
    with pytest.raises(IntegrityError, match="Model file 'model.pkl' of m/1 does not match"):
        export_model(model.settings, "m/1", tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_a_package_naming_a_file_outside_its_folder_is_refused(
    model: Model, tmp_path: Path
) -> None:
    def escape(meta: PackageMeta) -> PackageMeta:
        return replace(meta, files={"../model.pkl": meta.files["model.pkl"]})

    ref = _register_package(model.settings, escape)
    with pytest.raises(IntegrityError, match="names a file '../model.pkl' outside its folder"):
        export_model(model.settings, ref, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []
    assert not (tmp_path / "model.pkl").exists()


# -- Docker build context -------------------------------------------------------------


def _instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", dockerfile)
    found = []
    for line in joined.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def _pip_install_args(dockerfile: str) -> list[str]:
    runs = [args for kw, args in _instructions(dockerfile) if kw == "RUN"]
    (install,) = [shlex.split(r) for r in runs if r.startswith("pip install")]
    return install[2:]


def test_the_docker_context_installs_ferryml_and_the_model_and_runs_ferry_serve(
    model: Model, tmp_path: Path
) -> None:
    context = write_docker_context(model.settings, "m@champion", tmp_path / "ctx")
    assert sorted(p.name for p in context.iterdir()) == [
        ".dockerignore",
        "Dockerfile",
        MODEL_DIR,
        "requirements.txt",
        "wheels",
    ]
    (wheel,) = (context / "wheels").iterdir()
    assert re.fullmatch(r"ferryml-0\.1\.0-py3-none-any\.whl", wheel.name)
    requirements = [
        line
        for line in (context / "requirements.txt").read_text().splitlines()
        if not line.startswith("#")
    ]
    assert requirements == ["ferryml==0.1.0", "scikit-learn==1.9.1"]
    assert load_exported(context / MODEL_DIR).predict(model.X.head(3)).tolist() == (
        model.fitted.predict(model.X.head(3)).tolist()
    )

    instructions = _instructions((context / "Dockerfile").read_text())
    keywords = dict(instructions)
    # pinned: the exact Python that logged the model, on a named Debian release
    assert keywords["FROM"] == f"python:{platform.python_version()}-slim-bookworm"
    assert _pip_install_args((context / "Dockerfile").read_text()) == [
        "--no-cache-dir",
        "wheels/*.whl",
        "-r",
        "requirements.txt",
    ]
    assert keywords["USER"] == "10001"  # numeric: Kubernetes can check runAsNonRoot
    assert [kw for kw, _ in instructions].index("USER") > max(
        i for i, (kw, _) in enumerate(instructions) if kw == "RUN"
    )
    assert keywords["EXPOSE"] == "8080"
    assert "http://127.0.0.1:8080/health" in keywords["HEALTHCHECK"]
    assert json.loads(keywords["ENTRYPOINT"]) == [
        "ferry",
        "serve",
        "--package",
        "/app/model",
        "--port",
        "8080",
    ]
    # Loopback unless asked: `docker run -e FERRY_SERVE_HOST=0.0.0.0` or --host at export
    assert "FERRY_SERVE_HOST=127.0.0.1" in keywords["ENV"].split()
    assert "-e FERRY_SERVE_HOST=0.0.0.0 -p 8080:8080" in (context / "Dockerfile").read_text()
    ignored = (context / ".dockerignore").read_text().splitlines()
    assert ignored[1:] == ["*", "!requirements.txt", "!wheels/", "!model/"]


def test_without_a_wheel_the_image_installs_ferryml_from_the_index(
    model: Model, tmp_path: Path
) -> None:
    image = "python@sha256:" + "0" * 64  # pinned by digest
    context = write_docker_context(
        model.settings, "m/1", tmp_path / "ctx", wheel=False, base_image=image
    )
    assert not (context / "wheels").exists()
    dockerfile = (context / "Dockerfile").read_text()
    assert dict(_instructions(dockerfile))["FROM"] == image
    assert "wheels" not in dockerfile
    assert _pip_install_args(dockerfile) == ["--no-cache-dir", "-r", "requirements.txt"]
    assert "ferryml==0.1.0" in (context / "requirements.txt").read_text().splitlines()


def test_an_unpinned_base_image_is_refused(sqlite_settings: Settings, tmp_path: Path) -> None:
    for image in ["python", "python:latest", "python:3.11-slim", "python@sha256:abc", "a b:1.2.3"]:
        with pytest.raises(InvalidArgument, match="is not pinned: give a digest"):
            write_docker_context(sqlite_settings, "m/1", tmp_path / "ctx", base_image=image)
        assert not (tmp_path / "ctx").exists()


def test_with_trust_the_context_needs_a_signed_package_and_the_image_checks_it(
    model: Model, tmp_path: Path
) -> None:
    public = generate_key(tmp_path / "key")
    settings = replace(model.settings, trust=(public,))
    with pytest.raises(IntegrityError, match="is not signed"):
        write_docker_context(settings, "m/1", tmp_path / "ctx", wheel=False)
    assert not (tmp_path / "ctx").exists()

    registry = Registry(settings)
    try:
        registry.sign("m/1", tmp_path / "key")
    finally:
        registry.close()
    context = write_docker_context(settings, "m/1", tmp_path / "ctx", wheel=False)
    assert read_config(context).trust == [public]  # the image's ferry.yaml, in WORKDIR /app
    instructions = _instructions((context / "Dockerfile").read_text())
    assert ("COPY", "ferry.yaml ./") in instructions
    assert ("WORKDIR", "/app") in instructions
    assert "!ferry.yaml" in (context / ".dockerignore").read_text().splitlines()
    loaded = load_exported(context / MODEL_DIR, trust=(public,), root=context)
    assert loaded.version is not None and loaded.version.version == 1


def test_the_docker_context_goes_to_a_new_or_empty_folder_only(
    model: Model, tmp_path: Path
) -> None:
    (tmp_path / "empty").mkdir()
    assert write_docker_context(model.settings, "m", tmp_path / "empty", wheel=False).is_dir()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    with pytest.raises(AlreadyExists, match="full exists and is not empty; remove it"):
        write_docker_context(model.settings, "m", tmp_path / "full", wheel=False)
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["notes.txt"]
    with pytest.raises(NotFound, match="Registered model 'nope' not found"):
        write_docker_context(model.settings, "nope@champion", tmp_path / "none")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def _register_package(settings: Settings, change: Callable[[PackageMeta], PackageMeta]) -> str:
    """Register version 2 of 'm': version 1's package, its metadata changed by ``change``."""
    registry = Registry(settings)
    try:
        digest = registry.version("m/1").package_digest
        meta = change(PackageMeta.from_bytes(registry.artifacts.get_bytes(digest), digest))
        created = registry.store.create_model_version(
            "m",
            package_digest=registry.artifacts.put_bytes(meta.to_bytes()).digest,
            flavor=meta.flavor,
            source="test",
            run_id=None,
            user="test",
        )
    finally:
        registry.close()
    return created.ref


def test_a_model_that_needs_other_versions_than_ferryml_is_a_conflict(
    model: Model, tmp_path: Path
) -> None:
    ref = _register_package(
        model.settings, lambda meta: replace(meta, requirements=["scikit-learn==1.0.2"])
    )
    with pytest.raises(
        Conflict,
        match="The model needs scikit-learn==1.0.2 but ferryml 0.1.0 needs scikit-learn>=1.5",
    ):
        write_docker_context(model.settings, ref, tmp_path / "ctx", wheel=False)
    assert not (tmp_path / "ctx").exists()


# -- Kubernetes manifests -------------------------------------------------------------


def _validate(document: dict[str, Any]) -> None:
    """Strict: an unknown field anywhere is an error, as `kubectl apply` would report."""
    kubernetes_validate.validate(document, latest_version(), strict=True)


def test_the_manifests_validate_against_the_kubernetes_schemas(
    model: Model, tmp_path: Path
) -> None:
    paths = write_k8s_manifests(
        model.settings, "m@champion", tmp_path / "k8s", image="registry.local/m:1", replicas=3
    )
    assert [p.name for p in paths] == ["deployment.yaml", "service.yaml", "hpa.yaml"]
    deployment, service, hpa = (yaml.safe_load(p.read_text()) for p in paths)
    for document in (deployment, service, hpa):
        _validate(document)
        assert document["metadata"]["name"] == "m"
    assert latest_version().startswith("1.3")  # a recent Kubernetes, bundled offline

    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert deployment["spec"]["replicas"] == 3
    assert container["image"] == "registry.local/m:1"
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert container["startupProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    # the pod asks for every interface: it is reached on its own address, behind the Service
    assert container["env"] == [{"name": "FERRY_SERVE_HOST", "value": "0.0.0.0"}]
    assert set(container["resources"]) == {"requests", "limits"}
    assert container["resources"]["requests"]["cpu"] == "250m"
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod["metadata"]["labels"].items()
    assert pod["metadata"]["annotations"]["ferryml/model"] == "models:/m/1"

    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["selector"] == selector
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
    ]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "m",
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 10)
    assert hpa["spec"]["metrics"][0]["resource"] == {
        "name": "cpu",
        "target": {"type": "Utilization", "averageUtilization": 70},
    }


def test_the_schema_check_is_strict(model: Model, tmp_path: Path) -> None:
    (path, _, _) = write_k8s_manifests(model.settings, "m", tmp_path, image="m:1")
    deployment = yaml.safe_load(path.read_text())
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="livenesProbe"):
        _validate(deployment)


@pytest.mark.parametrize(
    ("model_name", "expected"),
    [
        ("churn", "churn"),
        ("Churn_Model.v2", "churn-model-v2"),
        ("2024-fraud", "model-2024-fraud"),
        ("__x__", "x"),
        ("a" * 70, "a" * 63),
        ("ab-" * 30, ("ab-" * 21)[:63].rstrip("-")),
    ],
)
def test_kubernetes_names_are_dns_labels(model_name: str, expected: str) -> None:
    name = k8s_name(model_name)
    assert name == expected
    assert re.fullmatch(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", name)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"image": ""}, "Image '' is not an image reference"),
        ({"image": "m:1", "replicas": 11}, "Replicas 11 is outside the autoscaler's range 2...10"),
        ({"image": "m:1", "min_replicas": 0}, "1 <= min \\(0\\) <= max \\(10\\)"),
        ({"image": "m:1", "cpu_target": 0}, "CPU target 0% is not a percentage"),
    ],
)
def test_bad_manifest_options_are_clear_errors(
    sqlite_settings: Settings, tmp_path: Path, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        write_k8s_manifests(sqlite_settings, "m", tmp_path / "k8s", **options)
    assert not (tmp_path / "k8s").exists()


# -- the commands ---------------------------------------------------------------------


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command("docker")(deploy_pack.docker)
    app.command("k8s")(deploy_pack.k8s)
    return app


def test_the_deploy_commands_write_and_say_what_to_run(model: Model, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "ctx"
    result = runner.invoke(_cli(), ["docker", "m@champion", "--out", str(out)], obj=model.settings)
    assert (result.exit_code, result.output) == (
        0,
        f"Wrote a Docker build context for models:/m/1 to {out} (ferryml from a wheel built "
        f"from its source). Build and run it:\n  docker build -t m:1 {out}\n"
        "  docker run --rm -e FERRY_SERVE_HOST=0.0.0.0 -p 8080:8080 m:1\n",
    )
    result = runner.invoke(
        _cli(),
        ["k8s", "m@champion", "--out", str(tmp_path / "k8s"), "--image", "m:1", "--json"],
        obj=model.settings,
    )
    assert result.exit_code == 0
    assert json.loads(result.output) == {
        "files": [
            str(tmp_path / "k8s" / f) for f in ("deployment.yaml", "service.yaml", "hpa.yaml")
        ],
        "image": "m:1",
    }
    result = runner.invoke(
        _cli(), ["docker", "nope", "--out", str(tmp_path / "x"), "--json"], obj=model.settings
    )
    assert result.exit_code == 1 and isinstance(result.exception, NotFound)


# -- end to end: the image's install and entry point, without Docker ------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Installed:
    context: Path
    bin: Path  # the fresh virtual environment's bin folder
    X: pd.DataFrame
    expected: list[int]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    """A Docker context for m@champion, installed into a fresh virtual environment exactly
    as its Dockerfile installs it into the image."""
    root = tmp_path_factory.mktemp("image")
    settings = Settings.resolve(home=root / "home", cwd=root, environ={})
    model = _register(settings)
    try:
        context = write_docker_context(settings, "m@champion", root / "ctx")
    finally:
        ferry.configure(home=settings.home)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    args = []  # as the shell in the image expands them, in /app
    for arg in _pip_install_args((context / "Dockerfile").read_text()):
        args += sorted(glob.glob(str(context / arg))) if "*" in arg else [arg]
    started = time.monotonic()
    subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--prefer-binary",
            "--no-compile",
        ]
        + [a for a in args if a != "--no-cache-dir"],  # the host's pip cache: faster
        cwd=context,
        check=True,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    print(f"\nvenv install took {time.monotonic() - started:.1f}s")
    X = model.X.sample(5, random_state=0)
    yield Installed(context, venv / "bin", X, model.fitted.predict(X).tolist())
    shutil.rmtree(venv, ignore_errors=True)  # ~750 MB


@pytest.mark.e2e
@pytest.mark.timeout(900)
def test_the_context_installs_into_a_fresh_environment_and_serves_as_the_image_would(
    installed: Installed, tmp_path: Path
) -> None:
    keywords = dict(_instructions((installed.context / "Dockerfile").read_text()))
    port = _free_port()
    command = [
        arg.replace("/app", str(installed.context)) for arg in json.loads(keywords["ENTRYPOINT"])
    ]
    command[0] = str(installed.bin / command[0])
    command[command.index("--port") + 1] = str(port)
    isolated = ("FERRY_", "VIRTUAL_ENV", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if not k.startswith(isolated)}
    env |= {"FERRY_HOME": str(tmp_path / "ferry-home"), "PATH": f"{installed.bin}:/usr/bin:/bin"}
    server = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=10) as client:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if client.get("/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the server was not ready in 120 s"
                try:
                    server.wait(timeout=0.2)
                except subprocess.TimeoutExpired:
                    continue
                output = server.stdout.read().decode() if server.stdout else ""
                pytest.fail(f"ferry serve exited with {server.returncode}:\n{output}")
            assert client.get("/health").status_code == 200
            answer = client.post(
                "/v1/models/m/predict", json={"records": installed.X.to_dict("records")}
            )
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert (body["model"], body["version"]) == ("m", 1)
            assert body["predictions"] == installed.expected
            assert "ferry" in client.get("/metrics").text
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        if server.stdout:
            server.stdout.close()
    # uvicorn shuts down gracefully, then re-raises the signal it caught
    assert server.returncode in (0, -signal.SIGTERM)
