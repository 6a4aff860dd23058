"""The ferryml demo: the loop on the embedded default store (./.ferry).

1. Data: the dataset is versioned (content-addressed, with a reference profile), checked
   against expectations, and a second batch is compared with the first.
2. Tracking: three scikit-learn models are trained on that data version; each run logs
   its params, metrics (with a learning curve), artifacts, environment and the data
   version it read, and the runs are compared side by side.
3. Pipelines: a small pipeline is swept over the forest's depth on two worker processes,
   then run again: every step comes from the cache.
4. Models: each trained model is registered; a gate decides which becomes the champion.
5. Serving: the champion answers HTTP requests; labels come back as feedback and join the
   prediction log.
6. Monitoring: the logged predictions are checked window by window against the champion's
   training data, for drift and, with the labels, accuracy.
7. The closed loop (examples/closed_loop.py): a churn model meets a changing world; the
   agent detects it, retrains, gates, rolls out a canary and promotes the new model.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no screen needed

import closed_loop
import matplotlib.pyplot as plt
from demo_pipeline import forest
from rich.console import Console
from rich.table import Table
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import ConfusionMatrixDisplay, accuracy_score, f1_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import ferryml as ferry
import ferryml.data
from ferryml.data import AllowedValues, InRange, NotNull, RowCount, Workspace, diff_versions
from ferryml.pipelines import run_pipeline, sweep

console = Console()
MODEL = "breast-cancer-classifier"

CANDIDATES = {
    "logreg": (
        make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=500)),
        {"C": 1.0, "max_iter": 500},
    ),
    "forest": (
        RandomForestClassifier(n_estimators=200, max_depth=6, random_state=0),
        {"n_estimators": 200, "max_depth": 6},
    ),
    "boosting": (
        GradientBoostingClassifier(n_estimators=150, learning_rate=0.1, random_state=0),
        {"n_estimators": 150, "learning_rate": 0.1},
    ),
}


def version_data() -> str:
    """Version the dataset, validate it, and compare a drifted second batch with it."""
    data = load_breast_cancer(as_frame=True)
    frame = data.frame
    version = ferryml.data.add(frame, name="breast-cancer")
    report = ferryml.data.validate(
        frame,
        [
            NotNull("mean radius"),
            InRange("mean radius", 0, 50),
            AllowedValues("target", [0, 1]),
            RowCount(min=500),
        ],
    )
    console.print(
        f"[bold]data[/bold]: {version.ref}, {version.rows} rows, "
        f"{len(frame.columns)} columns; validation "
        f"{'passed' if report.passed else 'FAILED'} ({len(report.results)} checks)"
    )
    # A later batch where one feature drifted: a new version, and what moved.
    later = frame.sample(frac=0.5, random_state=1).assign(
        **{"mean radius": lambda f: f["mean radius"] * 1.3}
    )
    second = ferryml.data.add(later, name="breast-cancer-batch")
    ferryml.data.add(frame.sample(frac=0.5, random_state=2), name="breast-cancer-batch")
    workspace = Workspace()
    changes = diff_versions(workspace, second.ref, f"{second.name}@{second.version + 1}")
    workspace.close()
    radius = [s for s in changes.shifts if s.column == "mean radius" and s.statistic == "mean"]
    if radius:
        console.print(
            f"  {changes.a} -> {changes.b}: rows {changes.rows[0]} -> {changes.rows[1]}, "
            f"mean radius {radius[0].before:.2f} -> {radius[0].after:.2f}"
        )
    return version.ref


def main() -> None:
    data_ref = version_data()
    run_pipelines(data_ref)
    versions: dict[str, int] = {}
    experiment = ferry.set_experiment("demo-breast-cancer")
    console.print(
        f"[bold]tracking[/bold]: experiment {experiment.name!r} "
        f"in {ferry.Settings.resolve().store_url}"
    )
    with ferry.start_run(
        run_name="model-selection", description="Pick the best of three."
    ) as parent:
        for name, (model, params) in CANDIDATES.items():
            with ferry.start_run(run_name=name, nested=True) as run:
                frame = ferryml.data.load(data_ref)  # records the data version as the input
                X_train, X_test, y_train, y_test = train_test_split(
                    frame.drop(columns="target"),
                    frame["target"],
                    test_size=0.25,
                    random_state=0,
                    stratify=frame["target"],
                )
                ferry.log_params({"model": name, **params})
                model.fit(X_train, y_train)
                scores = model.predict_proba(X_test)[:, 1]
                predicted = model.predict(X_test)
                ferry.log_metrics(
                    {
                        "accuracy": accuracy_score(y_test, predicted),
                        "f1": f1_score(y_test, predicted),
                        "roc_auc": roc_auc_score(y_test, scores),
                    }
                )
                if name == "boosting":  # a learning curve: one value per boosting stage
                    for step, stage in enumerate(model.staged_predict(X_test)):
                        ferry.log_metric("test_accuracy", accuracy_score(y_test, stage), step=step)
                figure, axes = plt.subplots(figsize=(4, 4))
                ConfusionMatrixDisplay.from_predictions(y_test, predicted, ax=axes)
                ferry.log_figure(figure, "confusion_matrix.png")
                plt.close(figure)
                ferry.log_dict({"features": list(X_train.columns)}, "features.json")
                info = ferry.log_model(
                    model,
                    input_example=X_train.head(),
                    training_data=X_train,
                    registered_model_name=MODEL,
                )
                versions[name] = info.registered_version.version
                holdout = X_test.assign(target=y_test)
                console.print(
                    f"  trained {name:<9} run {run.run_id} -> {MODEL} version {versions[name]}"
                )

    runs = ferry.search_runs(
        experiment_names=[experiment.name],
        filter_string=f"attributes.parent_run_id = '{parent.run_id}'",
        order_by=["metrics.roc_auc DESC"],
    )
    table = Table(title="Runs, best ROC AUC first", title_justify="left")
    for column in ("run", "model", "accuracy", "f1", "roc_auc", "data", "git commit", "python"):
        table.add_column(column)
    for r in runs:
        m, tags = r.data.metrics, r.data.tags
        data = ", ".join(f"{i.name}@{i.version}" for i in r.inputs)
        table.add_row(
            r.info.run_name,
            r.data.params["model"],
            f"{m['accuracy']:.4f}",
            f"{m['f1']:.4f}",
            f"{m['roc_auc']:.4f}",
            data,
            tags.get("ferry.git.commit", "-")[:10],
            tags["ferry.python"],
        )
    console.print(table)
    console.print(
        f"Best: [bold]{runs[0].data.params['model']}[/bold]. "
        f"Try: ferry runs list -e {experiment.name} -o 'metrics.roc_auc DESC'"
    )
    promote_models(versions, holdout)
    serve_champion(holdout)
    monitor_champion()
    closed_loop.main(console)
    console.print(
        f"[bold]look at it[/bold] in the browser: ferry ui (in {Path.cwd()}), then "
        f"http://127.0.0.1:5050/experiments/{experiment.experiment_id} : the runs, models, "
        "deployment, monitor and decision above",
        soft_wrap=True,  # a path cut across lines could not be copied
    )


def run_pipelines(data_ref: str) -> None:
    started = time.perf_counter()
    result = sweep(
        forest,
        grid={"depth": [2, 4, 8]},
        params={"data_ref": data_ref},
        metric="roc_auc",
        executor="process",
        workers=2,
    )
    console.print(
        f"[bold]pipelines[/bold]: swept depth over {len(result.trials)} trials in "
        f"{time.perf_counter() - started:.1f} s; best roc_auc "
        f"{result.best_value:.4f} at depth {result.best_params['depth']}"
    )
    started = time.perf_counter()
    again = run_pipeline(forest, {"data_ref": data_ref, "depth": result.best_params["depth"]})
    hits = sum(s.cache == "hit" for s in again.steps.values())
    console.print(
        f"  re-run: {hits} of {len(again.steps)} steps from the cache in "
        f"{time.perf_counter() - started:.2f} s. Try: ferry pipeline show {again.run_id}"
    )


def promote_models(versions: dict[str, int], holdout: object) -> None:
    """Gate each candidate against the champion on the same holdout, in training order."""
    console.print(f"[bold]models[/bold]: promotion to {MODEL}@champion, gated on ROC AUC")
    for name, version in versions.items():
        decision = ferry.promote(
            MODEL,
            version,
            data=holdout,
            target="target",
            gate={"metric": "roc_auc", "min_delta": 0.001},
        )
        against = f"vs version {decision.champion}" if decision.champion else "(no champion)"
        console.print(
            f"  version {version} ({name}) {against}: roc_auc "
            f"{decision.candidate_metrics['roc_auc']:.4f} -> "
            f"{'promoted' if decision.moved else 'kept out'}"
        )
    champion = ferry.load_model(f"models:/{MODEL}@champion")
    console.print(
        f"  champion is version {champion.version.version}. "
        f"Try: ferry models lineage {MODEL}@champion; ferry models history {MODEL}"
    )


def serve_champion(holdout: Any) -> None:
    """Serve the champion over HTTP, send requests, return labels as feedback, and read
    the prediction log back with them: what monitoring will watch."""
    import socket
    import threading

    import httpx
    import uvicorn

    from ferryml.predictions import load as load_predictions
    from ferryml.server.main import NoDelayHttp, build_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.perf_counter()
    app = build_app(ferry.Settings.resolve(), f"{MODEL}@champion")
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, http=NoDelayHttp, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    rows = holdout.drop(columns="target")
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        first = time.perf_counter() - started
        answers = [
            client.post(
                f"/v1/models/{MODEL}/predict", json={"records": [rows.iloc[i].to_dict()]}
            ).json()
            for i in range(len(rows))
        ]
        labels = [
            {"prediction_id": a["ids"][0], "label": int(label)}
            for a, label in zip(answers, holdout["target"], strict=True)
        ]
        report = client.post("/v1/feedback", json=labels).json()
    server.should_exit = True
    thread.join()
    log = load_predictions(MODEL, with_feedback=True)
    labelled = log.dropna(subset=["label"])
    accuracy = float((labelled["prediction"] == labelled["label"]).mean())
    console.print(
        f"[bold]serving[/bold]: {MODEL}@champion answered in {first:.2f} s from "
        f"start; {len(answers)} requests, {report['accepted']} labels fed back; "
        f"logged accuracy {accuracy:.4f}. Try: ferry serve {MODEL}@champion"
    )


def monitor_champion() -> None:
    """Check the served predictions, 50 at a time, against the champion's training data."""
    from ferryml.errors import AlreadyExists
    from ferryml.monitoring import MonitorSpec, add_monitor, run_monitor

    settings = ferry.Settings.resolve()
    spec = MonitorSpec(
        name="demo-drift",
        deployment=MODEL,
        reference=f"model:{MODEL}@champion",
        window=50,
        task="classification",
        rules=["drift_share > 0.3 for 2 windows"],
    )
    with contextlib.suppress(AlreadyExists):  # a second `make demo` keeps the first monitor
        add_monitor(settings, spec)
    found = run_monitor(settings, "demo-drift")
    shares = ", ".join(f"{w.metrics.get('drift_share', 0):.2f}" for w in found)
    accuracy = ", ".join(f"{w.metrics['accuracy']:.3f}" for w in found if "accuracy" in w.metrics)
    console.print(
        f"[bold]monitoring[/bold]: {len(found)} windows of 50 predictions; drift "
        f"share {shares or '-'}; accuracy {accuracy or '-'}. "
        "Try: ferry monitor report demo-drift --html report.html"
    )


if __name__ == "__main__":
    main()
