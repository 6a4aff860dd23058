"""Serving benchmark: ferryml's model server against `mlflow models serve` and BentoML,
serving the same model, measured by the same load generator, in one run.

    python benchmarks/serving.py [--quick] [--json]

One scikit-learn pipeline (StandardScaler + LogisticRegression on the breast cancer data) is
trained once and pickled; ferryml registers that object, MLflow saves it with
mlflow.sklearn.save_model, BentoML loads the pickle in a @bentoml.service. Peers run from
their own venvs (benchmarks/.cache/mlflow-venv, benchmarks/.cache/bentoml-venv, made on
first use with the project's scikit-learn, numpy and pandas versions). Every server listens
on 127.0.0.1 only, is started in a process group of its own and stopped after its
workloads, even on failure. Load: Debian's `wrk` with _serving_wrk.lua (installed with
apt-get when missing), else _serving_loadgen.py (stdlib asyncio) in its own process; both
bounded in time and in count. Every server's answers are checked against the model's own
predictions before it is measured. Stdlib only.

Workloads: 1 row per request at 32 connections (ferryml's default gathers the requests
that arrive while it predicts, without waiting); the same with micro-batching that waits
(ferryml --batch --max-batch 64 --max-wait-ms 2; BentoML batchable=True, max_batch_size=64, its
default max_latency_ms); 100 rows per request at 8 connections; ferryml's prediction log
on (the default) and off; start of the server process to its first answered prediction
(polled every 10 ms, each server started alone); one request at a time over one keep-alive
connection with ferryml --workers 1 and 2, plus controls on the asyncio loop (where stock
uvicorn multi-worker sockets keep Nagle on) to show the measurement sees delayed-ACK waits.
The servers compared in a workload are up together and measured in short turns (rounds),
so drift in the machine's load (other work runs on it) hits them alike.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import http.client
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _serving_scale as scale  # noqa: E402

from tracking import MLFLOW_ENV, MLFLOW_PY, ensure_mlflow, log  # noqa: E402

FERRY_PY = sys.executable  # this script runs from the repo's .venv
FERRY_BIN = str(Path(sys.executable).parent / "ferry")
BENTO_VENV = HERE / ".cache" / "bentoml-venv"
BENTO_PY = str(BENTO_VENV / "bin" / "python")
BENTO_BIN = str(BENTO_VENV / "bin" / "bentoml")
BENTO_PIN = "1.4.40"
BENTO_ENV = {"BENTOML_DO_NOT_TRACK": "True", "BENTOML_HOME": "{tmp}/bentoml-home"}
LUA = HERE / "_serving_wrk.lua"
HOST = "127.0.0.1"
# Seconds of load per server and workload, taken in `rounds` turns; `warmup` before each.
FULL = {"row1_s": 15, "row100_s": 9, "seq_s": 6, "rounds": 3, "warmup": 2,
        "max_requests": 1_000_000}  # fmt: skip
QUICK = {"row1_s": 4, "row100_s": 2, "seq_s": 2, "rounds": 2, "warmup": 1,
         "max_requests": 200_000}  # fmt: skip
COLD_START_LIMIT_S = 120  # a server not answering by then has failed
COLD_START_TARGET_S = 2.0
SEQ_OK_MS = 10.0  # a delayed-ACK wait is ~40 ms; an answer of a tiny model is well under this
LOG_COST_TARGET = 0.10

LABEL = {"ferryml": "ferryml", "mlflow": "MLflow", "bentoml": "BentoML"}


# -- environments --------------------------------------------------------------------------


def run_text(argv: list[str], **kw: Any) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True, **kw).stdout.strip()


def project_versions() -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json; print(json.dumps({p: m.version(p) for p in "
        "('scikit-learn', 'numpy', 'pandas', 'ferryml', 'uvicorn', 'fastapi')}))"
    )
    return json.loads(run_text([FERRY_PY, "-c", code]))


def ensure_bentoml(pins: dict[str, str]) -> str:
    """Make BentoML's venv if missing, with the project's scikit-learn, numpy and pandas
    versions (the model is a pickle); return the installed BentoML version."""
    marker = BENTO_VENV / ".installed"  # written last, so a half-made venv is made again
    want = f"bentoml=={BENTO_PIN} " + " ".join(f"{k}=={v}" for k, v in sorted(pins.items()))
    if not marker.exists() or marker.read_text().split("\n", 1)[-1] != want:
        shutil.rmtree(BENTO_VENV, ignore_errors=True)
        log(f"creating {BENTO_VENV} (once): pip install {want} ...")
        venv.create(BENTO_VENV, with_pip=True)
        pip = [BENTO_PY, "-m", "pip", "install", "--quiet", *want.split()]
        if subprocess.run(pip, check=False, stdout=sys.stderr).returncode != 0:
            log("pinned install failed; trying bentoml 1.4.x with the same scikit-learn")
            pip = [
                BENTO_PY,
                "-m",
                "pip",
                "install",
                "--quiet",
                "bentoml>=1.4,<1.5",
                f"scikit-learn=={pins['scikit-learn']}",
            ]
            if subprocess.run(pip, check=False, stdout=sys.stderr).returncode != 0:
                sys.exit(f"could not install bentoml into {BENTO_VENV}")
        code = "import importlib.metadata as m; print(m.version('bentoml'))"
        marker.write_text(run_text([BENTO_PY, "-c", code]) + "\n" + want)
    version = marker.read_text().split("\n", 1)[0]
    if version != BENTO_PIN:
        log(f"note: bentoml {BENTO_PIN} was not available; using bentoml {version}")
    return version


def venv_versions(py: str) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json; print(json.dumps({p: m.version(p) for p in "
        "('scikit-learn', 'numpy', 'pandas', 'uvicorn')}))"
    )
    return json.loads(run_text([py, "-c", code]))


def ensure_wrk() -> str | None:
    """wrk's path, installing Debian's package when missing; None when it cannot be had."""
    found = shutil.which("wrk")
    if found:
        return found
    if shutil.which("apt-get") and os.geteuid() == 0:
        log("wrk is missing: installing it with `apt-get install -y wrk` ...")
        cmd = ["apt-get", "install", "-y", "wrk"]
        if subprocess.run(cmd, capture_output=True, check=False, timeout=300).returncode != 0:
            subprocess.run(["apt-get", "update"], capture_output=True, check=False, timeout=300)
            subprocess.run(cmd, capture_output=True, check=False, timeout=300)
        found = shutil.which("wrk")
    if not found:
        log("wrk cannot be had: using the asyncio load generator (_serving_loadgen.py)")
    return found


# -- servers -------------------------------------------------------------------------------

LIVE: list[Server] = []


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc), so servers that start their workers in
    sessions of their own are stopped too."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def post(port: int, path: str, body: bytes, timeout: float = 10.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("POST", path, body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


class Server:
    """One server process: started in its own process group, timed to its first answered
    prediction, checked, stopped (SIGTERM to the group, then SIGKILL to what is left)."""

    def __init__(
        self,
        side: str,
        name: str,
        argv: list[str],
        env: dict[str, str],
        cwd: str,
        path: str,
        bodies: dict[str, bytes],
        expected: list[int],
    ) -> None:
        self.side, self.name, self.argv, self.env, self.cwd = side, name, argv, env, cwd
        self.path, self.bodies, self.expected = path, bodies, expected
        self.port = free_port()
        self.argv = [a.replace("{port}", str(self.port)) for a in argv]
        self.proc: subprocess.Popen[bytes] | None = None
        self.logfile = Path(cwd) / f"{name}.log"
        self.cold_start_s: float | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}{self.path}"

    def predictions(self, raw: bytes) -> list[Any]:
        doc = json.loads(raw)
        return doc if isinstance(doc, list) else doc["predictions"]

    def spawn(self) -> float:
        """Start the process in a group of its own; the time it started."""
        log(f"  starting {self.name}: {' '.join(self.argv)}")
        out = open(self.logfile, "wb")  # noqa: SIM115  (closed with the process)
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        LIVE.append(self)
        out.close()
        return t0

    def start(self) -> float:
        t0 = self.spawn()
        assert self.proc is not None
        body = self.bodies["row1"]
        status, raw = 0, b""
        for _ in range(int(COLD_START_LIMIT_S / 0.01)):  # every 10 ms, bounded in count
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}): {self.tail()}")
            try:
                status, raw = post(self.port, self.path, body, timeout=5)
            except (OSError, http.client.HTTPException):
                status = 0
            if status == 200:
                break
            if time.perf_counter() - t0 > COLD_START_LIMIT_S:
                break
            time.sleep(0.01)
        if status != 200:
            raise RuntimeError(
                f"{self.name} did not answer in {COLD_START_LIMIT_S} s "
                f"(last status {status}): {self.tail()}"
            )
        self.cold_start_s = time.perf_counter() - t0
        self.check(raw, 1)
        status, raw = post(self.port, self.path, self.bodies["row100"], timeout=30)
        if status != 200:
            raise RuntimeError(f"{self.name}: 100 rows answered {status}: {raw[:300]!r}")
        self.check(raw, 100)
        log(f"  {self.name} answered after {self.cold_start_s:.2f} s; answers check out")
        return self.cold_start_s

    def check(self, raw: bytes, n: int) -> None:
        got = [int(v) for v in self.predictions(raw)]
        if got != self.expected[:n]:
            raise RuntimeError(f"{self.name} answered wrongly for {n} rows: {got[:10]} ...")

    def tail(self) -> str:
        try:
            return self.logfile.read_text(errors="replace")[-1500:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        with contextlib.suppress(ValueError):
            LIVE.remove(self)
        below = descendants(proc.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        for pid in below + descendants(proc.pid):  # any that left the group
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def stop_all(*_: object) -> None:
    for server in list(LIVE):
        with contextlib.suppress(Exception):
            server.stop()


# -- load ----------------------------------------------------------------------------------


class Load:
    def __init__(self, wrk: str | None, tmp: Path, cfg: dict[str, Any]) -> None:
        self.wrk, self.tmp, self.cfg = wrk, tmp, cfg

    def run(
        self, url: str, body_file: Path, conns: int, seconds: float, threads: int = 2
    ) -> dict[str, Any]:
        """One bounded load run; figures: rps, p50/p99 ms, errors (non-2xx + socket)."""
        cap = self.cfg["max_requests"]
        threads = min(threads, conns)
        if self.wrk:
            argv = [
                self.wrk,
                f"-t{threads}",
                f"-c{conns}",
                f"-d{round(seconds)}s",
                "--timeout",
                "10s",
                "-s",
                str(LUA),
                url,
                "--",
                str(body_file),
                str(math.ceil(cap / threads)),
            ]
        else:
            argv = [
                FERRY_PY,
                str(HERE / "_serving_loadgen.py"),
                url,
                str(body_file),
                str(conns),
                str(seconds),
                str(cap),
                "10",
            ]
        p = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
        r = scale.figures(p, "load generator")
        codes = {int(k): v for k, v in r["codes"].items()}
        non2xx = sum(n for s, n in codes.items() if not 200 <= s < 300)
        socket_errors = r["connect"] + r["read"] + r["write"] + r["timeout"]
        ok = sum(n for s, n in codes.items() if 200 <= s < 300)
        return {
            "rps": ok / (r["duration_us"] / 1e6),  # answered with 2xx, per second
            "all_rps": r["requests"] / (r["duration_us"] / 1e6),
            "p50_ms": r["p50_us"] / 1e3,
            "p99_ms": r["p99_us"] / 1e3,
            "max_ms": r["max_us"] / 1e3,
            "errors": non2xx + socket_errors,
            "non2xx": non2xx,
            "socket_errors": socket_errors,
            "codes": codes,
            "requests": r["requests"],
            "seconds": r["duration_us"] / 1e6,
            "conns": conns,
        }

    def warm(self, server: Server, key: str, conns: int, threads: int) -> None:
        if self.cfg["warmup"]:
            body_file = self.tmp / f"{server.side}-{key}.json"
            self.run(server.url, body_file, conns, self.cfg["warmup"], threads)

    def rotate(
        self,
        workload: str,
        servers: dict[str, Server],
        key: str,
        conns: int,
        seconds: float,
        threads: int = 2,
    ) -> dict[str, dict[str, Any]]:
        """``seconds`` of load on each server, in ``rounds`` short runs taken in turn (each
        round in another order), so drift in the machine's load hits every server alike.
        A server whose run fails leaves the rotation; its error is raised at the end."""
        rounds = self.cfg["rounds"]
        per_round = max(1, round(seconds / rounds))  # wrk takes whole seconds
        live = dict(servers)
        runs: dict[str, list[dict[str, Any]]] = {who: [] for who in live}
        failed: dict[str, str] = {}
        for who, server in list(live.items()):
            try:
                self.warm(server, key, conns, threads)
            except Exception as e:  # noqa: BLE001
                failed[who] = f"{workload}: {e}"
                del live[who]
        for i in range(rounds):
            order = list(live.items())
            order = order[i % len(order) :] + order[: i % len(order)] if order else order
            for who, server in order:
                if who not in live:
                    continue
                body_file = self.tmp / f"{server.side}-{key}.json"
                try:
                    r = self.run(server.url, body_file, conns, per_round, threads)
                except Exception as e:  # noqa: BLE001
                    failed[who] = f"{workload}: {e}"
                    del live[who]
                    continue
                runs[who].append(r)
        out = {}
        for who, rs in runs.items():
            if rs and who not in failed:
                out[who] = pooled(rs)
                r = out[who]
                log(
                    f"    {workload:<7} {who:<26} c{conns}: {r['rps']:>7,.0f} req/s, "
                    f"p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, "
                    f"errors {r['errors']} {r['codes']}"
                )
        if failed:
            raise RuntimeError("; ".join(f"{who}: {err}" for who, err in failed.items()))
        return out


def pooled(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Rounds of one server: answers and errors over all their time; p50/p99 the median of
    the rounds' (wrk gives percentiles, not the histogram)."""
    seconds = sum(r["seconds"] for r in runs)
    codes: dict[int, int] = {}
    for r in runs:
        for status, n in r["codes"].items():
            codes[status] = codes.get(status, 0) + n
    ok = sum(n for status, n in codes.items() if 200 <= status < 300)
    return {
        "rps": ok / seconds,
        "all_rps": sum(r["requests"] for r in runs) / seconds,
        "p50_ms": statistics.median(r["p50_ms"] for r in runs),
        "p99_ms": statistics.median(r["p99_ms"] for r in runs),
        "max_ms": max(r["max_ms"] for r in runs),
        "errors": sum(r["errors"] for r in runs),
        "non2xx": sum(r["non2xx"] for r in runs),
        "socket_errors": sum(r["socket_errors"] for r in runs),
        "codes": codes,
        "requests": sum(r["requests"] for r in runs),
        "seconds": seconds,
        "conns": runs[0]["conns"],
        "rounds": [
            {k: r[k] for k in ("rps", "p50_ms", "p99_ms", "errors", "seconds")} for r in runs
        ],
    }


