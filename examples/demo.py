"""The ferryml demo: the loop on the embedded default store (./.ferry).

Today: experiment tracking. Three scikit-learn models are trained on a dataset that
scikit-learn ships; each run logs its params, metrics (with a learning curve), artifacts
and environment, and the runs are then compared side by side.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no screen needed

import matplotlib.pyplot as plt
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

console = Console()

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


def main() -> None:
    data = load_breast_cancer(as_frame=True)
    X_train, X_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=0.25, random_state=0, stratify=data.target
    )
    experiment = ferry.set_experiment("demo-breast-cancer")
    console.print(
        f"[bold]ferryml demo[/bold]: experiment {experiment.name!r} "
        f"in {ferry.Settings.resolve().store_url}"
    )
    with ferry.start_run(
        run_name="model-selection", description="Pick the best of three."
    ) as parent:
        for name, (model, params) in CANDIDATES.items():
            with ferry.start_run(run_name=name, nested=True) as run:
                ferry.log_params({"model": name, **params})
                ferry.log_input("breast_cancer", version=1, context="training")
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
                ferry.log_dict({"features": list(data.feature_names)}, "features.json")
                console.print(f"  trained {name:<9} run {run.run_id}")

    runs = ferry.search_runs(
        experiment_names=[experiment.name],
        filter_string=f"attributes.parent_run_id = '{parent.run_id}'",
        order_by=["metrics.roc_auc DESC"],
    )
    table = Table(title="Runs, best ROC AUC first", title_justify="left")
    for column in ("run", "model", "accuracy", "f1", "roc_auc", "git commit", "python"):
        table.add_column(column)
    for r in runs:
        m, tags = r.data.metrics, r.data.tags
        table.add_row(
            r.info.run_name,
            r.data.params["model"],
            f"{m['accuracy']:.4f}",
            f"{m['f1']:.4f}",
            f"{m['roc_auc']:.4f}",
            tags.get("ferry.git.commit", "-")[:10],
            tags["ferry.python"],
        )
    console.print(table)
    console.print(
        f"Best: [bold]{runs[0].data.params['model']}[/bold]. "
        f"Try: ferry runs list -e {experiment.name} -o 'metrics.roc_auc DESC'"
    )


if __name__ == "__main__":
    main()
