"""Deleting and restoring runs and experiments: soft, as in MLflow, until removed for good."""

from __future__ import annotations

import pytest

import ferryml as ferry
from ferryml.config import Settings
from ferryml.errors import AlreadyExists, Conflict, InvalidArgument, NotFound
from ferryml.store.entities import ViewType
from ferryml.tracking.client import FerryClient


def _ids(client: FerryClient, experiment_id: str, view: str = "active_only") -> list[str]:
    return [r.run_id for r in client.search_runs([experiment_id], run_view_type=view).runs]


def test_a_deleted_run_is_hidden_from_search_until_restored(client: FerryClient) -> None:
    experiment_id = client.create_experiment("e")
    kept = client.create_run(experiment_id, run_name="kept").run_id
    gone = client.create_run(experiment_id, run_name="gone").run_id
    client.log_metric(gone, "acc", 0.5)

    client.delete_run(gone)

    assert _ids(client, experiment_id) == [kept]
    assert _ids(client, experiment_id, "deleted_only") == [gone]
    assert sorted(_ids(client, experiment_id, "all")) == sorted([kept, gone])
    assert client.get_run(gone).info.lifecycle_stage == "deleted"
    with pytest.raises(NotFound, match=f"Run '{gone}' was deleted; values cannot be logged"):
        client.log_metric(gone, "acc", 0.6)

    client.restore_run(gone)

    assert sorted(_ids(client, experiment_id)) == sorted([kept, gone])
    assert client.get_run(gone).data.metrics == {"acc": 0.5}


def test_deleting_an_experiment_deletes_its_runs_and_restoring_brings_them_back(
    client: FerryClient,
) -> None:
    experiment_id = client.create_experiment("e")
    run_id = client.create_run(experiment_id, run_name="r").run_id

    client.delete_experiment(experiment_id)

    assert client.list_experiments() == []
    assert [e.name for e in client.list_experiments(ViewType.DELETED_ONLY)] == ["e"]
    assert _ids(client, experiment_id) == []
    with pytest.raises(Conflict, match="Experiment 'e' is deleted; restore it with"):
        client.create_run(experiment_id)
    with pytest.raises(Conflict, match="belongs to the deleted experiment 'e'"):
        client.restore_run(run_id)
    with pytest.raises(
        AlreadyExists, match="Experiment 'e' was deleted, and its name is kept until `ferry gc`"
    ):
        client.create_experiment("e")

    client.restore_experiment(experiment_id)

    assert [e.name for e in client.list_experiments()] == ["e"]
    assert _ids(client, experiment_id) == [run_id]


def test_only_deleted_runs_and_experiments_can_be_removed_for_good(client: FerryClient) -> None:
    experiment_id = client.create_experiment("e")
    run_id = client.create_run(experiment_id, run_name="r").run_id
    client.log_batch(run_id, params={"p": 1}, tags={"t": "x"})
    client.log_text(run_id, "hello", "a.txt")
    client.flush()
    with pytest.raises(Conflict, match=f"Run '{run_id}' is active; delete it first"):
        client.store.delete_run(run_id)
    with pytest.raises(Conflict, match="Experiment 'e' is active; delete it first"):
        client.store.delete_experiment(experiment_id)

    client.delete_run(run_id)
    client.store.delete_run(run_id)

    with pytest.raises(NotFound, match=f"Run '{run_id}' not found"):
        client.get_run(run_id)
    with pytest.raises(NotFound, match=f"Run '{run_id}' not found"):
        client.restore_run(run_id)

    other = client.create_run(experiment_id, run_name="other").run_id
    client.delete_experiment(experiment_id)
    client.store.delete_experiment(experiment_id)

    with pytest.raises(NotFound, match=f"Run '{other}' not found"):
        client.get_run(other)
    assert client.list_experiments(ViewType.ALL) == []
    assert client.get_experiment(client.create_experiment("e")).name == "e"  # free again


def test_unknown_ids_and_views_are_refused(client: FerryClient) -> None:
    with pytest.raises(NotFound, match=f"Run '{'a' * 32}' not found. See `ferry runs list`."):
        client.delete_run("a" * 32)
    with pytest.raises(NotFound, match="Experiment id '42' not found"):
        client.delete_experiment("42")
    with pytest.raises(InvalidArgument, match="View 'some' is not one of active_only"):
        client.list_experiments("some")


def test_the_fluent_api_deletes_and_restores_like_mlflow(fluent: Settings) -> None:
    with ferry.start_run() as run:
        pass
    ferry.delete_run(run.info.run_id)
    assert ferry.search_runs() == []
    assert [r.run_id for r in ferry.search_runs(run_view_type="all")] == [run.info.run_id]
    ferry.restore_run(run.info.run_id)
    assert [r.run_id for r in ferry.search_runs()] == [run.info.run_id]

    experiment_id = run.info.experiment_id
    ferry.delete_experiment(experiment_id)
    assert ferry.get_run(run.info.run_id).info.lifecycle_stage == "deleted"
    ferry.restore_experiment(experiment_id)
    assert ferry.get_run(run.info.run_id).info.lifecycle_stage == "active"


def test_deleting_a_run_deletes_its_child_runs_and_restoring_restores_them(
    client: FerryClient,
) -> None:
    experiment_id = client.create_experiment("e")
    parent = client.create_run(experiment_id, run_name="sweep").run_id
    child = client.create_run(experiment_id, run_name="trial", parent_run_id=parent).run_id
    grandchild = client.create_run(experiment_id, run_name="step", parent_run_id=child).run_id
    other = client.create_run(experiment_id, run_name="other").run_id

    assert client.delete_run(parent) == [child, grandchild]
    assert _ids(client, experiment_id) == [other]

    assert client.restore_run(parent) == [child, grandchild]
    assert sorted(_ids(client, experiment_id)) == sorted([parent, child, grandchild, other])
