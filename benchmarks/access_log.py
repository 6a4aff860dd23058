"""Request ids and the access log: what they add to each request of the model server.

    python benchmarks/access_log.py [--requests N] [--json]

Drives the request-id middleware (``ferryml.server._access.RequestIds``) around an ASGI
app that answers at once, in one event loop, three ways: without the middleware, with it
but no access log (``ferry serve --access-log off``), and with the JSON access log (the
default) writing to a temporary file. Reports the median and p99 of per-request time and
the difference to the bare app: the cost the middleware adds to every request. Requests
carry an ``X-Request-Id`` half of the time (checked and echoed) and get a new UUID
otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from ferryml.server._access import AccessLog, RequestIds


async def _bare(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def _run(app: Any, n: int) -> list[float]:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        return None

    given = [(b"x-request-id", b"order-7f3a:retry-1")]
    times = []
    for i in range(n):
        scope = {
            "type": "http",
            "method": "POST",
            "path": "/v1/models/churn/predict",
            "headers": given if i % 2 else [],
        }
        started = time.perf_counter()
        await app(scope, receive, send)
        times.append(time.perf_counter() - started)
    return times


def _labels(scope: Any) -> tuple[str, str]:
    return "/v1/models/{name}/predict", "churn"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp, open(os.path.join(tmp, "access.log"), "w") as out:
        log = AccessLog(out, max_pending=args.requests + 1).open()
        apps = {
            "bare app": _bare,
            "request ids, --access-log off": RequestIds(_bare, labels=_labels),
            "request ids, JSON access log": RequestIds(_bare, labels=_labels, access_log=log),
        }
        for name, app in apps.items():
            asyncio.run(_run(app, 2_000))  # warm up
            times = sorted(asyncio.run(_run(app, args.requests)))
            figures[name] = {
                "median_us": statistics.median(times) * 1e6,
                "p99_us": times[int(len(times) * 0.99)] * 1e6,
            }
        log.close()
        lines = Path(out.name).read_text().count("\n")
    bare = figures["bare app"]["median_us"]
    for figure in figures.values():
        figure["added_median_us"] = figure["median_us"] - bare
    if args.json:
        print(json.dumps({"requests": args.requests, "lines": lines, "figures": figures}))
        return
    print(
        f"{args.requests:,} requests each; {lines:,} access log lines written; load average "
        f"{os.getloadavg()[0]:.1f}"
    )
    for name, f in figures.items():
        print(
            f"  {name:32s} median {f['median_us']:6.1f} µs  p99 {f['p99_us']:6.1f} µs  "
            f"added {f['added_median_us']:5.1f} µs"
        )


if __name__ == "__main__":
    main()
