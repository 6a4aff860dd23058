"""Deleting model versions, models and aliases: numbers are never reused, and nothing an
alias or a deployment points at can be deleted."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from ferryml.config import Settings
from ferryml.errors import Conflict, NotFound
from ferryml.registry.models import Registry
from ferryml.serving.deployments import Deployments

DIGEST = "ab" * 32


@pytest.fixture
def registry(settings: Settings) -> Iterator[Registry]:
    r = Registry(settings)
    yield r
    r.close()


def _version(registry: Registry, name: str = "wine") -> int:
    created = registry.store.create_model_version(
        name, package_digest=DIGEST, flavor="sklearn", source="runs:/x/model", run_id=None, user="u"
    )
    return int(created.version)


def test_a_deleted_version_is_gone_and_its_number_is_not_reused(registry: Registry) -> None:
    for _ in range(3):
        _version(registry)

    registry.delete_version("wine", 3, reason="bad data")

    assert [v.version for v in registry.store.list_model_versions("wine")] == [1, 2]
    assert registry.store.get_registered_model("wine").latest_version == 2
    with pytest.raises(NotFound, match="Version 3 of model 'wine' was deleted."):
        registry.version("wine/3")
    assert _version(registry) == 4
    events = registry.store.events("wine")
    assert [(e.action, e.version, e.reason) for e in events][-2] == (
        "delete_version",
        3,
        "bad data",
    )


def test_an_aliased_version_cannot_be_deleted_until_the_alias_is(registry: Registry) -> None:
    _version(registry)
    registry.set_alias("wine", "champion", 1)
    with pytest.raises(
        Conflict,
        match=r"Version 1 of model 'wine' is still champion; move the alias \(`ferry models "
        r"alias wine champion VERSION`\) or delete it \(`ferry models delete-alias wine "
        r"champion`\) first.",
    ):
        registry.delete_version("wine", 1)
    with pytest.raises(Conflict, match=r"Model 'wine' has aliases champion \(version 1\)"):
        registry.delete_model("wine")

    assert registry.delete_alias("wine", "champion") == 1
    registry.delete_version("wine", 1)

    assert registry.store.list_model_versions("wine") == []


def test_a_version_a_deployment_routes_to_cannot_be_deleted(
    registry: Registry, settings: Settings
) -> None:
    _version(registry)
    _version(registry)
    deployments = Deployments(settings)
    deployments.create("wine-api", "wine", 1, canary=2)
    deployments.close()
    with pytest.raises(
        Conflict, match="Deployment 'wine-api' routes to version 2 of model 'wine'; change"
    ):
        registry.delete_version("wine", 2)
    with pytest.raises(Conflict, match="Deployment 'wine-api' routes to version 1"):
        registry.delete_model("wine")


def test_a_deleted_model_disappears_and_a_new_one_numbers_on(registry: Registry) -> None:
    _version(registry)
    _version(registry)
    registry.store.set_tag("wine", 0, "team", "red")

    registry.delete_model("wine")

    assert [m.name for m in registry.store.list_registered_models()] == []
    with pytest.raises(NotFound, match="Registered model 'wine' not found"):
        registry.store.list_model_versions("wine")
    assert _version(registry) == 3
    model = registry.store.get_registered_model("wine")
    assert (model.latest_version, dict(model.tags)) == (3, {})
    assert [v.version for v in registry.store.list_model_versions("wine")] == [3]


def test_models_delete_on_the_command_line(
    cli: Callable[..., tuple[int, str, str]], sqlite_settings: Settings
) -> None:
    registry = Registry(sqlite_settings)
    _version(registry)
    _version(registry)
    registry.set_alias("wine", "champion", 2)
    registry.close()
    base = ("--home", str(sqlite_settings.home))

    code, out, err = cli(*base, "models", "delete", "wine/2")
    assert (code, out) == (1, "")
    assert err.startswith("error: Version 2 of model 'wine' is still champion;")
    code, out, _ = cli(*base, "models", "delete-alias", "wine", "champion", "--reason", "retired")
    assert (code, out) == (0, "wine@champion removed (it pointed at version 2).\n")
    code, out, _ = cli(*base, "models", "delete", "wine/2")
    assert (code, out) == (0, "Deleted version 2 of model 'wine'; `ferry gc` reclaims its files.\n")
    code, out, _ = cli(*base, "models", "delete", "wine")
    assert (code, out) == (
        0,
        "Deleted model 'wine' and its versions; `ferry gc` reclaims their files.\n",
    )
    code, _, err = cli(*base, "models", "delete", "wine@champion")
    assert code == 2 and "'wine@champion' is not NAME/VERSION or NAME" in err
    code, _, err = cli(*base, "models", "delete", "wine")
    assert (code, err) == (
        1,
        "error: Registered model 'wine' not found. See `ferry models list`.\n",
    )


def test_the_python_api_deletes_like_mlflow(fluent: Settings) -> None:
    import pandas as pd
    from sklearn.dummy import DummyClassifier

    import ferryml as ferry
    import ferryml.data

    frame = pd.DataFrame({"x": [0.0, 1.0]})
    for _ in range(2):
        with ferry.start_run():
            ferry.log_model(
                DummyClassifier().fit(frame, [0, 1]), input_example=frame, registered_model_name="m"
            )
    ferry.set_registered_model_alias("m", "champion", 2)
    ferry.delete_model_version("m", 1)
    with pytest.raises(Conflict, match="Version 2 of model 'm' is still champion"):
        ferry.delete_model_version("m", 2)
    ferry.delete_registered_model_alias("m", "champion")
    ferry.delete_registered_model("m")
    with pytest.raises(NotFound, match="Registered model 'm' not found"):
        ferry.load_model("models:/m/2")

    ferry.data.add(frame, name="t")
    ferry.data.delete("t@1")
    with pytest.raises(NotFound, match="Version 1 of dataset 't' was deleted"):
        ferry.data.load("t@1")
