"""Deployments: an endpoint whose requests are split over model versions by weight
(primary, canary), sticky on a key, with shadows that get a copy of the traffic; promote,
roll back (by hand, or automatically when the canary does worse than the primary), and a
history of every change with who and why."""

from __future__ import annotations

import difflib
import logging
import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ferryml._identity import current_user
from ferryml._naming import check_name
from ferryml.config import Settings
from ferryml.errors import InvalidArgument, NotFound
from ferryml.store.factory import (
    open_deployment_store,
    open_prediction_store,
    open_registry_store,
    shared_part,
)

# The serving runtime (pandas, pyarrow) is imported only to serve: the team server manages
# deployments through this module and stays small without it.
if TYPE_CHECKING:
    from ferryml.serving.service import BatchOptions, PredictionService, RouteState

__all__ = [
    "Deployments",
    "Listed",
    "Route",
    "RollbackPolicy",
    "Spec",
    "deployment_service",
]

log = logging.getLogger("ferryml.deployments")


@dataclass(frozen=True)
class Route:
    version: int
    weight: float
    role: str  # primary | canary | shadow

    @property
    def name(self) -> str:
        return f"v{self.version}"


LATENCIES_KEPT = 2000  # per route, by the model server (RouteState.latencies)


@dataclass(frozen=True)
class RollbackPolicy:
    """The canary is rolled back when, over at least ``min_requests`` of its requests, its
    error rate exceeds the primary's by ``error_margin``, or its tail latency (p99 when the
    requests are enough to tell, p90 at 50) exceeds the primary's over the same stretch of
    time by ``latency_margin`` (a fraction: 0.5 is 50% slower)."""

    error_margin: float = 0.05
    latency_margin: float = 1.0
    min_requests: int = 50

    def __post_init__(self) -> None:
        # a route keeps its latest LATENCIES_KEPT latencies: a policy asking for more
        # would never judge latency, silently
        count = self.min_requests
        if isinstance(count, bool) or not isinstance(count, int):
            raise InvalidArgument(f"min_requests must be a whole number, got {count!r}.")
        if not 1 <= count <= LATENCIES_KEPT:
            raise InvalidArgument(
                f"min_requests must be between 1 and {LATENCIES_KEPT} (the latencies a "
                f"route keeps), got {count}."
            )
        for name in ("error_margin", "latency_margin"):
            value = getattr(self, name)
            number = isinstance(value, int | float) and not isinstance(value, bool)
            finite = isinstance(value, int) or number and math.isfinite(value)  # 10**400 too
            if not number or not finite or value < 0:
                raise InvalidArgument(
                    f"{name} must be a finite number of 0 or more, got {value!r}."
                )

    @classmethod
    def stored(cls, data: dict[str, Any]) -> RollbackPolicy:
        """The policy of a stored spec, which may predate the checks above: a value they
        refuse is read as the nearest they take (or the default), with a warning, so one
        old deployment does not stop every deployment from being read."""
        try:
            return cls(**data)
        except InvalidArgument as e:
            log.warning(
                "a stored rollback policy is out of range (%s): read as the nearest it may "
                "be until the deployment's next change stores it so",
                e,
            )
        default = asdict(cls())
        values = {**default, **data}
        count = values["min_requests"]
        if isinstance(count, int) or isinstance(count, float) and math.isfinite(count):
            values["min_requests"] = int(min(max(count, 1), LATENCIES_KEPT))
        for name, value in values.items():
            try:
                cls(**{name: value})
            except InvalidArgument:
                values[name] = default[name]
        return cls(**values)

    def slower(self, canary: RouteState, primary: RouteState) -> str | None:
        """Why the canary is slower than the primary, over the stretch of time both routes'
        latest requests cover (so a burst of load on the machine weighs on both alike), at the
        highest percentile five or more of the canary's requests lie above: a p99 of 50
        requests is their slowest one, and one pause of a busy machine would roll a good
        canary back. None while it is not, or while the canary has too few requests."""
        if len(canary.latencies) < self.min_requests or not primary.latencies:
            return None
        # A small canary's latest ``min_requests`` may reach back past the primary's latest
        # (a count, not a time): then its stretch is theirs, against what the primary has.
        since = min(
            max(canary.latencies[0][0], primary.latencies[0][0]),
            canary.latencies[-self.min_requests][0],
        )
        ours, theirs = canary.latencies_since(since), primary.latencies_since(since)
        if not theirs:
            return None
        quantile = max(0.5, min(0.99, 1 - 5 / len(ours)))
        mine = ours[min(len(ours) - 1, int(len(ours) * quantile))]
        other = theirs[min(len(theirs) - 1, int(len(theirs) * quantile))]
        if not other or mine <= other * (1 + self.latency_margin):
            return None
        return (
            f"canary {canary.name} p{quantile * 100:.0f} {mine * 1000:.1f} ms exceeds the "
            f"primary's {other * 1000:.1f} ms over the same stretch ({len(ours)} and "
            f"{len(theirs)} requests) by more than {self.latency_margin:.0%}"
        )


