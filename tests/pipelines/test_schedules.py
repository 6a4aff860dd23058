"""Pipeline schedules: the store's claim is a lock (each occurrence runs once, however many
schedulers race and however long one was down), the scheduler runs due pipelines and
records how they ended, and the CLI reports errors in one line."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from ferryml.config import Settings
from ferryml.errors import AlreadyExists, InvalidArgument, NotFound
from ferryml.pipelines.schedule import (
    ScheduledRun,
    add_schedule,
    claim_due,
    create_schedule,
    list_schedules,
    next_occurrence,
    remove_schedule,
    run_scheduler,
)
from ferryml.store.sql import SqlStore
from ferryml.store.sql_schedules import SqlScheduleStore
from ferryml.tracking.client import FerryClient

HERE = Path(__file__).resolve().parent
MINUTE = 60_000
T0 = 1_704_078_000_000  # 2024-01-01 03:00:00 UTC
CRON_ADVICE = (
    "Use five fields, minute hour day-of-month month day-of-week, in UTC, "
    "e.g. '0 3 * * *' (03:00 UTC every day)."
)


@pytest.fixture
def schedules(store_url: str) -> Iterator[SqlScheduleStore]:
    store = SqlScheduleStore(SqlStore(store_url).open())
    yield store
    store.close()


@pytest.fixture
def examples(monkeypatch: pytest.MonkeyPatch) -> str:
    """Makes ``scheduled_example`` importable, as a project folder's modules are."""
    monkeypatch.syspath_prepend(str(HERE))
    return "scheduled_example"


# -- the store --------------------------------------------------------------------------


def test_next_occurrence_is_strictly_after_the_given_time_in_utc() -> None:
    assert next_occurrence("0 3 * * *", T0) == T0 + 24 * 60 * MINUTE
    assert next_occurrence("0 3 * * *", T0 - 1) == T0
    assert next_occurrence("*/15 * * * *", T0 + 1) == T0 + 15 * MINUTE
    assert next_occurrence("@hourly", T0) == T0 + 60 * MINUTE


@pytest.mark.parametrize(
    ("cron", "reason"),
    [
        ("0 3 * *", "it has 4 field(s), not 5"),
        ("0 0 3 * * *", "it has 6 field(s), not 5"),
        ("61 * * * *", "[61 * * * *] is not acceptable, out of range"),
        ("0 0 30 2 *", "it names no date that exists"),
        (
            "@reboot",
            "'@reboot' is not one of @hourly, @daily, @midnight, @weekly, "
            "@monthly, @yearly, @annually",
        ),
    ],
)
def test_a_bad_cron_expression_is_named_with_the_reason_and_an_example(
    cron: str, reason: str
) -> None:
    with pytest.raises(InvalidArgument) as raised:
        next_occurrence(cron, T0)
    assert str(raised.value) == f"Cron expression {cron!r} is invalid: {reason}. {CRON_ADVICE}"


def test_create_schedule_is_due_at_the_first_occurrence_after_creation(
    schedules: SqlScheduleStore,
) -> None:
    created = create_schedule(
        schedules,
        "nightly",
        target="m:p",
        cron="0 3 * * *",
        params={"lr": "0.1"},
        now_ms=T0 - MINUTE,
    )
    assert created.next_run_time == T0
    assert schedules.get_schedule("nightly") == created
    assert created.params == {"lr": "0.1"}
    assert created.last_status is None and created.last_run_time is None


def test_claim_due_returns_a_due_schedule_once_and_moves_it_to_the_next_occurrence(
    schedules: SqlScheduleStore,
) -> None:
    create_schedule(schedules, "nightly", target="m:p", cron="0 3 * * *", now_ms=T0 - MINUTE)
    assert claim_due(schedules, T0 - 1) == []
    [claimed] = claim_due(schedules, T0 + 5_000)
    assert claimed.name == "nightly"
    assert claimed.last_run_time == T0 + 5_000
    assert claimed.last_status == "RUNNING"
    assert claimed.next_run_time == T0 + 24 * 60 * MINUTE
    assert schedules.get_schedule("nightly") == claimed
    assert claim_due(schedules, T0 + 5_000) == []
    assert claim_due(schedules, T0 + 60 * MINUTE) == []