# -- the run -------------------------------------------------------------------------------


def prepare(tmp: Path) -> dict[str, Any]:
    """Train once; save the model for each tool; write every request body."""
    log("training the model once, registering it with ferryml ...")
    env = {**os.environ, "FERRY_HOME": str(tmp / "ferry-home")}
    out = run_text([FERRY_PY, str(HERE / "_serving_model.py"), str(tmp)], env=env, cwd=tmp)
    info = json.loads(out.splitlines()[-1])
    log("saving the same model with mlflow.sklearn.save_model ...")
    env = {**os.environ, **MLFLOW_ENV}
    argv = [MLFLOW_PY, str(HERE / "_serving_mlflow_save.py"), str(tmp / "model.joblib")]
    out = run_text([*argv, str(tmp / "data.json"), str(tmp / "mlflow-model")], env=env, cwd=tmp)
    info["mlflow_save"] = json.loads(out.splitlines()[-1])
    (tmp / "bento").mkdir()
    shutil.copy(HERE / "_serving_bento_service.py", tmp / "bento" / "service.py")
    data = json.loads((tmp / "data.json").read_text())
    bodies: dict[str, dict[str, bytes]] = {}
    for side, key in (
        ("ferryml", "records"),
        ("mlflow", "dataframe_records"),
        ("bentoml", "records"),
    ):
        bodies[side] = {}
        for name, n in (("row1", 1), ("row100", 100)):
            body = json.dumps({key: data["rows"][:n]}).encode()
            (tmp / f"{side}-{name}.json").write_bytes(body)
            bodies[side][name] = body
    info["bodies"] = bodies
    info["expected"] = data["expected"]
    return info