@dataclass(frozen=True)
class Spec:
    model: str
    routes: tuple[Route, ...]
    policy: RollbackPolicy = field(default_factory=RollbackPolicy)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "routes": [asdict(r) for r in self.routes],
            "policy": asdict(self.policy),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, stored: bool = False) -> Spec:
        """A spec from its dict: checked whole when it is about to be written; read
        leniently (``stored``) when it was written before the checks it would now fail."""
        policy = data.get("policy", {})
        return cls(
            data["model"],
            tuple(Route(**r) for r in data["routes"]),
            RollbackPolicy.stored(policy) if stored else RollbackPolicy(**policy),
        )

    def route(self, role: str) -> Route | None:
        return next((r for r in self.routes if r.role == role), None)


@dataclass(frozen=True)
class Listed:
    """A deployment in the list: one created with ``create`` (``spec`` set), or an implicit
    one (``spec`` None): ``ferry serve NAME@ALIAS`` logs its predictions under NAME."""

    name: str
    spec: Spec | None

    def to_dict(self) -> dict[str, Any]:
        if self.spec is None:
            return {"name": self.name, "implicit": True, "model": self.name, "routes": []}
        return {"name": self.name, "implicit": False, **self.spec.to_dict()}


class Deployments:
    """Create and change deployments. The constructor does no I/O."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._store: Any = None

    @property
    def store(self) -> Any:
        if self._store is None:
            self._store = open_deployment_store(self.settings)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def get(self, name: str) -> Spec:
        """The spec of a created deployment.

        Raises:
            NotFound: none of that name (close names are suggested); an implicit one
                (``ferry serve NAME@ALIAS``) has no routes, and the message says how to
                make it a deployment.
        """
        try:
            return Spec.from_dict(self.store.get(name), stored=True)
        except NotFound as e:
            listed = {d.name: d for d in self.list_deployments()}
            if name not in listed:
                raise NotFound(
                    f"Deployment {name!r} not found. {_did_you_mean(name, listed)}See "
                    "`ferry deploy list`."
                ) from e
            raise NotFound(
                f"Deployment {name!r} is implicit: `ferry serve {name}@ALIAS` logs under it, "
                f"and it has no routes to show or change. Create it with `ferry deploy create "
                f"{name} --model {name} --version N`, then serve it with `ferry serve "
                f"--deployment {name}`."
            ) from e

    def list_deployments(self) -> list[Listed]:
        """Every deployment by name: those created, and the implicit ones of models served
        by name (``ferry serve NAME@ALIAS``) that logged predictions."""
        created = {n: Spec.from_dict(s, stored=True) for n, s in self.store.list_deployments()}
        predictions = open_prediction_store(self.settings, sharing=self.store)
        logged = predictions.list_deployments()
        names = sorted(set(created) | set(logged))
        return [Listed(n, created.get(n)) for n in names]

    def require(self, name: str) -> None:
        """Check that ``name`` is a deployment: created, logged predictions, or a registered
        model that ``ferry serve NAME@ALIAS`` serves under its own name.

        Raises:
            NotFound: none of those, with the close names suggested.
        """
        from ferryml.store.sql_registry import SqlRegistryStore

        known = {d.name for d in self.list_deployments()}
        shared = shared_part(self.store, SqlRegistryStore)
        registry = shared or open_registry_store(self.settings)
        try:
            models = {m.name for m in registry.list_registered_models()}
        finally:
            if shared is None:
                registry.close()
        if name in known | models:
            return
        raise NotFound(
            f"Deployment {name!r} not found. {_did_you_mean(name, known | models)}See "
            "`ferry deploy list`, or serve a registered model with `ferry serve NAME@ALIAS`."
        )

    def create(
        self,
        name: str,
        model: str,
        version: int,
        *,
        canary: int | None = None,
        canary_weight: float = 10.0,
        shadow: int | None = None,
        policy: RollbackPolicy | None = None,
        reason: str = "",
    ) -> Spec:
        check_name(name, "Deployment", "churn-api")
        if canary is not None:
            _percent(canary_weight, f"v{canary}")
        routes = [Route(version, 100.0 - (canary_weight if canary else 0.0), "primary")]
        if canary is not None:
            routes.append(Route(canary, canary_weight, "canary"))
        if shadow is not None:
            routes.append(Route(shadow, 0.0, "shadow"))
        spec = Spec(model, tuple(routes), policy or RollbackPolicy())
        self._check(name, spec)
        self.store.create(name, spec.to_dict(), user=current_user(), reason=reason)
        return spec

    def _check(self, name: str, spec: Spec) -> None:
        from ferryml.store.sql_registry import SqlRegistryStore

        shared = shared_part(self.store, SqlRegistryStore)  # same connections
        registry = shared or open_registry_store(self.settings)
        try:
            for route in spec.routes:
                registry.get_model_version(spec.model, route.version)
        finally:
            if shared is None:
                registry.close()
        versions = [r.version for r in spec.routes]
        if len(set(versions)) != len(versions):
            raise InvalidArgument("A version can take only one route in a deployment.")
        if sum(r.role == "primary" for r in spec.routes) != 1:
            raise InvalidArgument("A deployment has exactly one primary route.")
        _check_weights(name, spec)

    def set_weights(self, name: str, weights: dict[str, float], *, reason: str = "") -> Spec:
        """Set route weights by route name (``v3``), e.g. {"v3": 90, "v4": 10}."""
        spec = self.get(name)
        known = {r.name for r in spec.routes}
        unknown = sorted(set(weights) - known)
        if unknown:
            raise NotFound(
                f"Deployment {name!r} has no route {', '.join(unknown)}; its routes "
                f"are {', '.join(sorted(known))}."
            )
        for route, weight in weights.items():
            _percent(weight, route)
        routes = tuple(
            Route(r.version, float(weights.get(r.name, r.weight)), r.role) for r in spec.routes
        )
        new = Spec(spec.model, routes, spec.policy)
        self._check(name, new)
        self.store.update(
            name, new.to_dict(), action="set_weights", user=current_user(), reason=reason
        )
        return new

    def add_route(
        self,
        name: str,
        version: int,
        *,
        role: str = "canary",
        weight: float = 10.0,
        reason: str = "",
    ) -> Spec:
        if role not in ("canary", "shadow"):
            raise InvalidArgument(f"Role {role!r} is not canary or shadow.")
        spec = self.get(name)
        kept = tuple(r for r in spec.routes if r.role != role)
        primary = spec.route("primary")
        assert primary is not None
        weight = 0.0 if role == "shadow" else _percent(weight, f"v{version}")
        kept = tuple(
            Route(r.version, max(0.0, 100.0 - weight), r.role) if r.role == "primary" else r
            for r in kept
        )
        new = Spec(spec.model, (*kept, Route(version, weight, role)), spec.policy)
        self._check(name, new)
        self.store.update(
            name, new.to_dict(), action=f"add_{role}", user=current_user(), reason=reason
        )
        return new

    def promote(self, name: str, *, reason: str = "") -> Spec:
        """The canary becomes the primary, with all the traffic."""
        spec = self.get(name)
        canary = spec.route("canary")
        if canary is None:
            raise InvalidArgument(f"Deployment {name!r} has no canary to promote.")
        routes = (
            Route(canary.version, 100.0, "primary"),
            *(r for r in spec.routes if r.role == "shadow"),
        )
        new = Spec(spec.model, routes, spec.policy)
        self.store.update(name, new.to_dict(), action="promote", user=current_user(), reason=reason)
        return new

    def rollback(self, name: str, *, reason: str = "", automatic: bool = False) -> Spec:
        """Take the canary's traffic away; with no canary, go back to the previous primary
        (by hand only: a server's automatic rollback that finds no canary -- it was promoted
        meanwhile -- changes nothing)."""
        spec = self.get(name)
        canary = spec.route("canary")
        if canary is None and automatic:
            log.warning("deployment %s: no canary left to roll back (%s)", name, reason)
            return spec
        if canary is not None:
            routes = tuple(
                Route(r.version, 100.0 if r.role == "primary" else 0.0, r.role)
                if r.role != "shadow"
                else r
                for r in spec.routes
            )
            new = Spec(spec.model, routes, spec.policy)
        else:
            previous = next(
                (
                    e.before
                    for e in reversed(self.store.events(name))
                    if e.action == "promote" and e.before
                ),
                None,
            )
            if previous is None:
                raise InvalidArgument(f"Deployment {name!r} has nothing to roll back to.")
            new = Spec.from_dict(previous, stored=True)
        self.store.update(
            name,
            new.to_dict(),
            action="auto_rollback" if automatic else "rollback",
            user="ferryml" if automatic else current_user(),
            reason=reason,
        )
        return new

    def history(self, name: str) -> list[Any]:
        self.get(name)
        return self.store.events(name)


def _did_you_mean(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=3)
    return f"Did you mean {' or '.join(map(repr, close))}? " if close else ""


def _percent(weight: float, route: str) -> float:
    if not (math.isfinite(weight) and 0 <= weight <= 100):
        raise InvalidArgument(
            f"Weight {weight:g} for route {route} is out of range: give a percent of the "
            "traffic from 0 to 100."
        )
    return weight


def _check_weights(name: str, spec: Spec) -> None:
    """Every weight a percent, the live routes' weights adding up to 100, and no change
    that gives all the traffic to a canary: that is what ``promote`` is for."""
    for route in spec.routes:
        _percent(route.weight, route.name)
        if route.role == "shadow" and route.weight:
            raise InvalidArgument(
                f"Route {route.name} of deployment {name!r} is a shadow: it gets a copy of "
                f"the traffic, so its weight stays 0; got {route.weight:g}."
            )
    live = [r for r in spec.routes if r.role != "shadow"]
    total = sum(r.weight for r in live)
    if not math.isclose(total, 100.0, abs_tol=1e-6):
        given = " + ".join(f"{r.name}={r.weight:g}" for r in live)
        example = " ".join(f"{r.name}={100 / len(live):g}" for r in live)
        raise InvalidArgument(
            f"Weights of deployment {name!r} must add up to 100; got {given} = {total:g}. "
            f"Give every route's weight, e.g. `ferry deploy set-weights {name} {example}`."
        )
    canary = spec.route("canary")
    if canary is not None and canary.weight >= 100.0:
        raise InvalidArgument(
            f"That would send all the traffic of deployment {name!r} to canary "
            f"{canary.name}, which is not promoted: run `ferry deploy promote {name}`."
        )


def deployment_service(
    settings: Settings,
    name: str,
    *,
    batching: BatchOptions | None,
    log: Any,
    metrics: Any,
    poll_seconds: float = 2.0,
    on_rollback: Callable[[str, str], None] | None = None,
) -> PredictionService:
    """The prediction service of a deployment: its routes, kept in step with the stored
    spec, and the canary watched for automatic rollback."""
    from ferryml.serving.service import PredictionService

    manager = Deployments(settings)
    spec = manager.get(name)
    routes = [_route_state(settings, spec, r, poll_seconds) for r in spec.routes]
    service = PredictionService(settings, name, routes, batching=batching, log=log, metrics=metrics)
    watcher = _Watcher(manager, service, spec, poll_seconds, on_rollback)
    service.on_request = watcher.check
    threading.Thread(target=watcher.run, name="ferryml-deployment", daemon=True).start()
    return service


def _route_state(settings: Settings, spec: Spec, route: Route, poll: float) -> RouteState:
    from ferryml.serving.runtime import ServedModel
    from ferryml.serving.service import RouteState

    served = ServedModel(settings, f"{spec.model}/{route.version}", poll_seconds=poll)
    return RouteState(route.name, served, route.weight, route.role)


class _Watcher:
    def __init__(
        self,
        manager: Deployments,
        service: PredictionService,
        spec: Spec,
        poll: float,
        on_rollback: Callable[[str, str], None] | None,
    ) -> None:
        self.manager, self.service, self.spec, self.poll = manager, service, spec, poll
        self.on_rollback = on_rollback
        self.rolled_back = False
        self._lock = threading.Lock()

    def run(self) -> None:
        while not self.service.stopped.wait(self.poll):  # until the service is unloaded
            try:
                self.apply(self.manager.get(self.service.endpoint))
            except Exception as e:  # noqa: BLE001 - keep serving the routes we have
                log.warning("could not refresh deployment %s: %s", self.service.endpoint, e)

    def apply(self, spec: Spec) -> None:
        """Make the live routes match ``spec``: weights in place, new versions loaded first."""
        if spec == self.spec:
            return
        current = {r.name: r for r in self.service.routes}
        routes = []
        for route in spec.routes:
            state = current.get(route.name)
            if state is None:
                state = _route_state(self.manager.settings, spec, route, self.poll)
                state.served.load()
                if self.service.batching is not None:
                    state.batcher = self.service._batcher(state)
            state.weight, state.role = route.weight, route.role
            routes.append(state)
        self.service.routes = routes  # one assignment: a request sees old or new, whole
        self.spec = spec
        self.rolled_back = False

    def check(self, route: RouteState, ok: bool, seconds: float) -> None:
        if route.role != "canary" or self.rolled_back:
            return
        policy = self.spec.policy
        primary = next((r for r in self.service.routes if r.role == "primary"), None)
        if primary is None or route.requests < policy.min_requests:
            return
        why = None
        if route.error_rate > primary.error_rate + policy.error_margin:
            why = (
                f"canary {route.name} error rate {route.error_rate:.1%} exceeds the primary's "
                f"{primary.error_rate:.1%} by more than {policy.error_margin:.1%}"
            )
        elif route.requests % 10 == 0:  # a sort of both routes' latest: not every request
            why = policy.slower(route, primary)
        if why is None:
            return
        with self._lock:
            if self.rolled_back:
                return
            self.rolled_back = True
        route.weight = 0.0  # at once, before the store is written
        threading.Thread(target=self._record, args=(why,), daemon=True).start()

    def _record(self, why: str) -> None:
        try:
            self.manager.rollback(self.service.endpoint, reason=why, automatic=True)
        except NotFound:
            return
        if self.on_rollback is not None:
            self.on_rollback(self.service.endpoint, why)
        log.warning("deployment %s rolled back: %s", self.service.endpoint, why)
