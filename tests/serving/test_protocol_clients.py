"""Independent clients of the Open Inference Protocol (Triton's tritonclient, HTTP and gRPC)
against ``ferry serve``'s app: REST with JSON tensors, REST with binary tensors, and gRPC.
The clients live in a venv of their own (requirements/clients.txt), cached outside the
clone and named by that file's digest, as the Makefile caches the lowest-versions venv."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import uvicorn
from filelock import FileLock
from serving_net import free_port
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import ferryml as ferry
from ferryml.config import Settings
from ferryml.server.main import build_app

pytestmark = pytest.mark.e2e

CLIENTS = Path(__file__).parents[2] / "requirements" / "clients.txt"

SCRIPT = """
import json, sys
import numpy as np
import tritonclient.grpc as tg
import tritonclient.http as th
from tritonclient.utils import InferenceServerException

http_url, grpc_url, rows = sys.argv[1], sys.argv[2], np.array(json.loads(sys.argv[3]), "float32")
out = {}
h = th.InferenceServerClient(http_url)
out["http_live"], out["http_ready"] = h.is_server_live(), h.is_model_ready("iris", "1")
out["server"] = h.get_server_metadata()
out["metadata"] = h.get_model_metadata("iris")
for binary in (False, True):
    x = th.InferInput("x", list(rows.shape), "FP32")
    x.set_data_from_numpy(rows, binary_data=binary)
    asked = [th.InferRequestedOutput(n, binary_data=binary) for n in ("predict", "predict_proba")]
    r = h.infer("iris", [x], outputs=asked, model_version="1", request_id="h1")
    out[f"http_binary_{binary}"] = [
        r.as_numpy("predict").tolist(), r.as_numpy("predict_proba").tolist(), r.get_response()["id"]
    ]
out["http_default"] = h.infer("iris", [x]).as_numpy("predict").tolist()
try:
    h.infer("nope", [x])
except InferenceServerException as e:
    out["http_unknown"] = e.message()
g = tg.InferenceServerClient(grpc_url)
out["grpc_live"], out["grpc_ready"] = g.is_server_live(), g.is_model_ready("iris", "1")
out["grpc_server"] = g.get_server_metadata(as_json=True)
out["grpc_metadata"] = g.get_model_metadata("iris", as_json=True)
x = tg.InferInput("x", list(rows.shape), "FP32")
x.set_data_from_numpy(rows)
asked = [tg.InferRequestedOutput(n) for n in ("predict", "predict_proba")]
r = g.infer("iris", [x], outputs=asked, request_id="g1")
out["grpc"] = [
    r.as_numpy("predict").tolist(), r.as_numpy("predict_proba").tolist(), r.get_response().id
]
try:
    g.infer("nope", [x])
except InferenceServerException as e:
    out["grpc_unknown"] = [e.status(), e.message()]