def test_a_second_store_claiming_the_same_occurrence_gets_nothing(
    store_url: str, schedules: SqlScheduleStore
) -> None:
    create_schedule(schedules, "nightly", target="m:p", cron="0 3 * * *", now_ms=T0 - MINUTE)
    other = SqlScheduleStore(SqlStore(store_url).open())
    try:
        assert [s.name for s in claim_due(schedules, T0)] == ["nightly"]
        assert claim_due(other, T0) == []
        assert claim_due(other, T0 + 1_000) == []  # another clock, the same occurrence
        assert [s.name for s in claim_due(other, T0 + 24 * 60 * MINUTE)] == ["nightly"]
    finally:
        other.close()


def test_missed_occurrences_run_once_then_the_next_future_occurrence(
    schedules: SqlScheduleStore,
) -> None:
    create_schedule(schedules, "minutely", target="m:p", cron="* * * * *", now_ms=T0 - 1)
    down_until = T0 + 90 * MINUTE + 30_000  # 91 occurrences passed while nothing ran
    [claimed] = claim_due(schedules, down_until)
    assert claimed.next_run_time == T0 + 91 * MINUTE
    assert claim_due(schedules, down_until) == []
    assert [s.name for s in claim_due(schedules, T0 + 91 * MINUTE)] == ["minutely"]


def test_claim_due_takes_every_due_schedule_and_leaves_the_others(
    schedules: SqlScheduleStore,
) -> None:
    create_schedule(schedules, "b-hourly", target="m:p", cron="0 * * * *", now_ms=T0 - 1)
    create_schedule(schedules, "a-daily", target="m:p", cron="0 3 * * *", now_ms=T0 - 1)
    create_schedule(schedules, "later", target="m:p", cron="0 4 * * *", now_ms=T0 - 1)
    assert [s.name for s in claim_due(schedules, T0)] == ["a-daily", "b-hourly"]
    assert schedules.get_schedule("later").last_status is None


def test_record_result_stores_the_run_and_its_status(schedules: SqlScheduleStore) -> None:
    create_schedule(schedules, "nightly", target="m:p", cron="0 3 * * *", now_ms=T0 - 1)
    [claimed] = claim_due(schedules, T0)
    assert schedules.record_result("nightly", "abc", "FINISHED", run_time=claimed.last_run_time)
    found = schedules.get_schedule("nightly")
    assert (found.last_run_id, found.last_status, found.last_run_time) == ("abc", "FINISHED", T0)


def test_a_slow_run_does_not_overwrite_the_status_of_a_newer_occurrence(
    schedules: SqlScheduleStore,
) -> None:
    create_schedule(schedules, "minutely", target="m:p", cron="* * * * *", now_ms=T0 - 1)
    [first] = claim_due(schedules, T0)
    [second] = claim_due(schedules, T0 + MINUTE)
    assert schedules.record_result("minutely", "new", "FINISHED", run_time=second.last_run_time)
    assert not schedules.record_result("minutely", "old", "FAILED", run_time=first.last_run_time)
    found = schedules.get_schedule("minutely")
    assert (found.last_run_id, found.last_status) == ("new", "FINISHED")


def test_record_result_of_a_removed_schedule_raises_not_found(
    schedules: SqlScheduleStore,
) -> None:
    with pytest.raises(NotFound, match=r"^Schedule 'gone' not found\. See `ferry schedule list`"):
        schedules.record_result("gone", "abc", "FINISHED")


def test_create_schedule_twice_raises_already_exists(schedules: SqlScheduleStore) -> None:
    create_schedule(schedules, "nightly", target="m:p", cron="0 3 * * *")
    with pytest.raises(AlreadyExists) as raised:
        create_schedule(schedules, "nightly", target="m:q", cron="0 4 * * *")
    assert str(raised.value) == (
        "Schedule 'nightly' already exists. Pick another name, or remove it first with "
        "`ferry schedule remove nightly`."
    )


def test_get_and_delete_an_unknown_schedule_raise_not_found(
    schedules: SqlScheduleStore,
) -> None:
    message = "Schedule 'nope' not found. See `ferry schedule list`."
    with pytest.raises(NotFound) as raised:
        schedules.get_schedule("nope")
    assert str(raised.value) == message
    with pytest.raises(NotFound) as raised:
        schedules.delete_schedule("nope")
    assert str(raised.value) == message


