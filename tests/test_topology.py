"""The team topology of `make topology` (examples/topology.py): PostgreSQL, S3 (moto), a Dask
scheduler and two workers, ferry server, two ferry serve replicas and ferry agent, each a
process of its own; the closed loop runs across them while a worker, the agent and a
replica are killed, and nothing answered or accepted is lost."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import topology  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.postgres]

DEMO_STORY = ["trigger", "data", "trained", "gate", "rollout", "rollout", "promoted"]


@pytest.fixture
def running(
    tmp_path: Path,
    request: pytest.FixtureRequest,
    make_store: Callable[[str, Path, pytest.FixtureRequest], AbstractContextManager[str]],
) -> Iterator[topology.Topology]:
    with make_store("postgresql", tmp_path, request) as store_url:
        top = topology.Topology(tmp_path, store_url, say=lambda _: None)
        try:
            yield top.start()
        finally:
            top.close()


@pytest.mark.timeout(900)
def test_the_loop_closes_across_processes_and_survives_killed_parts(
    running: topology.Topology,
) -> None:
    said: list[str] = []
    result: dict[str, Any] = topology.run_loop(
        running, said.append, before=200, after_promotion=80, batch=80, per_request=4
    )
    assert (result["outcome"], result["events"]) == ("promoted", DEMO_STORY), (
        said,
        result["story"],
    )
    candidate = result["candidate"]
    # Both replicas served the canary and the promoted model, read from the store.
    for replica, counts in result["versions_by_replica"].items():
        assert counts.get(1, 0) > 0 and counts.get(candidate, 0) > 0, (replica, counts)
    # The retraining ran on Dask: a worker was killed while it ran a step, the other
    # finished the pipeline; the new model's package is in the S3 bucket.
    killed, task = result["worker_killed"]
    assert task.startswith("execute_shipped-")
    assert killed not in result["tasks_by_live_worker"]
    assert sum(result["tasks_by_live_worker"].values()) > 0
    assert result["candidate_package_bytes_in_s3"] > 0
    assert result["agent_starts"] == 2 and result["replica_restarted_at"] is not None
    # Nothing lost: every answered prediction stored once, every accepted label joined.
    assert result["answered"] == result["sent"]
    assert result["missing"] == []
    assert result["stored"] == result["stored_distinct"] == result["answered"]
    assert result["labels_pending"] == 0
    assert result["labels_stored"] == result["labels_accepted"] == result["answered"]
