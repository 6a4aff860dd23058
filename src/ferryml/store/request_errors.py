"""Failed prediction requests: what the model server answered with an error (bad input,
a model that failed, overload), counted per deployment, route, model version, status and
second, with the last error's text. The prediction log holds answered predictions only;
these counts sit beside it so the deployment page can show errors per route without
monitors, feedback or ``ferryml.predictions.load`` ever meeting a failed request.
``sql_request_errors`` implements the interface in SQL, ``http_loop`` over a team server;
the factory picks one by the store's URL."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["ERROR_TEXT_LIMIT", "RequestErrorCount", "RequestErrorStore", "RequestErrors"]

ERROR_TEXT_LIMIT = 200  # characters of an error's text kept: enough to say what failed


@dataclass(frozen=True)
class RequestErrors:
    """Requests of one second that failed alike.

    Attributes:
        batch: the write that counted them (a write-ahead segment's name): storing the same
            batch again changes nothing.
        deployment: the served deployment (or model) name.
        route: the route that failed them; empty when the request was refused before a
            route was chosen (unreadable input, overload).
        version: the route's model version; 0 when no route was chosen.
        status: the HTTP status answered.
        time: the second's start, ms since the epoch.
        count: how many requests.
        error: the last one's error text, at most ``ERROR_TEXT_LIMIT`` characters.
    """

    batch: str
    deployment: str
    route: str
    version: int
    status: int
    time: int
    count: int
    error: str


@dataclass(frozen=True)
class RequestErrorCount:
    """Failed requests of a route and status in one slot of a span (``slot`` counts
    slots of the asked width from the span's start)."""

    route: str
    version: int
    status: int
    slot: int
    count: int


class RequestErrorStore(Protocol):
    """Counts of failed prediction requests, per deployment."""

    def create_request_errors(self, rows: Sequence[RequestErrors]) -> None:
        """Store counts, all or none; a row of a batch stored already is skipped."""
        ...

    def count_request_errors(
        self, deployment: str, *, since: int, until: int, width_ms: int
    ) -> list[RequestErrorCount]:
        """Failures with ``since <= time < until`` (ms), summed per route, version, status
        and slot of ``width_ms``."""
        ...

    def latest_request_errors(
        self, deployment: str, *, since: int, limit: int = 100, route: str | None = None
    ) -> list[RequestErrors]:
        """The latest rows since ``since`` (ms), newest first, of one ``route`` or all: the
        errors' texts."""
        ...

    def close(self) -> None: ...