def server_makers(tmp: Path, info: dict[str, Any]) -> dict[str, Any]:
    """Constructors of every server of the run (not started)."""
    ferry_env = {**os.environ, "FERRY_HOME": str(tmp / "ferry-home")}
    bento_env = {
        **os.environ,
        **{k: v.format(tmp=tmp) for k, v in BENTO_ENV.items()},
        "BENCH_MODEL_PATH": str(tmp / "model.joblib"),
        "PATH": f"{BENTO_VENV / 'bin'}:{os.environ['PATH']}",
    }
    # `mlflow models serve` runs `uvicorn` from PATH, as from an activated venv.
    mlflow_bin_dir = str(Path(MLFLOW_PY).parent)
    mlflow_env = {**os.environ, **MLFLOW_ENV, "PATH": f"{mlflow_bin_dir}:{os.environ['PATH']}"}
    expected, b = info["expected"], info["bodies"]

    def ferry(name: str, *opts: str, control: str | None = None) -> Server:
        """``ferry serve``; with ``control`` ("stock" or "ferryml"), the same on the asyncio
        loop with uvicorn's stock protocol or ferryml's NoDelayHttp (see
        _serving_uvicorn_control.py)."""
        head = [FERRY_PY, str(HERE / "_serving_uvicorn_control.py")] if control else [FERRY_BIN]
        argv = [*head, "serve", "cancer@champion", "--port", "{port}", *opts]
        env = {**ferry_env, "BENCH_PROTOCOL": control} if control else ferry_env
        path = "/v1/models/cancer/predict"
        return Server("ferryml", name, argv, env, str(tmp), path, b["ferryml"], expected)

    def mlflow(workers: int = 1) -> Server:
        argv = [str(Path(mlflow_bin_dir) / "mlflow"), "models", "serve"]
        argv += ["-m", str(tmp / "mlflow-model"), "-h", HOST, "-p", "{port}"]
        argv += ["--env-manager", "local", "--workers", str(workers)]
        name = "mlflow models serve" + (f" --workers {workers}" if workers > 1 else "")
        return Server(
            "mlflow", name, argv, mlflow_env, str(tmp), "/invocations", b["mlflow"], expected
        )

    def bento(cls: str) -> Server:
        argv = [BENTO_BIN, "serve", f"service:{cls}", "--host", HOST, "--port", "{port}"]
        name = f"bentoml serve service:{cls}"
        cwd = str(tmp / "bento")
        return Server("bentoml", name, argv, bento_env, cwd, "/predict", b["bentoml"], expected)

    return {"ferry": ferry, "mlflow": mlflow, "bento": bento}


