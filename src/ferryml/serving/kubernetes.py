"""Kubernetes manifests for a served model: a Deployment (probes on /health and /ready),
a Service and a HorizontalPodAutoscaler, running the image ``ferry deploy docker`` builds."""

from __future__ import annotations

import importlib.metadata
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from ferryml.config import Settings
from ferryml.errors import InvalidArgument
from ferryml.registry.models import Registry
from ferryml.registry.package import PackageMeta
from ferryml.serving.packaging import FERRY_HOME, HOST_ENV, PORT, k8s_name
from ferryml.store.entities import ModelVersion

__all__ = ["write_k8s_manifests"]


def write_k8s_manifests(
    settings: Settings,
    ref: str,
    out_dir: str | os.PathLike[str],
    *,
    image: str,
    replicas: int = 2,
    min_replicas: int = 2,
    max_replicas: int = 10,
    cpu_target: int = 70,
) -> list[Path]:
    """Write ``deployment.yaml``, ``service.yaml`` and ``hpa.yaml`` that run ``image`` (built
    from ``write_docker_context``) for the version ``ref`` names: an apps/v1 Deployment
    with a startup and liveness probe on ``/health`` and a readiness probe on ``/ready``, a
    ClusterIP Service on port 80, and an autoscaling/v2 HorizontalPodAutoscaler that keeps
    CPU near ``cpu_target`` percent of the request. Memory grows with the package's size.

    Returns:
        The three paths; each file is replaced atomically.

    Raises:
        NotFound: no such model, version or alias.
        InvalidArgument: the image is empty, or the replica counts or target are out of range.
    """
    if not image or image != image.strip() or any(c.isspace() for c in image):
        raise InvalidArgument(f"Image {image!r} is not an image reference, e.g. churn:3.")
    if not 1 <= min_replicas <= max_replicas:
        raise InvalidArgument(
            f"Replicas must satisfy 1 <= min ({min_replicas}) <= max ({max_replicas})."
        )
    if not min_replicas <= replicas <= max_replicas:
        raise InvalidArgument(
            f"Replicas {replicas} is outside the autoscaler's range {min_replicas}..."
            f"{max_replicas}; pick a number in it."
        )
    if not 1 <= cpu_target <= 100:
        raise InvalidArgument(f"CPU target {cpu_target}% is not a percentage from 1 to 100.")
    registry = Registry(settings)
    try:
        version = registry.version(ref.removeprefix("models:/"))
        digest = version.package_digest
        meta = PackageMeta.from_bytes(registry.artifacts.get_bytes(digest), digest)
    finally:
        registry.close()
    documents = _manifests(
        version, sum(meta.sizes.values()), image, replicas, min_replicas, max_replicas, cpu_target
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    header = (
        f"# {documents[0]['metadata']['annotations']['ferryml/model']} ({ref}), "
        f"written by ferryml {importlib.metadata.version('ferryml')}\n"
    )
    paths = []
    for file, document in zip(("deployment", "service", "hpa"), documents, strict=True):
        paths.append(_write_atomic(out / f"{file}.yaml", header + _yaml(document)))
    return paths


def _manifests(
    version: ModelVersion,
    package_size: int,
    image: str,
    replicas: int,
    min_replicas: int,
    max_replicas: int,
    cpu_target: int,
) -> list[dict[str, Any]]:
    name = k8s_name(version.name)
    selector = {"app.kubernetes.io/name": name, "app.kubernetes.io/component": "model-server"}
    labels = {**selector, "app.kubernetes.io/managed-by": "ferryml"}
    annotations = {
        "ferryml/model": f"models:/{version.name}/{version.version}",
        "ferryml/package-digest": version.package_digest,
    }
    metadata = {"name": name, "labels": labels, "annotations": annotations}
    # Python, pandas and the server take ~300 MiB; a loaded model about twice its files.
    memory = 512 + 64 * math.ceil(2 * package_size / (64 << 20))

    def probe(path: str, period: int, failures: int) -> dict[str, Any]:
        return {
            "httpGet": {"path": path, "port": "http"},
            "periodSeconds": period,
            "timeoutSeconds": 2,
            "failureThreshold": failures,
        }

    container = {
        "name": "model",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        # The image listens on loopback unless asked; a pod is reached on its own address.
        "env": [{"name": HOST_ENV, "value": "0.0.0.0"}],
        # /health answers once the model is loaded: allow two minutes for that.
        "startupProbe": probe("/health", 2, 60),
        "livenessProbe": probe("/health", 10, 3),
        "readinessProbe": probe("/ready", 5, 2),
        "resources": {
            "requests": {"cpu": "250m", "memory": f"{memory}Mi"},
            "limits": {"cpu": "1", "memory": f"{2 * memory}Mi"},
        },
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},  # load_exported's private copy
            {"name": "ferry-home", "mountPath": FERRY_HOME},
        ],
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {
                    "labels": {**labels, "app.kubernetes.io/version": str(version.version)},
                    "annotations": dict(annotations),  # a copy: no YAML anchors
                },
                "spec": {
                    "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                    "terminationGracePeriodSeconds": 30,
                    "containers": [container],
                    "volumes": [
                        {"name": "tmp", "emptyDir": {}},
                        {"name": "ferry-home", "emptyDir": {}},
                    ],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata,
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": min_replicas,
            "maxReplicas": max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": cpu_target},
                    },
                }
            ],
        },
    }
    return [deployment, service, hpa]


def _yaml(document: dict[str, Any]) -> str:
    import yaml

    text: str = yaml.safe_dump(document, sort_keys=False, default_flow_style=False)
    return text


def _write_atomic(path: Path, text: str) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
