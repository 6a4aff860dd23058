"""A limit on request bodies, checked before they are read."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.responses import Response

from ferryml.server._errors import error_response

__all__ = ["BodyLimit"]


class BodyLimit:
    """Answer 413 to a body announced as over the limit, before reading it. A plain ASGI
    middleware: Starlette's ``BaseHTTPMiddleware`` costs a fifth of a small request."""

    def __init__(
        self,
        app: Any,
        max_body: int,
        exempt: tuple[str, ...] = (),
        respond: Callable[[Any, int, str, str], Response] | None = None,
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.exempt = exempt  # path prefixes that stream bodies of any size
        self.respond = respond  # (scope, status, message, kind): the app's own error answer

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not scope["path"].startswith(self.exempt):
            for name, value in scope["headers"]:
                if name == b"content-length" and (
                    not value.isdigit() or int(value) > self.max_body
                ):
                    message = (
                        f"The body is over the limit of {self.max_body} bytes; send fewer "
                        "rows per request."
                    )
                    if self.respond is None:
                        response = error_response(413, message, "BodyTooLarge")
                    else:
                        response = self.respond(scope, 413, message, "BodyTooLarge")
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)