def start_into(res: dict[str, Any], group: dict[str, Server], who: str, server: Server) -> None:
    """Start ``server`` into ``group``, its cold start into ``res``; a failure is reported
    in ``res`` and the others still run."""
    try:
        res["cold_start"][who] = server.start()
        group[who] = server
    except Exception as e:  # noqa: BLE001
        log(f"  {who} FAILED: {e}")
        res["errors"][who] = str(e)[:2000]
        server.stop()


def run_all(tmp: Path, cfg: dict[str, Any], load: Load, info: dict[str, Any]) -> dict[str, Any]:
    """Every workload, in three groups of servers up at once (each server started alone, so
    its cold start is its own), measured in turns; every group stopped before the next.
    A server or workload that fails leaves its figures out and its error in."""
    make = server_makers(tmp, info)
    res: dict[str, Any] = {"cold_start": {}, "errors": {}, "runs": {}}

    def start(group: dict[str, Server], who: str, server: Server) -> None:
        start_into(res, group, who, server)

    def measure(
        workload: str,
        group: dict[str, Server],
        key: str,
        conns: int,
        seconds: float,
        threads: int = 2,
    ) -> None:
        log(
            f"  {workload}: {key}, {conns} connection(s), {seconds:g} s each in "
            f"{cfg['rounds']} rounds"
        )
        try:
            out = load.rotate(workload, group, key, conns, seconds, threads)
            res["runs"].setdefault(workload, {}).update(out)
        except Exception as e:  # noqa: BLE001
            log(f"  {workload} FAILED: {e}")
            res["errors"][workload] = str(e)[:2000]

    def group_of(makers: list[tuple[str, Any]]) -> dict[str, Server]:
        group: dict[str, Server] = {}
        for who, maker in makers:
            start(group, who, maker())
        return group

    log(
        "group 1: ferryml (defaults: 1 worker, prediction log on), ferryml --no-log, "
        "mlflow models serve (1 worker, its default), BentoML ..."
    )
    group = group_of(
        [
            ("ferryml", lambda: make["ferry"]("ferry serve")),
            ("mlflow", make["mlflow"]),
            ("bentoml", lambda: make["bento"]("Plain")),
            ("ferryml --no-log", lambda: make["ferry"]("ferry serve --no-log", "--no-log")),
        ]
    )
    try:
        measure("row1", group, "row1", 32, cfg["row1_s"])
        plain = {k: v for k, v in group.items() if k != "ferryml --no-log"}
        measure("row100", plain, "row100", 8, cfg["row100_s"])
        measure("seq", plain, "row1", 1, cfg["seq_s"], threads=1)
    finally:
        for server in group.values():
            server.stop()

    log(
        "group 2: micro-batching: ferryml --batch --max-batch 64 --max-wait-ms 2, "
        "BentoML batchable=True, max_batch_size=64 ..."
    )
    batch_opts = ("--batch", "--max-batch", "64", "--max-wait-ms", "2")
    group = group_of(
        [
            ("ferryml --batch", lambda: make["ferry"]("ferry serve --batch", *batch_opts)),
            ("bentoml batchable", lambda: make["bento"]("Batched")),
        ]
    )
    try:
        measure("batch", group, "row1", 32, cfg["row1_s"])
    finally:
        for server in group.values():
            server.stop()

    # uvicorn leaves Nagle on in its multi-worker sockets on the asyncio loop, not on uvloop
    # (which ferry serve uses): the controls run ferryml on the asyncio loop, with uvicorn's
    # stock protocol (must show the ~40 ms wait) and with ferryml's NoDelayHttp (must not).
    log("group 3: ferryml --workers 2, and controls on the asyncio loop ...")
    w2 = ("--workers", "2")
    group = group_of(
        [
            ("ferryml --workers 2", lambda: make["ferry"]("ferry serve --workers 2", *w2)),
            (
                "control: asyncio, stock",
                lambda: make["ferry"]("control: stock", *w2, control="stock"),
            ),
            (
                "control: asyncio, NoDelayHttp",
                lambda: make["ferry"]("control: NoDelayHttp", *w2, control="ferryml"),
            ),
        ]
    )
    try:
        measure("seq", group, "row1", 1, cfg["seq_s"], threads=1)
        only = {k: v for k, v in group.items() if k == "ferryml --workers 2"}
        measure("row1", only, "row1", 32, cfg["row100_s"])
    finally:
        for server in group.values():
            server.stop()
    return res


