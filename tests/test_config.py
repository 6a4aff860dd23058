"""Settings resolution: explicit value, then FERRY_* variable, then ferry.yaml, then default."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ferryml.config import Settings, find_root, read_config, redact_url
from ferryml.errors import ConfigError


def test_default_is_a_ferry_folder_in_the_working_directory(tmp_path: Path) -> None:
    s = Settings.resolve(cwd=tmp_path, environ={})
    assert s.home == tmp_path / ".ferry"
    assert s.store_url == f"sqlite:///{tmp_path / '.ferry' / 'ferry.db'}"
    assert s.artifacts_url == (tmp_path / ".ferry" / "artifacts").as_uri()
    assert s.journal_dir == tmp_path / ".ferry" / "journal"


def test_environment_overrides_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "ferry.yaml").write_text("home: from-file\nstore: sqlite:///file.db\n")
    s = Settings.resolve(cwd=tmp_path, environ={"FERRY_STORE": "postgresql+psycopg://h/db"})
    assert s.store_url == "postgresql+psycopg://h/db"
    assert s.home == tmp_path / "from-file"


def test_explicit_values_override_the_environment(tmp_path: Path) -> None:
    s = Settings.resolve(home=tmp_path / "x", cwd=tmp_path, environ={"FERRY_HOME": "/elsewhere"})
    assert s.home == tmp_path / "x"


def test_the_parts_sections_of_ferry_yaml_are_accepted(tmp_path: Path) -> None:
    (tmp_path / "ferry.yaml").write_text(
        "home: h\nmodels: {m: {gate: {metric: f1}}}\ndata: {}\nmonitoring: {}\npolicies: {}\n"
    )
    assert Settings.resolve(cwd=tmp_path, environ={}).home == tmp_path / "h"
    models = read_config(tmp_path).models
    assert models is not None and models["m"].gate is not None
    assert models["m"].gate.metric == "f1"


def _project(tmp_path: Path, marker: str = "ferry.yaml") -> tuple[Path, Path]:
    """A project folder holding ``marker`` and a subfolder two levels down."""
    root = tmp_path / "project"
    sub = root / "notebooks" / "deep"
    sub.mkdir(parents=True)
    if marker == "ferry.yaml":
        (root / "ferry.yaml").write_text("")
    else:
        (root / marker).mkdir()
    return root, sub


@pytest.mark.parametrize("marker", ["ferry.yaml", ".ferry"])
def test_the_project_root_is_the_nearest_folder_above_holding_a_marker(
    tmp_path: Path, marker: str
) -> None:
    root, sub = _project(tmp_path, marker)
    s = Settings.resolve(cwd=sub, environ={})
    assert (s.root, s.home, s.cwd) == (root, root / ".ferry", sub)
    assert s.store_url == f"sqlite:///{root / '.ferry' / 'ferry.db'}"
    assert s.config_file == (root / "ferry.yaml" if marker == "ferry.yaml" else None)
    assert find_root(sub) == root


def test_the_config_file_of_the_project_above_is_read(tmp_path: Path) -> None:
    root, sub = _project(tmp_path)
    (root / "ferry.yaml").write_text("home: state\nremote: s3://bucket/data\n")
    s = Settings.resolve(cwd=sub, environ={})
    assert (s.home, s.remote) == (root / "state", "s3://bucket/data")
    assert s.sources["home"] == "ferry.yaml"


def test_the_nearest_of_nested_projects_wins(tmp_path: Path) -> None:
    root, sub = _project(tmp_path)
    inner = root / "notebooks"
    (inner / ".ferry").mkdir()
    assert Settings.resolve(cwd=sub, environ={}).root == inner
    assert Settings.resolve(cwd=root, environ={}).root == root


def test_the_search_stops_at_the_top_of_a_git_repository(tmp_path: Path) -> None:
    (tmp_path / ".ferry").mkdir()  # someone else's project, above the repository
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "src").mkdir()
    assert find_root(repo / "src") is None
    s = Settings.resolve(cwd=repo / "src", environ={})
    assert (s.root, s.home) == (repo / "src", repo / "src" / ".ferry")


def test_without_a_project_the_working_directory_is_the_root(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    s = Settings.resolve(cwd=tmp_path, environ={})
    assert (s.root, s.config_file, s.new_store) == (tmp_path, None, True)
    assert s.sources == dict.fromkeys(("home", "store", "artifacts", "server", "remote"), "default")


def test_variables_override_the_project_found_above(tmp_path: Path) -> None:
    root, sub = _project(tmp_path)
    (root / "ferry.yaml").write_text("store: sqlite:///file.db\n")
    s = Settings.resolve(
        cwd=sub, environ={"FERRY_HOME": "elsewhere", "FERRY_STORE": "postgresql+psycopg://h/db"}
    )
    # a relative path typed by the user is relative to where they are
    assert (s.root, s.home, s.store_url) == (root, sub / "elsewhere", "postgresql+psycopg://h/db")
    assert (s.sources["home"], s.sources["store"]) == ("FERRY_HOME", "FERRY_STORE")
    assert Settings.resolve(cwd=sub, home=tmp_path / "x", environ={}).sources["home"] == "argument"


def test_describe_hides_passwords(tmp_path: Path) -> None:
    s = Settings.resolve(
        cwd=tmp_path,
        store="postgresql+psycopg://bob:s3cret@db:5432/ferry",
        server="https://ann:tok@ferry.example.com",
        environ={},
    )
    described = s.describe()
    assert described["store"] == "postgresql+psycopg://bob:***@db:5432/ferry"
    assert described["server"] == "https://ann:***@ferry.example.com"
    assert "s3cret" not in str(described) and "tok@" not in str(described)
    assert redact_url("postgresql+psycopg://bob@db/ferry") == "postgresql+psycopg://bob@db/ferry"


def test_settings_are_hashable_and_equal_whatever_their_sources(tmp_path: Path) -> None:
    from_file = Settings.resolve(cwd=tmp_path, environ={})
    given = Settings.resolve(cwd=tmp_path, home=tmp_path / ".ferry", environ={})
    assert from_file == given and hash(from_file) == hash(given)


def test_relative_paths_in_the_file_are_from_the_root_and_typed_ones_from_where_you_are(
    tmp_path: Path,
) -> None:
    root, sub = _project(tmp_path)
    (root / "ferry.yaml").write_text(
        "store: sqlite:///meta/ferry.db?timeout=5\nartifacts: blobs\nremote: ../backup\n"
    )
    s = Settings.resolve(cwd=sub, environ={})
    assert s.store_url == f"sqlite:///{root / 'meta' / 'ferry.db'}?timeout=5"
    assert (s.artifacts_url, s.remote) == (str(root / "blobs"), str(tmp_path / "backup"))
    typed = Settings.resolve(cwd=sub, store="sqlite:///here.db", environ={"FERRY_REMOTE": "r"})
    assert (typed.store_url, typed.remote) == (f"sqlite:///{sub / 'here.db'}", str(sub / "r"))
    assert Settings.resolve(cwd=sub, store="sqlite:///:memory:", environ={}).store_url == (
        "sqlite:///:memory:"
    )


def test_how_long_a_client_retries_a_team_server_is_a_setting(tmp_path: Path) -> None:
    assert Settings.resolve(cwd=tmp_path, environ={}).server_retry == 20.0
    (tmp_path / "ferry.yaml").write_text("server_retry: 2m\n")
    assert Settings.resolve(cwd=tmp_path, environ={}).server_retry == 120.0
    env = {"FERRY_SERVER_RETRY": "5"}
    assert Settings.resolve(cwd=tmp_path, environ=env).server_retry == 5.0
    with pytest.raises(ConfigError, match="FERRY_SERVER_RETRY must be seconds or a duration"):
        Settings.resolve(cwd=tmp_path, environ={"FERRY_SERVER_RETRY": "soon"})
    (tmp_path / "ferry.yaml").write_text("server_retry: soon\n")
    with pytest.raises(ConfigError, match="line 1: server_retry"):
        Settings.resolve(cwd=tmp_path, environ={})


def test_a_client_gives_up_on_an_unreachable_server_after_the_setting(tmp_path: Path) -> None:
    from ferryml.errors import StoreUnavailable
    from ferryml.store.factory import open_tracking_store

    env = {"FERRY_TRACKING_URI": "http://127.0.0.1:9", "FERRY_SERVER_RETRY": "0.2"}
    store = open_tracking_store(Settings.resolve(cwd=tmp_path, environ=env))
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="Cannot reach the ferryml server"):
        store.get_experiment("1")
    assert time.monotonic() - started < 10  # the default budget is 20 s
    store.close()
