"""Run by the real mlflow client against ferry server: log_model with a signature and an
input example, the registry (register_model, version tags, aliases, descriptions),
load_model by alias, and sklearn autolog on a real fit. Prints one JSON object."""

import json
import sys

import mlflow
import mlflow.sklearn
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

name = sys.argv[1]
out: dict = {}
client = MlflowClient()
mlflow.set_experiment("mlflow-models")

X, y = load_iris(return_X_y=True, as_frame=True)
X.columns = [c.replace(" (cm)", "").replace(" ", "_") for c in X.columns]
model = LogisticRegression(max_iter=300).fit(X, y)
expected = model.predict(X.head(5)).tolist()
out["expected"] = expected
out["rows"] = X.head(5).to_dict(orient="records")

with mlflow.start_run(run_name="train") as run:
    info = mlflow.sklearn.log_model(
        model,
        name="model",
        signature=infer_signature(X, model.predict(X)),
        input_example=X.head(3),
        registered_model_name=name,
        serialization_format="cloudpickle",
        pip_requirements=["scikit-learn"],  # inferring them loads the model in a subprocess
    )
    mlflow.log_metric("accuracy", float(model.score(X, y)))
out["run_id"] = run.info.run_id
assert str(info.registered_model_version) == "1", info.registered_model_version

# a second version through register_model of the run's model
version = mlflow.register_model(f"runs:/{run.info.run_id}/model", name)
assert version.version == "2", version.version
client.set_model_version_tag(name, "2", "validated", "yes")
client.update_model_version(name, "2", description="second")
client.set_registered_model_alias(name, "champion", "1")
client.set_registered_model_alias(name, "challenger", "2")
client.set_registered_model_tag(name, "team", "ml")
champion = client.get_model_version_by_alias(name, "champion")
assert champion.version == "1" and champion.run_id == run.info.run_id, champion
second = client.get_model_version(name, "2")
assert second.tags == {"validated": "yes"} and second.description == "second", second
registered = client.get_registered_model(name)
assert registered.aliases == {"champion": "1", "challenger": "2"}, registered.aliases
assert registered.tags == {"team": "ml"}, registered.tags
found = client.search_model_versions(f"name='{name}'")
assert sorted(v.version for v in found) == ["1", "2"], found
assert [m.name for m in client.search_registered_models(f"name LIKE '{name[:-1]}_'")] == [name]
try:
    client.get_model_version_by_alias(name, "nope")
    raise AssertionError("an unknown alias resolved")
except MlflowException as e:
    assert e.error_code == "INVALID_PARAMETER_VALUE", e.error_code

loaded = mlflow.pyfunc.load_model(f"models:/{name}@champion")
assert loaded.predict(X.head(5)).tolist() == expected
loaded = mlflow.sklearn.load_model(f"models:/{name}/2")
assert loaded.predict(X.head(5)).tolist() == expected
client.delete_registered_model_alias(name, "challenger")
client.delete_model_version_tag(name, "2", "validated")
assert client.get_model_version(name, "2").tags == {}

# sklearn autolog on a real fit, in a run of its own
mlflow.sklearn.autolog()
with mlflow.start_run(run_name="autolog") as auto:
    LogisticRegression(max_iter=200, C=0.5).fit(X, y)
mlflow.sklearn.autolog(disable=True)
logged = client.get_run(auto.info.run_id)
assert logged.data.params["C"] == "0.5", logged.data.params
assert "training_accuracy_score" in logged.data.metrics, logged.data.metrics
assert logged.data.tags["estimator_class"].endswith("LogisticRegression")
assert [i.dataset.name for i in logged.inputs.dataset_inputs], logged.inputs
models = mlflow.search_logged_models(
    experiment_ids=[logged.info.experiment_id], output_format="list"
)
auto_models = [m for m in models if m.source_run_id == auto.info.run_id]
assert auto_models and auto_models[0].status == "READY", models
reloaded = mlflow.sklearn.load_model(f"models:/{auto_models[0].model_id}")
assert reloaded.predict(X.head(5)).tolist() == expected or len(reloaded.classes_) == 3
out["autolog_run_id"] = auto.info.run_id

print(json.dumps(out))