def test_list_schedules_by_name_and_delete_removes_one(schedules: SqlScheduleStore) -> None:
    for name in ("b", "a", "c"):
        create_schedule(schedules, name, target="m:p", cron="0 3 * * *")
    assert [s.name for s in schedules.list_schedules()] == ["a", "b", "c"]
    schedules.delete_schedule("b")
    assert [s.name for s in schedules.list_schedules()] == ["a", "c"]


_CLAIMER = """
import json, sys
from ferryml.store.sql import SqlStore
from ferryml.pipelines.schedule import claim_due
from ferryml.store.sql_schedules import SqlScheduleStore
store = SqlScheduleStore(SqlStore(sys.argv[1]).open())
print("ready", flush=True)
sys.stdin.readline()
got = [[s.name, clock] for clock in json.loads(sys.argv[2]) for s in claim_due(store, clock)]
print(json.dumps(got), flush=True)
"""


@pytest.mark.e2e
def test_two_processes_claiming_at_once_each_occurrence_goes_to_exactly_one(
    store_url: str, schedules: SqlScheduleStore
) -> None:
    names = [f"s{i:02d}" for i in range(20)]
    for name in names:
        create_schedule(schedules, name, target="m:p", cron="* * * * *", now_ms=T0 - 1)
    clocks = [T0 + k * MINUTE + 1_000 for k in range(5)]
    got = _race(
        [[sys.executable, "-c", _CLAIMER, store_url, json.dumps(clocks)]] * 2, env=os.environ
    )
    claims = [tuple(claim) for out in got for claim in json.loads(out)]
    # Each process may see a later clock first, so a claim belongs to the occurrence due
    # at that clock: every (schedule, occurrence) is claimed by one process, once.
    assert sorted(claims) == sorted({(n, c) for n in names for c in clocks})


def _race(commands: list[list[str]], env: Mapping[str, str]) -> list[str]:
    """Start every command, wait until each has said it is ready, then let them all go
    at once; returns what each printed last."""
    procs = [
        subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        for command in commands
    ]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline() == "ready\n"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        outputs = [p.communicate(timeout=120)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0] * len(procs)
    return [out.strip().splitlines()[-1] for out in outputs]


# -- the core: add, list, remove, run ---------------------------------------------------


def test_add_schedule_checks_the_pipeline_and_stores_the_schedule(
    settings: Settings, examples: str
) -> None:
    added = add_schedule(settings, "nightly", "0 3 * * *", f"{examples}:tiny", {"x": "3"})
    assert (added.target, added.cron, added.params) == (f"{examples}:tiny", "0 3 * * *", {"x": "3"})
    assert list_schedules(settings) == [added]
    remove_schedule(settings, "nightly")
    assert list_schedules(settings) == []


@pytest.mark.parametrize(
    ("name", "cron", "target", "params", "message"),
    [
        (
            "bad name!",
            "0 3 * * *",
            "scheduled_example:tiny",
            {},
            "Schedule name 'bad name!' is invalid: use 1 to 250 letters, digits, _ . and -, not "
            "starting with . or -, e.g. 'nightly-training'.",
        ),
        (
            "n",
            "every day",
            "scheduled_example:tiny",
            {},
            f"Cron expression 'every day' is invalid: it has 2 field(s), not 5. {CRON_ADVICE}",
        ),
        (
            "n",
            "0 3 * * *",
            "scheduled_example.tiny",
            {},
            "Target 'scheduled_example.tiny' must look like module:pipeline, "
            "e.g. 'training.flows:train'.",
        ),
        (
            "n",
            "0 3 * * *",
            "no_such_module_here:tiny",
            {},
            "Cannot import module 'no_such_module_here' for 'no_such_module_here:tiny': "
            "No module named 'no_such_module_here'. Run from the folder that holds it, "
            "or install it.",
        ),
        (
            "n",
            "0 3 * * *",
            "scheduled_example:double",
            {},
            "'scheduled_example:double' is not a pipeline (it is of type Step): mark the "
            "function with @pipeline.",
        ),
        (
            "n",
            "0 3 * * *",
            "scheduled_example:tiny",
            {"y": "1"},
            "Pipeline 'tiny' has no parameter 'y'; its parameters are: x.",
        ),
    ],
)
def test_add_schedule_rejects_bad_input_with_a_message_that_says_what_to_do(
    sqlite_settings: Settings,
    examples: str,
    name: str,
    cron: str,
    target: str,
    params: dict[str, str],
    message: str,
) -> None:
    with pytest.raises(InvalidArgument) as raised:
        add_schedule(sqlite_settings, name, cron, target, params)
    assert str(raised.value) == message
    assert list_schedules(sqlite_settings) == []


