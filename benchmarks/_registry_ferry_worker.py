"""ferryml side of benchmarks/registry.py, in a fresh interpreter of the repo's venv.

Usage: FERRY_HOME=TMPDIR python _registry_ferry_worker.py TMPDIR CONFIG_JSON
CONFIG_JSON's "phase" is "log" (log and register the model in new runs, then point the
alias "champion" at version 1) or "load" (a fresh process on the same TMPDIR: load the model
by its alias, cold then warm). Prints one JSON object per figure on stdout as soon as it is
measured, so a failure part way still leaves the earlier figures. Mirrors
_registry_mlflow_worker.py step for step; keep them in step.
"""

import io
import json
import pickle
import sys
import time
from pathlib import Path
from statistics import median
from typing import Any

HERE = Path(__file__).resolve().parent
# benchmarks/profile.py would shadow the standard library's profile module (cProfile imports
# it): this folder leaves the import path.
sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != HERE]
tmp, cfg = sys.argv[1], json.loads(sys.argv[2])
out, sys.stdout = sys.stdout, sys.stderr  # stray prints must not corrupt the JSON on stdout
now = time.perf_counter
URI = "models:/bench@champion"


def emit(key: str, value: object) -> None:
    print(json.dumps({key: value}), file=out, flush=True)
    shown = value if key != "profile" else "(cProfile, printed by the driver)"
    print(f"[ferryml] {key}: {shown}", file=sys.stderr, flush=True)


def load_data() -> tuple[Any, Any]:
    """Breast-cancer features (a DataFrame) and labels."""
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer(return_X_y=True, as_frame=True)


def fit(kind: str, X: Any, y: Any) -> Any:
    """The model, the same on both sides (same scikit-learn, deterministic fits)."""
    if kind == "forest":
        from sklearn.ensemble import RandomForestClassifier

        model = RandomForestClassifier(n_estimators=50, max_depth=6, random_state=0, n_jobs=1)
    else:
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(max_iter=5000)
    return model.fit(X, y)


def ferry_profile(fn: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """cProfile of one call: own time by library, and ferryml's functions by cumulative
    time (the top 15)."""
    import cProfile  # only now: see the note on sys.path above
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    fn(*args, **kwargs)
    prof.disable()
    stats = pstats.Stats(prof, stream=io.StringIO()).stats  # type: ignore[attr-defined]
    libraries: dict[str, float] = {}
    rows = []
    for (path, line, func), (_, calls, own, cum, _) in stats.items():
        if "sqlite3" in func:
            library = "sqlite3 (C calls)"
        elif "/site-packages/" in path:
            library = path.split("/site-packages/", 1)[1].split("/", 1)[0]
        elif "/ferryml/" in path:
            library = "ferryml"
        else:
            library = "python (stdlib, builtins)"
        libraries[library] = libraries.get(library, 0.0) + own * 1e3
        if "/ferryml/" in path:
            where = f"{path.split('/ferryml/', 1)[1]}:{line}({func})"
            rows.append({"where": where, "calls": calls, "cum_ms": cum * 1e3})
    rows.sort(key=lambda r: -r["cum_ms"])
    by_library = dict(sorted(libraries.items(), key=lambda kv: -kv[1]))
    return {"total_ms": sum(libraries.values()), "own_ms_by_library": by_library,
            "ferryml_cumulative": rows[:15]}  # fmt: skip


t = now()
import ferryml as ferry  # noqa: E402  (timed)

emit("import_s", now() - t)
emit("version", ferry.__version__)

if cfg["phase"] == "log":
    X, y = load_data()
    model = fit(cfg["model"], X, y)
    with open(Path(tmp, "model.pkl"), "wb") as f:  # for the driver's floor: a plain unpickle
        pickle.dump(model, f, protocol=5)
    emit("model_predictions", [int(v) for v in model.predict(X)])
    # The first use of a new store creates its database: timed apart.
    t = now()
    ferry.set_experiment("bench")
    emit("first_use_s", now() - t)

    # log_model + register, each in a new run already started; the first call (it pays the
    # registry's lazy imports) apart from the median of the rest.
    times, versions, signed = [], [], []
    for _ in range(1 + cfg["log_repeats"]):
        with ferry.start_run():
            t = now()
            info = ferry.log_model(
                model, name="model", input_example=X[:5], registered_model_name="bench"
            )
            times.append(now() - t)
        versions.append(info.registered_version.version if info.registered_version else None)
        signed.append(bool(info.registered_version and info.registered_version.signature))
    emit("log_first_s", times[0])
    if times[1:]:
        emit("log_s", {"median": median(times[1:]), "runs": times[1:]})
    emit("log_check", {"versions": versions, "signatures": all(signed)})
    if times[1:] and (cfg["profile"] or median(times[1:]) > cfg["log_profile_over_s"]):
        with ferry.start_run():  # one more version, after the checked ones
            profile = ferry_profile(
                ferry.log_model, model, name="model", input_example=X[:5],
                registered_model_name="bench",
            )  # fmt: skip
        emit("profile", {"what": "log_model + register", **profile})

    t = now()
    ferry.set_registered_model_alias("bench", "champion", 1)
    emit("alias_s", now() - t)

else:  # load, in a fresh process
    t = now()
    loaded = ferry.load_model(URI)
    emit("load_cold_s", now() - t)
    warm = []
    for _ in range(cfg["load_repeats"]):
        t = now()
        again = ferry.load_model(URI)
        warm.append(now() - t)
    if warm:
        emit("load_warm_s", warm)
    X, _ = load_data()  # after the timing: its imports are no part of loading
    emit("loaded_version", loaded.version.version if loaded.version else None)
    emit("head_predictions", [int(v) for v in loaded.predict(X[:5])])
    emit("loaded_predictions", [int(v) for v in loaded.predict(X)])
    slow = bool(warm) and median(warm) > cfg["load_profile_over_s"]
    if cfg["process"] == 0 and warm and (cfg["profile"] or slow):
        emit("profile", {"what": "load_model (warm)", **ferry_profile(ferry.load_model, URI)})
