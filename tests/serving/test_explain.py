"""Explanations of one row, over real HTTP and through the Python API: SHAP values that add
up to the output, credit the feature that drives it, and clear errors for everything else."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import make_column_transformer
from sklearn.datasets import load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.svm import SVC

import ferryml as ferry
from ferryml.config import Settings
from ferryml.errors import Conflict, InvalidArgument, MissingExtra
from ferryml.server.main import build_app

pytestmark = pytest.mark.e2e

ROW = {"age": 31, "income": 92.5, "noise": 0.3, "plan": "pro"}


def _customers(n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame(
        {
            "age": rng.integers(18, 80, n),
            "income": rng.normal(50, 15, n),
            "noise": rng.normal(0, 1, n),
            "plan": rng.choice(["basic", "pro"], n),
        }
    )


@pytest.fixture
def local(sqlite_settings: Settings) -> Iterator[Settings]:
    """The fluent API on a SQLite store: explanations do not depend on the store."""
    settings = sqlite_settings
    ferry.configure(home=settings.home, store=settings.store_url, artifacts=settings.artifacts_url)
    yield settings
    ferry.configure(home=settings.home)  # closes the client and its journal


@pytest.fixture
def churn(local: Settings) -> Any:
    """Model 'churn' (alias champion), logged with training data: income decides."""
    X = _customers()
    model = make_pipeline(
        make_column_transformer(
            (StandardScaler(), ["age", "income", "noise"]), (OneHotEncoder(), ["plan"])
        ),
        LogisticRegression(),
    ).fit(X, (X["income"] > 50).astype(int))
    with ferry.start_run():
        ferry.log_model(model, training_data=X, registered_model_name="churn")
    ferry.set_registered_model_alias("churn", "champion", 1)
    return model


@pytest.fixture
def server(churn: Any, local: Settings, serve: Callable[[Any], Any]) -> Any:
    return serve(build_app(local, "churn@champion", log_predictions=False))


def _adds_up(body: dict[str, Any]) -> None:
    total = body["base_value"] + sum(body["contributions"].values())
    assert total == pytest.approx(body["output"], abs=1e-9)


def test_contributions_add_up_to_the_output_and_credit_the_feature_that_drives_it(
    server: Any, churn: Any
) -> None:
    r = server.client.post("/v1/models/churn/explain", json={"record": ROW})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["model"], body["version"]) == ("churn", 1)
    assert body["output"] == pytest.approx(churn.predict_proba(pd.DataFrame([ROW]))[0, 1])
    assert body["explains"] == "probability of class 1 (the positive class)"
    assert body["method"] == "shap.KernelExplainer"
    assert body["background"] == {"source": "training data", "rows": 100}
    assert list(body["contributions"]) == ["age", "income", "noise", "plan"]
    _adds_up(body)
    contributions = body["contributions"]
    assert max(contributions, key=lambda c: abs(contributions[c])) == "income"
    assert contributions["income"] > 0  # a high income raises the probability
    again = server.client.post("/v1/models/churn/explain", json={"records": [ROW]})
    assert again.json() == body


def test_bad_requests_get_a_4xx_that_names_the_problem(server: Any) -> None:
    def error(path: str, body: Any) -> tuple[int, str]:
        r = server.client.post(path, json=body)
        return r.status_code, r.json()["error"]["message"]

    status, message = error("/v1/models/other/explain", {"record": ROW})
    assert status == 404 and "Model 'other' is not served here" in message
    status, message = error("/v1/models/churn/explain", {"records": [ROW, ROW]})
    assert status == 422 and "An explanation is of one row; 2 rows were given" in message
    status, message = error("/v1/models/churn/explain", {"record": {**ROW, "age": "old"}})
    assert status == 422 and "Column 'age' has string values" in message
    missing = {k: v for k, v in ROW.items() if k != "income"}
    status, message = error("/v1/models/churn/explain", {"record": missing})
    assert status == 422 and "missing column 'income'" in message
    status, message = error("/v1/models/churn/explain", {"rows": ROW})
    assert status == 422 and "'records'" in message


def test_a_model_logged_without_training_data_is_explained_against_its_input_example(
    registered: Any, serve: Callable[[Any], Any]
) -> None:
    running = serve(build_app(registered.settings, "cancer@champion", log_predictions=False))
    row = registered.X.iloc[7].to_dict()
    r = running.client.post("/v1/models/cancer/explain", json={"record": row})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["background"] == {"source": "input example", "rows": 5}
    assert len(body["contributions"]) == 30  # more than can be enumerated: sampled, seeded
    _adds_up(body)
    assert running.client.post("/v1/models/cancer/explain", json={"record": row}).json() == body


def test_a_model_with_no_background_rows_asks_for_training_data(local: Settings) -> None:
    X = _customers(50)[["age", "income"]]
    model = LinearRegression().fit(X, X["income"])
    with ferry.start_run():
        info = ferry.log_model(model, signature=X.head())
    with pytest.raises(Conflict, match=r"log_model\(model, training_data=X\)"):
        ferry.explain(info.model_uri, {"age": 40, "income": 60.0})


def test_a_model_without_numeric_output_or_with_too_many_columns_is_refused(
    local: Settings,
) -> None:
    X = _customers(40)[["age", "income"]]
    labels = SVC().fit(X, np.where(X["income"] > 50, "rich", "poor"))  # no predict_proba
    with ferry.start_run():
        uri = ferry.log_model(labels, training_data=X).model_uri
    with pytest.raises(Conflict, match=r"predicts \['(rich|poor)'\] for one row: an explanation"):
        ferry.explain(uri, {"age": 40, "income": 60.0})

    wide = pd.DataFrame(np.eye(4, 3100), columns=[f"f{i}" for i in range(3100)])
    with ferry.start_run():
        model = LinearRegression().fit(wide, [1, 2, 3, 4])
        uri = ferry.log_model(model, input_example=wide).model_uri
    with pytest.raises(Conflict, match="has 3100 input columns: too many to explain"):
        ferry.explain(uri, wide.iloc[[0]])


def test_a_linear_model_gets_its_exact_shap_values(local: Settings) -> None:
    # Fewer rows than the sample keeps: the background is the training data itself.
    X = _customers(60)[["age", "income", "noise"]]
    model = LinearRegression().fit(X, 3 * X["age"] - 2 * X["income"] + X["noise"])
    with ferry.start_run():
        info = ferry.log_model(model, training_data=X)
    row = {"age": 70, "income": 20.0, "noise": -1.0}
    explanation = ferry.explain(info.model_uri, pd.Series(row))
    expected = model.coef_ * (pd.Series(row) - X.mean()).to_numpy()
    assert explanation.explains == "prediction"
    assert explanation.background_rows == 60
    np.testing.assert_allclose(list(explanation.contributions.values()), expected, atol=1e-8)
    assert explanation.base_value == pytest.approx(model.predict(X).mean())


def test_a_multiclass_model_explains_the_class_it_predicts(local: Settings) -> None:
    data = load_iris(as_frame=True)
    model = LogisticRegression(max_iter=500).fit(data.data, data.target)
    with ferry.start_run():
        info = ferry.log_model(model, training_data=data.data)
    row = data.data.iloc[[120]]
    explanation = ferry.explain(info.model_uri, row)
    assert explanation.explains == "probability of class 2 (the predicted class)"
    assert explanation.output == pytest.approx(model.predict_proba(row)[0, 2])
    total = explanation.base_value + sum(explanation.contributions.values())
    assert total == pytest.approx(explanation.output, abs=1e-9)
    with pytest.raises(InvalidArgument, match="An explanation is of one row; 2 rows"):
        ferry.explain(info.model_uri, data.data.iloc[:2])


def test_without_shap_installed_explain_is_a_501_naming_the_extra(
    server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server runs in this process: `import shap` meets what it meets when shap is absent.
    monkeypatch.setitem(sys.modules, "shap", None)
    r = server.client.post("/v1/models/churn/explain", json={"record": ROW})
    assert r.status_code == 501
    assert r.json()["error"] == {
        "type": "MissingExtra",
        "message": "Explanations need SHAP, which is not installed: pip install 'ferryml[shap]'.",
    }
    assert server.client.post("/v1/models/churn/predict", json={"record": ROW}).status_code == 200
    with pytest.raises(MissingExtra, match=r"pip install 'ferryml\[shap\]'"):
        ferry.explain("models:/churn@champion", ROW)