def run_open_loop(tmp: Path, cfg: dict[str, Any], info: dict[str, Any]) -> dict[str, Any]:
    """The highest constant arrival rate each server answers with p99 under 50 ms and no
    error, one and two workers each; the servers are up together, searched one by one."""
    make = server_makers(tmp, info)
    plan = scale.OPEN_LOOP["quick" if cfg is QUICK else "full"]
    res: dict[str, Any] = {"cold_start": {}, "errors": {}, "open_loop": {}}
    makers = [
        ("ferryml", lambda: make["ferry"]("ferry serve")),
        ("ferryml --workers 2", lambda: make["ferry"]("ferry serve --workers 2", "--workers", "2")),
        ("mlflow", make["mlflow"]),
        ("mlflow --workers 2", lambda: make["mlflow"](2)),
        ("bentoml", lambda: make["bento"]("Plain")),
        ("bentoml workers=2", lambda: make["bento"]("Plain2")),
    ]
    group: dict[str, Server] = {}
    try:
        for who, maker in makers:
            start_into(res, group, who, maker())
        for who, server in group.items():
            body = tmp / f"{server.side}-row1.json"

            def run(rate: float, server: Server = server, body: Path = body) -> dict[str, Any]:
                r = scale.open_loop_run(FERRY_PY, server.url, body, rate, plan["seconds"])
                log(
                    f"    open loop {server.name:<34} {rate:>7,.0f}/s: p50 {r['p50_ms']:.1f} "
                    f"ms, p99 {r['p99_ms']:.1f} ms, errors {r['errors']}, sent "
                    f"{r['sent_rate']:,.0f}/s (lag {r['lag_ms']:.0f} ms), "
                    f"load {os.getloadavg()[0]:.1f}"
                )
                time.sleep(1)  # the queue of a failed rate drains before the next
                return r

            try:
                scale.open_loop_run(FERRY_PY, server.url, body, scale.START_RATE, 1)  # warm-up
                res["open_loop"][who] = scale.max_rate(run, plan["bisect"])
            except Exception as e:  # noqa: BLE001
                log(f"  open loop {who} FAILED: {e}")
                res["errors"][f"open loop {who}"] = str(e)[:2000]
    finally:
        for server in group.values():
            server.stop()
    return res


