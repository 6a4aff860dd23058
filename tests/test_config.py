"""Settings resolution: explicit value, then FERRY_* variable, then ferry.yaml, then default."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferryml.config import Settings, config_section
from ferryml.errors import InvalidArgument


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


def test_config_file_errors_name_the_file_and_the_fix(tmp_path: Path) -> None:
    config = tmp_path / "ferry.yaml"
    config.write_text("- a list\n")
    with pytest.raises(InvalidArgument, match="ferry.yaml must be a mapping with keys home"):
        Settings.resolve(cwd=tmp_path, environ={})
    config.write_text("stroe: sqlite:///x.db\n")
    with pytest.raises(InvalidArgument, match="unknown key\\(s\\) stroe; known keys are"):
        Settings.resolve(cwd=tmp_path, environ={})
    config.write_text("home: [unclosed\n")
    with pytest.raises(InvalidArgument, match="is not valid YAML"):
        Settings.resolve(cwd=tmp_path, environ={})


def test_the_parts_sections_of_ferry_yaml_are_accepted(tmp_path: Path) -> None:
    (tmp_path / "ferry.yaml").write_text(
        "home: h\nmodels: {m: {gate: {metric: f1}}}\ndata: {}\nmonitoring: {}\npolicies: {}\n"
    )
    assert Settings.resolve(cwd=tmp_path, environ={}).home == tmp_path / "h"
    assert config_section(tmp_path, "models") == {"m": {"gate": {"metric": "f1"}}}
