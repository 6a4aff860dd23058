"""Before ``ferry serve`` binds: the port and address checked, with one line that says what
is wrong; after it loads: one line that says what it serves where."""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterable, Sequence

from ferryml.config import Settings
from ferryml.errors import InvalidArgument, MissingExtra
from ferryml.serving.service import PredictionService

__all__ = [
    "check_address",
    "check_grpc",
    "describe_service",
    "describe_target",
    "startup_line",
]


def check_address(host: str, port: int, *, flag: str = "--port") -> None:
    """Refuse a port out of range, a host that is not this machine's, a port in use.

    Raises:
        InvalidArgument: the one line to show the user.
    """
    if not 1 <= port <= 65535:
        raise InvalidArgument(f"{flag} {port} is not a TCP port: give a number from 1 to 65535.")
    try:
        family, kind, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as e:
        raise InvalidArgument(
            f"--host {host!r} is not an address ({e}); give an IP address of this machine, "
            "e.g. 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)."
        ) from e
    with socket.socket(family, kind) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as e:
            raise InvalidArgument(_why(e.errno, host, port, flag, e.strerror)) from e


def check_grpc(host: str, port: int, http_port: int) -> None:
    """As ``check_address``, for ``--grpc-port``; and grpcio must be installed.

    Raises:
        InvalidArgument: the port is the HTTP one, out of range or in use.
        MissingExtra: ferryml[grpc] is not installed.
    """
    if port == http_port:
        raise InvalidArgument(f"--grpc-port {port} is the HTTP port too; give another.")
    check_address(host, port, flag="--grpc-port")
    try:
        import grpc  # noqa: F401
    except ImportError as e:
        raise MissingExtra("--grpc-port needs grpcio: pip install 'ferryml[grpc]'.") from e


def _why(code: int | None, host: str, port: int, flag: str, reason: str | None) -> str:
    if code == errno.EADDRINUSE:
        return (
            f"Port {port} on {host} is in use by another process; stop it or choose another {flag}."
        )
    if code == errno.EADDRNOTAVAIL:
        return (
            f"{host} is not an address of this machine; give one of its own, 127.0.0.1 or 0.0.0.0."
        )
    if code == errno.EACCES:
        return f"Port {port} needs privileges here; choose a port above 1023 with {flag}."
    return f"Cannot listen on {host}:{port}: {reason}."


def startup_line(host: str, port: int, serving: Iterable[str], grpc_port: int | None) -> str:
    shown = f"[{host}]" if ":" in host else host
    line = f"ferry serve: {'; '.join(serving)} at http://{shown}:{port}"
    line += " (/v1, /v2, /invocations, /metrics, /docs)"
    if grpc_port is not None:
        line += f" and gRPC {shown}:{grpc_port}"
    return line


def describe_service(service: PredictionService) -> list[str]:
    """What a loaded service serves: ``cancer: cancer version 3 (primary 90%), ...``."""
    parts = []
    for route in service.routes:
        loaded = route.served.current
        if loaded is not None:
            part = f"{loaded.name} version {loaded.version}"
        else:  # a deployment's routes load as the server starts
            name, _, version = (route.served.ref or route.served.name).partition("/")
            part = f"{name} version {version}" if version else name
        if len(service.routes) > 1:
            part += f" ({route.role} {route.weight:g}%)"
        parts.append(part)
    return [f"{service.endpoint}: {', '.join(parts)}"]


def describe_target(
    settings: Settings,
    targets: Sequence[str],
    package: str | None,
    deployments: Sequence[str],
) -> list[str]:
    """The same, looked up without loading (the workers load): also an early NotFound."""
    if package is not None:
        from ferryml.serving.packaging import read_exported

        exported = read_exported(package)
        return [f"{exported.name}: {exported.name} version {exported.version}"]
    from ferryml.registry.models import Registry
    from ferryml.serving.deployments import Deployments

    lines = []
    manager, registry = Deployments(settings), Registry(settings)
    try:
        for deployment in deployments:
            spec = manager.get(deployment)
            routes = ", ".join(
                f"{spec.model} version {r.version} ({r.role} {r.weight:g}%)" for r in spec.routes
            )
            lines.append(f"{deployment}: {routes}")
        for target in targets:
            found = registry.version(target)
            lines.append(f"{found.name}: {found.name} version {found.version}")
    finally:
        manager.close()
        registry.close()
    return lines