def run_connections(
    tmp: Path, cfg: dict[str, Any], info: dict[str, Any], wrk: str | None, connections: int
) -> dict[str, Any]:
    """ferryml with one and two workers, each held at ``connections`` keep-alive
    connections sending single-row requests (wrk, 2 threads)."""
    if wrk is None:
        sys.exit("--connections needs wrk (apt-get install wrk)")
    make = server_makers(tmp, info)
    res: dict[str, Any] = {"cold_start": {}, "errors": {}, "connections": {}}
    seconds = 20 if cfg is FULL else 8
    for who, opts in (("ferryml", ()), ("ferryml --workers 2", ("--workers", "2"))):
        server = make["ferry"](f"ferry serve {' '.join(opts)}".strip(), *opts)
        try:
            res["cold_start"][who] = server.start()
            log(f"  {who}: {connections:,} connections for {seconds} s ...")
            r = scale.connections_run(
                wrk, LUA, server.url, tmp / "ferryml-row1.json", connections, seconds
            )
            r["loadavg_1min"] = os.getloadavg()[0]
            res["connections"][who] = r
            log(
                f"    {who}: {r['rps']:,.0f} req/s, p50 {r['p50_ms']:,.0f} ms, p99 "
                f"{r['p99_ms']:,.0f} ms, failed {r['failed']} {r['codes']} {r['socket_errors']}"
            )
        except Exception as e:  # noqa: BLE001
            log(f"  {who} FAILED: {e}")
            res["errors"][who] = str(e)[:2000]
        finally:
            server.stop()
    return res


# -- report --------------------------------------------------------------------------------


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b and a > 0 and b > 0 else None


def status(ok: bool | None) -> str:
    return "n/a" if ok is None else "PASS" if ok else "MISS"