def test_add_schedule_of_a_missing_pipeline_raises_not_found(
    sqlite_settings: Settings, examples: str
) -> None:
    with pytest.raises(NotFound) as raised:
        add_schedule(sqlite_settings, "n", "0 3 * * *", "scheduled_example:nope")
    assert str(raised.value) == "Module 'scheduled_example' has no 'nope'. Check the pipeline name."


def test_add_schedule_twice_raises_already_exists(sqlite_settings: Settings, examples: str) -> None:
    add_schedule(sqlite_settings, "nightly", "0 3 * * *", "scheduled_example:tiny")
    with pytest.raises(AlreadyExists, match=r"^Schedule 'nightly' already exists\. "):
        add_schedule(sqlite_settings, "nightly", "0 4 * * *", "scheduled_example:tiny")


def test_remove_an_unknown_schedule_raises_not_found(sqlite_settings: Settings) -> None:
    with pytest.raises(NotFound) as raised:
        remove_schedule(sqlite_settings, "nope")
    assert str(raised.value) == "Schedule 'nope' not found. See `ferry schedule list`."


def test_scheduler_runs_a_due_pipeline_once_and_records_it(
    settings: Settings, examples: str
) -> None:
    added = add_schedule(settings, "tiny", "* * * * *", "scheduled_example:tiny", {"x": "3"})
    due = added.next_run_time / 1000 + 1
    seen: list[ScheduledRun] = []
    [run] = run_scheduler(settings, once=True, now=lambda: due, on_run=seen.append)
    assert (run.schedule, run.status) == ("tiny", "FINISHED")
    assert run.run_id is not None and seen == [run]
    [found] = list_schedules(settings)
    assert (found.last_run_id, found.last_status) == (run.run_id, "FINISHED")
    assert found.next_run_time == added.next_run_time + MINUTE
    client = FerryClient(settings)
    try:
        recorded = client.get_run(run.run_id)
    finally:
        client.close()
    assert recorded.info.status == "FINISHED"
    assert recorded.data.params["x"] == "3"
    assert run_scheduler(settings, once=True, now=lambda: due) == []


def test_a_failing_pipeline_is_recorded_failed_and_the_others_still_run(
    settings: Settings, examples: str
) -> None:
    add_schedule(settings, "a-broken", "* * * * *", "scheduled_example:broken")
    added = add_schedule(settings, "b-tiny", "* * * * *", "scheduled_example:tiny")
    store = SqlScheduleStore(SqlStore(settings.store_url).open())
    try:  # a module deleted after the schedule was added: the run cannot even start
        create_schedule(store, "c-gone", target="deleted_module:flow", cron="* * * * *")
    finally:
        store.close()
    due = added.next_run_time / 1000 + 1
    runs = run_scheduler(settings, once=True, now=lambda: due)
    assert [(r.schedule, r.status) for r in runs] == [
        ("a-broken", "FAILED"),
        ("b-tiny", "FINISHED"),
        ("c-gone", "FAILED"),
    ]
    assert runs[0].run_id is not None and runs[2].run_id is None
    assert [(s.name, s.last_status) for s in list_schedules(settings)] == [
        ("a-broken", "FAILED"),
        ("b-tiny", "FINISHED"),
        ("c-gone", "FAILED"),
    ]


def test_a_scheduler_that_was_down_runs_missed_work_once(
    sqlite_settings: Settings, examples: str
) -> None:
    added = add_schedule(sqlite_settings, "tiny", "* * * * *", "scheduled_example:tiny")
    back = added.next_run_time / 1000 + 10 * 60 + 5  # ten occurrences missed
    assert [r.status for r in run_scheduler(sqlite_settings, once=True, now=lambda: back)] == [
        "FINISHED"
    ]
    [found] = list_schedules(sqlite_settings)
    assert found.next_run_time == added.next_run_time + 11 * MINUTE


def test_the_scheduler_loop_ends_when_stop_is_set(sqlite_settings: Settings, examples: str) -> None:
    added = add_schedule(sqlite_settings, "tiny", "* * * * *", "scheduled_example:tiny")
    due = added.next_run_time / 1000 + 1
    stop = threading.Event()
    stop.set()  # set before the first pass: the loop makes that pass and returns
    runs = run_scheduler(sqlite_settings, interval=3600, now=lambda: due, stop=stop)
    assert [r.schedule for r in runs] == ["tiny"]


