"""``ferry models …``: exit codes, exact messages, --json."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import ferryml as ferry


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in ("FERRY_HOME", "FERRY_STORE", "FERRY_ARTIFACTS"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)
    ferry.configure()
    data = load_breast_cancer(as_frame=True)
    X, y = data.data, data.target
    for model in (
        make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y),
        DummyClassifier().fit(X, y),
    ):
        with ferry.start_run():
            ferry.log_model(model, input_example=X.head(), registered_model_name="cancer")
    X.assign(target=y).sample(150, random_state=0).to_csv(tmp_path / "holdout.csv", index=False)
    yield tmp_path
    ferry.configure()


def test_list_versions_show_alias_history(
    cli: Callable[..., tuple[int, str, str]], project: Path
) -> None:
    code, out, _ = cli("models", "list", "--json")
    assert [(m["name"], m["latest_version"]) for m in json.loads(out)] == [("cancer", 2)]
    code, out, _ = cli("models", "alias", "cancer", "champion", "1", "--reason", "baseline")
    assert (code, out) == (0, "cancer@champion: - -> 1\n")
    code, out, _ = cli("models", "versions", "cancer", "--json")
    assert [v["aliases"] for v in json.loads(out)] == [["champion"], []]
    code, out, _ = cli("models", "show", "cancer@champion", "--json")
    assert json.loads(out)["flavor"] == "sklearn"
    code, out, _ = cli("models", "history", "cancer", "--json")
    assert [e["action"] for e in json.loads(out)] == [
        "create_version",
        "create_version",
        "set_alias",
    ]
    code, out, _ = cli("models", "lineage", "cancer/1", "--json")
    assert json.loads(out)["run"]["info"]["run_id"]


def test_evaluate_and_promote_through_a_gate(
    cli: Callable[..., tuple[int, str, str]], project: Path
) -> None:
    code, out, _ = cli(
        "models",
        "evaluate",
        "cancer/1",
        "--data",
        "holdout.csv",
        "--target",
        "target",
        "--json",
    )
    assert code == 0 and json.loads(out)["metrics"]["roc_auc"] > 0.9
    code, out, _ = cli(
        "models",
        "promote",
        "cancer",
        "--candidate",
        "1",
        "--data",
        "holdout.csv",
        "--target",
        "target",
    )
    assert code == 0 and "cancer@champion moved" in out
    code, out, _ = cli(
        "models",
        "promote",
        "cancer",
        "--candidate",
        "2",
        "--data",
        "holdout.csv",
        "--target",
        "target",
        "--json",
    )
    assert code == 1
    decision = json.loads(out)
    assert (decision["passed"], decision["moved"], decision["champion"]) == (False, False, 1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["models", "show", "nope"],
            "error: Registered model 'nope' not found. See `ferry models list`.\n",
        ),
        (
            ["models", "alias", "cancer", "champion", "9"],
            "error: Model 'cancer' has no version 9. See `ferry models versions cancer`.\n",
        ),
        (
            ["models", "show", "cancer@staging"],
            "error: Model 'cancer' has no alias 'staging'. Point one with `ferry models alias "
            "cancer staging VERSION`.\n",
        ),
        (
            ["models", "evaluate", "cancer/1", "--data", "missing.csv", "--target", "t"],
            "error: Dataset 'missing.csv' not found. See `ferry data ls`.\n",
        ),
        (
            ["models", "evaluate", "nope/1", "--data", "holdout.csv", "--target", "target"],
            "error: Registered model 'nope' not found. See `ferry models list`.\n",
        ),
        (
            ["models", "history", "nope"],
            "error: Registered model 'nope' not found. See `ferry models list`.\n",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_1(
    cli: Callable[..., tuple[int, str, str]], project: Path, args: list[str], message: str
) -> None:
    code, _, err = cli(*args)
    assert (code, err) == (1, message)


def test_evaluate_and_promote_infer_a_regression_from_the_model(
    cli: Callable[..., tuple[int, str, str]], project: Path
) -> None:
    data = load_diabetes(as_frame=True)
    X, y = data.data, data.target
    with ferry.start_run():
        ferry.log_model(
            make_pipeline(StandardScaler(), Ridge()).fit(X, y),
            input_example=X.head(),
            registered_model_name="diabetes",
        )
    X.assign(target=y).to_csv(project / "diabetes.csv", index=False)
    args = ("--data", "diabetes.csv", "--target", "target", "--json")
    code, out, _ = cli("models", "evaluate", "diabetes/1", *args)
    assert code == 0 and set(json.loads(out)["metrics"]) == {"mae", "rmse", "r2"}
    code, out, _ = cli("models", "promote", "diabetes", "--candidate", "1", *args)
    assert code == 0 and set(json.loads(out)["candidate_metrics"]) == {"mae", "rmse", "r2"}
    with ferry.start_run():  # a plain function says nothing about its task
        ferry.log_model(lambda frame: frame["age"], input_example=X.head(),
                        registered_model_name="diabetes")  # fmt: skip
    code, _, err = cli("models", "evaluate", "diabetes/2", *args)
    assert (code, err) == (
        2,
        "error: Cannot tell whether models:/diabetes/2 (pyfunc) is a classifier or a "
        "regressor; pass the task (--task classification or --task regression).\n",
    )
    code, out, _ = cli("models", "evaluate", "diabetes/2", *args, "--task", "regression")
    assert code == 0 and json.loads(out)["task"] == "regression"


@pytest.mark.parametrize(
    "command", ["list", "show", "versions", "alias", "history", "lineage", "evaluate", "promote"]
)
def test_every_models_command_has_help(
    cli: Callable[..., tuple[int, str, str]], command: str
) -> None:
    code, out, _ = cli("models", command, "--help")
    assert code == 0 and "Usage: ferry models" in out


def test_the_frame_read_for_evaluation_can_be_parquet(project: Path) -> None:
    from ferryml.registry.api import read_data

    frame = pd.read_csv(project / "holdout.csv")
    frame.to_parquet(project / "holdout.parquet")
    assert read_data(project / "holdout.parquet").shape == frame.shape


def test_show_prints_the_signature_and_json_nests_it(
    cli: Callable[..., tuple[int, str, str]], project: Path
) -> None:
    code, out, _ = cli("models", "show", "cancer/1")
    assert code == 0
    assert "signature: inputs" in out
    cells = [[c.strip() for c in line.split("│")[1:3]] for line in out.splitlines()]
    assert ["mean radius", "float"] in cells

    code, out, _ = cli("models", "show", "cancer/1", "--json")
    signature = json.loads(out)["signature"]
    assert signature["inputs"][0] == {"name": "mean radius", "type": "float", "optional": False}
    assert len(signature["inputs"]) == 30