def verdicts(res: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target: what it compares, the figures, PASS/MISS."""
    out: list[dict[str, Any]] = []
    runs = res["runs"]

    def add(name: str, target: str, value: str, ok: bool | None) -> None:
        out.append({"check": name, "target": target, "value": value, "status": status(ok)})

    row1 = runs.get("row1", {})
    f = row1.get("ferryml")
    for peer, times in (("mlflow", 10), ("bentoml", 5)):
        p = row1.get(peer)
        r = ratio(f and f["rps"], p and p["rps"])
        add(
            f"1 row c32: ferryml req/s / {LABEL[peer]}'s",
            f">= {times}x",
            f"{r:.1f}x" if r else "—",
            None if r is None else r >= times,
        )
        q = ratio(p and p["p99_ms"], f and f["p99_ms"])
        add(
            f"1 row c32: {LABEL[peer]}'s p99 / ferryml's",
            ">= 5x",
            f"{q:.1f}x" if q else "—",
            None if q is None else q >= 5,
        )
    add(
        "1 row c32: ferryml errors",
        "0",
        str(f["errors"]) if f else "—",
        None if f is None else f["errors"] == 0,
    )
    fb = runs.get("batch", {}).get("ferryml --batch")
    r = ratio(fb and fb["rps"], f and f["rps"])
    add(  # the default batches too (without waiting): shown, no target
        "batching c32: ferryml --max-wait-ms 2 req/s / default (no wait)",
        "shown",
        f"{r:.2f}x" if r else "—",
        None,
    )
    add(
        "batching c32: ferryml --batch errors",
        "0",
        str(fb["errors"]) if fb else "—",
        None if fb is None else fb["errors"] == 0,
    )
    off = row1.get("ferryml --no-log")
    cost = 1 - f["rps"] / off["rps"] if f and off else None
    add(
        "prediction log: throughput cost, 1 - on/off",
        f"<= {LOG_COST_TARGET:.0%}",
        f"{cost:+.1%}" if cost is not None else "—",
        None if cost is None else cost <= LOG_COST_TARGET,
    )
    cs = res["cold_start"].get("ferryml")
    add(
        "cold start: ferry serve to first prediction",
        f"< {COLD_START_TARGET_S:.0f} s",
        f"{cs:.2f} s" if cs else "—",
        None if cs is None else cs < COLD_START_TARGET_S,
    )
    seq = runs.get("seq", {})
    for who in ("ferryml", "ferryml --workers 2", "control: asyncio, NoDelayHttp"):
        s_ = seq.get(who)
        add(
            f"sequential, 1 conn: {who} p50",
            f"< {SEQ_OK_MS:.0f} ms",
            f"{s_['p50_ms']:.2f} ms" if s_ else "—",
            None if s_ is None else s_["p50_ms"] < SEQ_OK_MS,
        )
    sc = seq.get("control: asyncio, stock")
    add(
        "  control: asyncio, stock protocol shows the wait",
        ">= 30 ms",
        f"{sc['p50_ms']:.2f} ms" if sc else "—",
        None if sc is None else sc["p50_ms"] >= 30,
    )
    return out


def fmt(v: float | None, digits: int = 1) -> str:
    if v is None:
        return "—"
    return f"{v:,.{digits}f}" if abs(v) < 100 else f"{v:,.0f}"


TABLE = [  # workload, server key, rows per request, label
    ("row1", "ferryml", 1, "1 row, 32 conns"),
    ("row1", "ferryml --no-log", 1, "1 row, 32 conns"),
    ("row1", "ferryml --workers 2", 1, "1 row, 32 conns"),
    ("row1", "mlflow", 1, "1 row, 32 conns"),
    ("row1", "bentoml", 1, "1 row, 32 conns"),
    ("batch", "ferryml --batch", 1, "1 row, 32 conns, batching"),
    ("batch", "bentoml batchable", 1, "1 row, 32 conns, batching"),
    ("row100", "ferryml", 100, "100 rows, 8 conns"),
    ("row100", "mlflow", 100, "100 rows, 8 conns"),
    ("row100", "bentoml", 100, "100 rows, 8 conns"),
    ("seq", "ferryml", 1, "1 row, 1 conn, sequential"),
    ("seq", "ferryml --workers 2", 1, "1 row, 1 conn, sequential"),
    ("seq", "control: asyncio, stock", 1, "1 row, 1 conn, sequential"),
    ("seq", "control: asyncio, NoDelayHttp", 1, "1 row, 1 conn, sequential"),
    ("seq", "mlflow", 1, "1 row, 1 conn, sequential"),
    ("seq", "bentoml", 1, "1 row, 1 conn, sequential"),
]


def name_of(who: str) -> str:
    side, _, rest = who.partition(" ")
    return f"{LABEL.get(side, side)} {rest}".strip()


def table(res: dict[str, Any]) -> list[str]:
    head = ("workload", "server", "req/s", "rows/s", "p50 ms", "p99 ms", "errors", "answers")
    cells: list[tuple[str, ...]] = [head]
    for workload, who, rows, label in TABLE:
        r = res["runs"].get(workload, {}).get(who)
        if r is None:
            cells.append((label, name_of(who), "—", "—", "—", "—", "—", "failed/not run"))
            continue
        codes = ", ".join(f"{k}: {v}" for k, v in sorted(r["codes"].items()))
        errs = str(r["errors"]) + (f" ({r['socket_errors']} socket)" if r["socket_errors"] else "")
        cells.append(
            (
                label,
                name_of(who),
                fmt(r["rps"]),
                fmt(r["rps"] * rows),
                fmt(r["p50_ms"], 2),
                fmt(r["p99_ms"], 2),
                errs,
                codes,
            )
        )
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    cells.insert(1, tuple("-" * w for w in widths))
    return ["  ".join(x.ljust(w) for x, w in zip(c, widths, strict=True)).rstrip() for c in cells]


def report_scale(res: dict[str, Any], versions: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps({"versions": versions, "results": res}, indent=2, default=str))
        return
    print(f"versions: {json.dumps(versions)}")
    for what, err in res["errors"].items():
        print(f"{what} FAILED: {err.splitlines()[0] if err else '?'}")
    for who, r in res.get("connections", {}).items():
        print(
            f"{who}: {r['connections']:,} keep-alive connections, 1 row a request: "
            f"{r['rps']:,.0f} req/s, p50 {r['p50_ms']:,.0f} ms, p99 {r['p99_ms']:,.0f} ms, "
            f"max {r['max_ms']:,.0f} ms; {r['requests']:,} answers {r['codes']}, failed "
            f"{r['failed']} (socket errors {r['socket_errors']}); load average "
            f"{r['loadavg_1min']:.1f}"
        )
    if res.get("open_loop"):
        print(
            f"open loop, 1 row a request (constant arrival rate, at most {scale.MAX_CONNS} "
            "connections):"
        )
        for line in scale.rate_table(res["open_loop"]):
            print(line)
    la = res["loadavg_1min"]
    print(
        f"\nwhole run: {res['run_s']:.0f} s; machine load average (1 min) "
        f"{la['before']:.1f} before, {la['after']:.1f} after, on {os.cpu_count()} CPUs"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short runs, for a smoke test")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    ap.add_argument(
        "--connections",
        type=int,
        metavar="N",
        help="only: ferryml (1 and 2 workers) held at N keep-alive connections",
    )
    ap.add_argument(
        "--open-loop",
        action="store_true",
        help="only: the highest constant arrival rate with p99 under 50 ms, every server",
    )
    args = ap.parse_args()
    cfg = QUICK if args.quick else FULL
    if args.connections:
        limits = scale.raise_open_files(args.connections)
        log(f"open-files limit of this process and its children: {limits}")
    atexit.register(stop_all)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # runs atexit: servers stopped

    t_run = time.perf_counter()
    load_before = os.getloadavg()
    versions: dict[str, Any] = {"python": sys.version.split()[0]}
    versions["ferryml side"] = project_versions()
    pins = {k: versions["ferryml side"][k] for k in ("scikit-learn", "numpy", "pandas")}
    versions["mlflow"] = ensure_mlflow()
    versions["bentoml"] = ensure_bentoml(pins)
    versions["mlflow side"] = venv_versions(MLFLOW_PY)
    versions["bentoml side"] = venv_versions(BENTO_PY)
    wrk = ensure_wrk()
    if wrk:
        out = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
        versions["load"] = "wrk " + (out.stdout.split()[1:2] or ["?"])[0]
    else:
        versions["load"] = "asyncio load generator (_serving_loadgen.py)"
    for side in ("mlflow side", "bentoml side"):
        if versions[side]["scikit-learn"] != pins["scikit-learn"]:
            log(
                f"WARNING: {side} has scikit-learn {versions[side]['scikit-learn']}, "
                f"not {pins['scikit-learn']}"
            )

    with tempfile.TemporaryDirectory(prefix="ferry-serving-") as name:
        tmp = Path(name)
        try:
            info = prepare(tmp)
            if args.connections:
                res = run_connections(tmp, cfg, info, wrk, args.connections)
            elif args.open_loop:
                res = run_open_loop(tmp, cfg, info)
            else:
                res = run_all(tmp, cfg, Load(wrk, tmp, cfg), info)
        finally:
            stop_all()
    res["run_s"] = time.perf_counter() - t_run
    # Other work on the machine starves every server alike; the rounds spread it out.
    res["loadavg_1min"] = {"before": load_before[0], "after": os.getloadavg()[0]}
    if args.connections or args.open_loop:
        report_scale(res, versions, args.json)
        return
    checks = verdicts(res)

    if args.json:
        doc = {"config": cfg, "versions": versions, "results": res, "checks": checks}
        print(json.dumps(doc, indent=2, default=str))
        return
    fv, mv, bv = versions["ferryml side"], versions["mlflow side"], versions["bentoml side"]
    print(
        f"ferryml {fv['ferryml']} (uvicorn {fv['uvicorn']}) vs MLflow {versions['mlflow']} "
        f"(uvicorn {mv['uvicorn']}) vs BentoML {versions['bentoml']} (uvicorn "
        f"{bv['uvicorn']}); scikit-learn {fv['scikit-learn']}, numpy {fv['numpy']}, pandas "
        f"{fv['pandas']} in all three; load: {versions['load']}; config: {cfg}"
    )
    for what, err in res["errors"].items():
        print(f"{what} FAILED: {err.splitlines()[0] if err else '?'}")
    print()
    for line in table(res):
        print(line)
    print()
    cold = res["cold_start"]
    print(
        "cold start, process start to first answered prediction: "
        + "; ".join(f"{name_of(k)} {v:.2f} s" for k, v in cold.items())
    )
    runs = res["runs"]
    f = runs.get("row1", {}).get("ferryml")
    for peer in ("mlflow", "bentoml"):
        p = runs.get("row1", {}).get(peer)
        if f and p:
            print(
                f"1 row c32: ferryml {ratio(f['rps'], p['rps']):.1f}x {LABEL[peer]}'s req/s; "
                f"{LABEL[peer]}'s p99 {ratio(p['p99_ms'], f['p99_ms']):.1f}x ferryml's"
            )
    fb, bb = (
        runs.get("batch", {}).get("ferryml --batch"),
        runs.get("batch", {}).get("bentoml batchable"),
    )
    if fb and bb:
        print(
            f"batching c32: ferryml {ratio(fb['rps'], bb['rps']):.1f}x BentoML's req/s; "
            f"BentoML 503s: {bb['codes'].get(503, 0)}"
        )
    f100 = runs.get("row100", {}).get("ferryml")
    for peer in ("mlflow", "bentoml"):
        p = runs.get("row100", {}).get(peer)
        if f100 and p:
            print(f"100 rows c8: ferryml {ratio(f100['rps'], p['rps']):.1f}x {LABEL[peer]}'s req/s")
    print()
    widths = [max(len(c[k]) for c in checks) for k in ("check", "target", "value")]
    for c in checks:
        print(
            f"{c['check'].ljust(widths[0])}  {c['target'].ljust(widths[1])}  "
            f"{c['value'].ljust(widths[2])}  {c['status']}"
        )
    la = res["loadavg_1min"]
    print(
        f"\nwhole run: {res['run_s']:.0f} s; machine load average (1 min) "
        f"{la['before']:.1f} before, {la['after']:.1f} after, on {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