print(json.dumps(out))
"""


@pytest.fixture(scope="session")
def clients_python() -> Path:
    """The clients' venv's python, built once per clients.txt (it needs the package index
    the first time)."""
    key = hashlib.sha256(CLIENTS.read_bytes()).hexdigest()[:12]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ferryml"
    venv = cache / f"venv-clients-{sys.version_info[0]}-{sys.version_info[1]}-{key}"
    python = venv / "bin" / "python"
    cache.mkdir(parents=True, exist_ok=True)
    with FileLock(str(venv) + ".lock"):
        if not (venv / ".installed").exists():
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            done = subprocess.run(
                [str(python), "-m", "pip", "install", "--quiet", "--require-hashes", "-r"]
                + [str(CLIENTS)],
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
            if done.returncode != 0:
                shutil.rmtree(venv, ignore_errors=True)
                reason = done.stderr.strip().splitlines()[-1:]
                pytest.skip(f"could not install tritonclient (needs the package index): {reason}")
            (venv / ".installed").touch()
    return python


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Any, Any]]:
    root = tmp_path_factory.mktemp("clients")
    settings = Settings.resolve(home=root / "home", cwd=root, environ={})
    ferry.configure(home=settings.home, store=settings.store_url, artifacts=settings.artifacts_url)
    X, y = load_iris(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=500).fit(X, y)
    with ferry.start_run():
        ferry.log_model(model, input_example=X.head(), registered_model_name="iris")
    ferry.configure(home=settings.home)
    http_port, grpc_port = free_port(), free_port()
    app = build_app(
        settings, "iris/1", log_predictions=False, grpc_address=("127.0.0.1", grpc_port)
    )
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=http_port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    yield f"127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}", X, model
    server.should_exit = True
    thread.join(timeout=30)


def test_tritonclient_over_rest_json_rest_binary_and_grpc(
    clients_python: Path, served: tuple[str, str, Any, Any]
) -> None:
    http_url, grpc_url, X, model = served
    rows = X.iloc[[0, 55, 110, 149]].to_numpy(dtype=np.float32)
    done = subprocess.run(
        [str(clients_python), "-c", SCRIPT, http_url, grpc_url, json.dumps(rows.tolist())],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    frame = pd.DataFrame(rows.astype(np.float64), columns=X.columns)
    expected = model.predict(frame).tolist()
    proba = model.predict_proba(frame)
    assert out["http_live"] and out["http_ready"] and out["grpc_live"] and out["grpc_ready"]
    assert out["server"] == {
        "name": "ferryml",
        "version": ferry.__version__,
        "extensions": ["binary_tensor_data", "model_repository"],
    }
    assert out["grpc_server"]["extensions"] == ["binary_tensor_data", "model_repository"]
    assert out["metadata"]["outputs"][0] == {"name": "predict", "datatype": "INT64", "shape": [-1]}
    assert out["grpc_metadata"]["outputs"][1] == {
        "name": "predict_proba",
        "datatype": "FP64",
        "shape": ["-1", "3"],
    }
    for key in ("http_binary_False", "http_binary_True", "grpc"):
        predicted, probabilities, _ = out[key]
        assert predicted == expected, key
        assert np.allclose(probabilities, proba, atol=1e-6), key
    assert (out["http_binary_False"][2], out["grpc"][2]) == ("h1", "g1")
    assert out["http_default"] == expected
    assert "'nope' is not served here" in out["http_unknown"]
    assert out["grpc_unknown"][0] == "StatusCode.NOT_FOUND"
    assert "'nope' is not served here" in out["grpc_unknown"][1]


REPOSITORY = """
import json, sys
import tritonclient.grpc as tg
import tritonclient.http as th
from tritonclient.utils import InferenceServerException

http_url, grpc_url = sys.argv[1], sys.argv[2]
h, g = th.InferenceServerClient(http_url), tg.InferenceServerClient(grpc_url)
out = {"http_index": h.get_model_repository_index()}
out["grpc_index"] = g.get_model_repository_index(as_json=True)
g.unload_model("iris")
out["unloaded_ready"] = h.is_model_ready("iris")
out["unloaded_index"] = h.get_model_repository_index()
h.load_model("iris")
out["loaded_ready"] = g.is_model_ready("iris")
for client, key in ((h, "http_nope"), (g, "grpc_nope")):
    try:
        client.load_model("nope")
    except InferenceServerException as e:
        out[key] = e.message()
print(json.dumps(out))
"""


def test_tritonclient_lists_unloads_and_loads_models_over_rest_and_grpc(
    clients_python: Path, served: tuple[str, str, Any, Any]
) -> None:
    http_url, grpc_url, _, _ = served
    done = subprocess.run(
        [str(clients_python), "-c", REPOSITORY, http_url, grpc_url],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    ready = {"name": "iris", "version": "1", "state": "READY", "reason": ""}
    assert out["http_index"] == [ready]
    assert out["grpc_index"] == {"models": [{k: v for k, v in ready.items() if v}]}  # proto3 JSON
    assert out["unloaded_ready"] is False
    assert out["unloaded_index"] == [
        {"name": "iris", "version": "", "state": "UNAVAILABLE", "reason": "unloaded"}
    ]
    assert out["loaded_ready"] is True
    assert "'nope' is not in this server's repository" in out["http_nope"]
    assert "'nope' is not in this server's repository" in out["grpc_nope"]
