"""The model repository of one server (the Open Inference Protocol's repository extension,
as Triton and KServe define it): which models and deployments it serves and which it can
load, and loading, reloading and unloading them while it runs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from ferryml.config import Settings
from ferryml.errors import NotFound
from ferryml.serving.service import PredictionService

__all__ = ["ModelRepository", "RepositoryEntry"]

Builder = Callable[[], PredictionService]


@dataclass(frozen=True)
class RepositoryEntry:
    """One model of the index: ``state`` is ``READY`` or ``UNAVAILABLE`` (with a reason)."""

    name: str
    version: str
    state: str
    reason: str = ""

    def to_dict(self) -> dict[str, str]:
        return {
            "name": self.name,
            "version": self.version,
            "state": self.state,
            "reason": self.reason,
        }


class ModelRepository:
    """The models one server serves (``services``, shared with its routers, by name) and
    those it can load: every name it was started with (``builders``) and every deployment
    in the store (``build_deployment``). The constructor does no I/O."""

    def __init__(
        self,
        settings: Settings,
        services: dict[str, PredictionService],
        *,
        builders: dict[str, Builder] | None = None,
        build_deployment: Callable[[str], PredictionService] | None = None,
    ) -> None:
        self.settings = settings
        self.services = services
        self.builders = dict(builders or {})
        self.build_deployment = build_deployment
        self._lock = asyncio.Lock()  # one load or unload at a time

    def index(self, *, ready: bool = False) -> list[RepositoryEntry]:
        """Every model this server serves or can load, served ones first; only the
        ready ones when ``ready``. Reads the store (call it off the event loop)."""
        entries = []
        for name, service in list(self.services.items()):
            versions = ",".join(map(str, service.versions()))
            if service.ready:
                entries.append(RepositoryEntry(name, versions, "READY"))
            else:
                entries.append(RepositoryEntry(name, versions, "UNAVAILABLE", "loading"))
        if ready:
            return [e for e in entries if e.state == "READY"]
        known = set(self.services)
        for name in [*self.builders, *self._stored_deployments()]:
            if name not in known:
                known.add(name)
                entries.append(RepositoryEntry(name, "", "UNAVAILABLE", "unloaded"))
        return entries

    def _stored_deployments(self) -> list[str]:
        if self.build_deployment is None:
            return []
        from ferryml.serving.deployments import Deployments

        manager = Deployments(self.settings)
        try:
            return sorted(name for name, _ in manager.store.list_deployments())
        finally:
            manager.close()

    async def load(self, name: str) -> PredictionService:
        """Load ``name`` (again, if it is served: the new one answers once it is loaded, the
        old one finishes what it has in flight) and serve it.

        Raises:
            NotFound: no such name in this server's repository.
        """
        async with self._lock:
            builder = self._builder(name)
            loop = asyncio.get_running_loop()
            service = await loop.run_in_executor(None, _built, builder)
            service.start()
            self.builders.setdefault(name, builder)
            old = self.services.get(name)
            self.services[name] = service
            if old is not None:
                await old.unload()
            return service

    def _builder(self, name: str) -> Builder:
        found = self.builders.get(name)
        if found is not None:
            return found
        if self.build_deployment is not None and name in self._stored_deployments():
            build = self.build_deployment
            return lambda: build(name)
        served = ", ".join(repr(n) for n in self.services) or "none"
        raise NotFound(
            f"Model {name!r} is not in this server's repository (served: {served}); load a "
            "name the server was started with or a deployment (`ferry deploy list`)."
        )

    async def unload(self, name: str) -> None:
        """Stop serving ``name``: requests for it are refused at once, the ones in flight
        finish. Unloading a known name that is not loaded does nothing.

        Raises:
            NotFound: no such name in this server's repository.
        """
        async with self._lock:
            service = self.services.pop(name, None)
            if service is None:
                if name in self.builders:
                    return
                raise NotFound(
                    f"Model {name!r} is not loaded on this server; see POST /v2/repository/index."
                )
            self.builders.setdefault(name, _unbuildable(name))
            await service.unload()


def _built(builder: Builder) -> PredictionService:
    service = builder()
    try:
        for route in service.routes:
            if route.served.current is None:
                route.served.load()
    except BaseException:
        service.stopped.set()
        raise
    return service


def _unbuildable(name: str) -> Builder:
    def build() -> PredictionService:
        raise NotFound(
            f"Model {name!r} was given to this server already built and cannot be loaded "
            "again; restart the server to serve it."
        )

    return build