def test_run_scheduler_rejects_a_non_positive_interval(sqlite_settings: Settings) -> None:
    with pytest.raises(InvalidArgument) as raised:
        run_scheduler(sqlite_settings, interval=0)
    assert str(raised.value) == "Interval 0 must be a positive number of seconds."


_SCHEDULER = """
import json, sys
from pathlib import Path
from ferryml.config import Settings
from ferryml.pipelines.schedule import run_scheduler
home, store, artifacts, clock = sys.argv[1:]
settings = Settings(home=Path(home), store_url=store, artifacts_url=artifacts)
print("ready", flush=True)
sys.stdin.readline()
runs = run_scheduler(settings, once=True, now=lambda: float(clock))
print(json.dumps([list(r) for r in runs]), flush=True)
"""


@pytest.mark.e2e
def test_two_schedulers_started_at_once_run_each_due_pipeline_once(
    settings: Settings, examples: str, tmp_path: Path
) -> None:
    names = [f"tiny{i}" for i in range(6)]
    for i, name in enumerate(names):
        added = add_schedule(settings, name, "* * * * *", "scheduled_example:tiny", {"x": str(i)})
    clock = str(added.next_run_time / 1000 + 1)
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    commands = [
        [
            sys.executable,
            "-c",
            _SCHEDULER,
            str(tmp_path / f"home{n}"),  # a journal each, as on two machines
            settings.store_url,
            settings.artifacts_url,
            clock,
        ]
        for n in range(2)
    ]
    runs = [run for out in _race(commands, env=env) for run in json.loads(out)]
    assert sorted(name for name, _, _ in runs) == names
    assert {status for _, _, status in runs} == {"FINISHED"}
    recorded = {s.name: s.last_run_id for s in list_schedules(settings)}
    assert recorded == {name: run_id for name, run_id, _ in runs}


# -- the CLI ----------------------------------------------------------------------------


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def test_cli_schedule_add_list_and_remove(
    cli: Callable[..., tuple[int, str, str]], home: Path, examples: str
) -> None:
    code, out, err = cli(
        "--home", str(home), "schedule", "add", "nightly", "--cron", "0 3 * * *",
        "scheduled_example:tiny", "--param", "x=2", "--json",
    )  # fmt: skip
    assert (code, err) == (0, "")
    added = json.loads(out)
    assert (added["name"], added["params"], added["last_status"]) == ("nightly", {"x": "2"}, None)
    next_run = next_occurrence("0 3 * * *", added["creation_time"])
    assert added["next_run_time"] == next_run

    code, out, _ = cli("--home", str(home), "schedule", "list", "--json")
    assert code == 0 and json.loads(out) == [added]
    code, out, _ = cli("--home", str(home), "schedule", "list")
    assert code == 0
    assert "nightly" in out and "scheduled_example:tiny" in out and "x=2" in out

    code, out, err = cli("--home", str(home), "schedule", "remove", "nightly")
    assert (code, out, err) == (0, "Removed schedule 'nightly'.\n", "")
    code, out, _ = cli("--home", str(home), "schedule", "list")
    assert (code, out) == (
        0,
        "No schedules. Add one with `ferry schedule add NAME --cron '0 3 * * *' "
        "module:pipeline`.\n",
    )


