"""A server that answers the mlflow client's tracking calls with canned, valid answers and
stores nothing: the floor of benchmarks/mlflow_compat.py (--floor). Timed against it, a
workload costs what the client itself does (build, send, parse) plus one HTTP round trip
through the same HTTP stack as `ferry server` (uvicorn, httptools, uvloop); no server can
answer the same calls faster.

Usage: python _mlflow_canned_server.py PORT SOURCE_URL
Before it listens, it asks the running server at SOURCE_URL (with MLFLOW_TRACKING_TOKEN)
for the answers of the benchmark's two searches of the "bench" experiment, and replays
those bytes: the client parses exactly what it parsed from that server. Every other call
gets a minimal valid answer (a run, an experiment, or {}). A bare ASGI app, no framework.
"""

import json
import os
import sys
import urllib.request
import uuid
from typing import Any
from urllib.parse import parse_qsl, quote

import uvicorn
from _search_workload import QUERIES

PREFIX = "/api/2.0/mlflow/"
NOW = 1_700_000_000_000


def experiment(exp_id: str, name: str) -> dict[str, Any]:
    return {"experiment_id": exp_id, "name": name, "lifecycle_stage": "active",
            "artifact_location": f"mlflow-artifacts:/{exp_id}", "creation_time": NOW,
            "last_update_time": NOW}  # fmt: skip


def run_info(run_id: str, exp_id: str = "1", status: str = "RUNNING") -> dict[str, Any]:
    return {"run_id": run_id, "run_uuid": run_id, "experiment_id": exp_id, "run_name": "r",
            "user_id": "bench", "status": status, "start_time": NOW,
            "artifact_uri": f"mlflow-artifacts:/{exp_id}/{run_id}/artifacts",
            "lifecycle_stage": "active"}  # fmt: skip


def fetch(url: str, path: str, body: dict[str, Any] | None = None) -> bytes:
    headers = {"Authorization": f"Bearer {os.environ.get('MLFLOW_TRACKING_TOKEN', '')}",
               "Content-Type": "application/json"}  # fmt: skip
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url + PREFIX + path, data, headers)
    with urllib.request.urlopen(request, timeout=300) as answer:
        return bytes(answer.read())


def recorded(url: str) -> tuple[str, dict[str, bytes]]:
    """The bench experiment's id at ``url``, and its answers to the benchmark's searches
    ({"filter": ..., "order": ...}) as the mlflow client asks them."""
    found = json.loads(fetch(url, "experiments/get-by-name?experiment_name=" + quote("bench")))
    exp_id = found["experiment"]["experiment_id"]
    answers = {}
    for name, kw in QUERIES:
        body = {
            "experiment_ids": [exp_id],
            "max_results": 1000,
            "run_view_type": "ACTIVE_ONLY",
            "filter": kw.get("filter_string", ""),
            "order_by": kw.get("order_by", []),
        }
        answers[name] = fetch(url, "runs/search", body)
    return exp_id, answers


class Canned:
    def __init__(self, bench_id: str, searches: dict[str, bytes]) -> None:
        self.search = searches
        self.experiments: dict[str, str] = {"bench": bench_id}

    def answer(self, route: str, query: dict[str, str], body: Any) -> Any:
        if route == "experiments/get-by-name":
            name = query["experiment_name"]
            exp_id = self.experiments.setdefault(name, str(1000 + len(self.experiments)))
            return {"experiment": experiment(exp_id, name)}
        if route == "experiments/get":
            return {"experiment": experiment(query["experiment_id"], "x")}
        if route == "experiments/create":
            return {"experiment_id": self.experiments.setdefault(body["name"], "999")}
        if route == "runs/create":
            info = run_info(uuid.uuid4().hex, body.get("experiment_id", "1"))
            return {"run": {"info": info, "data": {"tags": body.get("tags", [])}}}
        if route == "runs/get":
            return {"run": {"info": run_info(query.get("run_id", "0" * 32)), "data": {}}}
        if route == "runs/update":
            return {"run_info": run_info(body["run_id"], status=body.get("status", "RUNNING"))}
        if route == "runs/search":
            return self.search["filter" if body.get("filter") else "order"]
        return {}  # log-metric, log-batch, set-tag, get-history (nothing stored): {}


def make_app(canned: Canned) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        raw = b"".join(chunks)
        body = json.loads(raw) if raw else {}
        query = dict(parse_qsl(scope["query_string"].decode()))
        path = scope["path"]
        route = path[len(PREFIX) :] if path.startswith(PREFIX) else path
        found = canned.answer(route, query, body)
        data = found if isinstance(found, bytes) else json.dumps(found).encode()
        headers = [(b"content-type", b"application/json"),
                   (b"content-length", str(len(data)).encode())]  # fmt: skip
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": data})

    return app


if __name__ == "__main__":
    port, source = int(sys.argv[1]), sys.argv[2]
    canned = Canned(*recorded(source))
    uvicorn.run(make_app(canned), host="127.0.0.1", port=port, http="httptools",
                loop="uvloop", log_level="warning", access_log=False)  # fmt: skip