def test_cli_schedule_add_says_when_it_runs_next(
    cli: Callable[..., tuple[int, str, str]], home: Path, examples: str
) -> None:
    code, out, err = cli(
        "--home", str(home), "schedule", "add", "n", "--cron", "0 0 1 1 *", "scheduled_example:tiny"
    )
    assert (code, err) == (0, "")
    [found] = list_schedules(Settings.resolve(home=home, environ={}))
    year = dt.datetime.fromtimestamp(found.next_run_time / 1000, dt.UTC).year
    assert out == (
        f"Scheduled 'n': scheduled_example:tiny at '0 0 1 1 *' (UTC); next run "
        f"{year}-01-01 00:00 UTC. Start `ferry scheduler` to run it.\n"
    )


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["add", "n", "--cron", "0 3 * *", "scheduled_example:tiny"],
            2,
            f"Cron expression '0 3 * *' is invalid: it has 4 field(s), not 5. {CRON_ADVICE}",
        ),
        (
            ["add", "n", "--cron", "0 3 * * *", "tiny"],
            2,
            "Target 'tiny' must look like module:pipeline, e.g. 'training.flows:train'.",
        ),
        (
            ["add", "n", "--cron", "0 3 * * *", "scheduled_example:tiny", "-p", "z=1"],
            2,
            "Pipeline 'tiny' has no parameter 'z'; its parameters are: x.",
        ),
        (["remove", "nope"], 1, "Schedule 'nope' not found. See `ferry schedule list`."),
    ],
)
def test_cli_schedule_errors_are_one_line_exit_2_for_bad_usage_and_1_for_failure(
    cli: Callable[..., tuple[int, str, str]],
    home: Path,
    examples: str,
    args: list[str],
    code: int,
    message: str,
) -> None:
    assert cli("--home", str(home), "schedule", *args) == (code, "", f"error: {message}\n")


def test_cli_schedule_add_of_an_existing_name_exits_1(
    cli: Callable[..., tuple[int, str, str]], home: Path, examples: str
) -> None:
    args = ["schedule", "add", "n", "--cron", "0 3 * * *", "scheduled_example:tiny"]
    assert cli("--home", str(home), *args)[0] == 0
    code, out, err = cli("--home", str(home), *args)
    assert (code, out) == (1, "")
    assert err == (
        "error: Schedule 'n' already exists. Pick another name, or remove it first with "
        "`ferry schedule remove n`.\n"
    )


def test_cli_a_param_without_equals_is_bad_usage(
    cli: Callable[..., tuple[int, str, str]], home: Path
) -> None:
    code, _, err = cli(
        "--home", str(home), "schedule", "add", "n", "--cron", "0 3 * * *", "m:p", "--param", "x"
    )
    assert code == 2
    assert "Invalid value for '--param': 'x' is not KEY=VALUE, e.g. --param lr=0.1" in err


def test_cli_scheduler_once_runs_what_is_due(
    cli: Callable[..., tuple[int, str, str]], home: Path, examples: str
) -> None:
    code, out, _ = cli("--home", str(home), "scheduler", "--once")
    assert (code, out) == (0, "No schedule was due.\n")
    store = SqlScheduleStore(SqlStore(f"sqlite:///{home / 'ferry.db'}").open())
    try:  # created an hour ago, so its first occurrence is due now
        create_schedule(
            store,
            "tiny",
            target="scheduled_example:tiny",
            cron="* * * * *",
            now_ms=int(time.time() * 1000) - 60 * MINUTE,
        )
    finally:
        store.close()
    code, out, _ = cli("--home", str(home), "scheduler", "--once")
    assert code == 0
    [found] = list_schedules(Settings.resolve(home=home, environ={}))
    assert out == f"tiny: run {found.last_run_id} FINISHED\n"


def test_cli_scheduler_rejects_a_too_short_interval(
    cli: Callable[..., tuple[int, str, str]], home: Path
) -> None:
    code, _, err = cli("--home", str(home), "scheduler", "--interval", "0")
    assert code == 2
    assert "Invalid value for '--interval'" in err


@pytest.mark.e2e
def test_cli_scheduler_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    ferry_bin = Path(sys.executable).parent / "ferry"
    proc = subprocess.Popen(
        [str(ferry_bin), "--home", str(tmp_path / "home"), "scheduler", "--interval", "3600"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "Scheduler started; checking every 3600s. Ctrl-C stops.\n"
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (proc.returncode, out, err) == (0, "", "")


@pytest.mark.e2e
def test_cli_schedules_a_pipeline_of_the_project_folder(tmp_path: Path) -> None:
    """As a user does: ``ferry`` run from the folder that holds the pipeline's module."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "flows.py").write_text((HERE / "scheduled_example.py").read_text())
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    ferry_bin = str(Path(sys.executable).parent / "ferry")
    done = subprocess.run(
        [ferry_bin, "schedule", "add", "nightly", "--cron", "0 3 * * *", "flows:tiny"],
        cwd=project, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    store = f"sqlite:///{project.resolve() / '.ferry' / 'ferry.db'}"
    assert (done.returncode, done.stderr) == (
        0,
        f"ferry: new store {store} for project {project.resolve()} (see `ferry info`)\n",
    )
