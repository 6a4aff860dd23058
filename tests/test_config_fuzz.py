"""Any ferry.yaml gives a valid config or one line naming the file: never a traceback."""

from __future__ import annotations

import contextlib
import inspect
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

import ferryml._configtypes as schema
import ferryml.automation._policy_config as policy_schema
from ferryml._configfile import ProjectConfig
from ferryml.automation.policy import load_policies
from ferryml.config import Settings, read_config
from ferryml.data.validation import expectation_from_checked
from ferryml.errors import ConfigError, InvalidArgument
from ferryml.monitoring.alerts import AlertManager
from ferryml.registry.api import configured_gate


def _field_names() -> list[str]:
    models = [
        cls
        for module in (schema, policy_schema)
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, BaseModel)
    ]
    return sorted({name for cls in (*models, ProjectConfig) for name in cls.model_fields})


NAMES = _field_names()
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-1000, 1000)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | st.sampled_from(
        [
            "30min",
            "1d12h",
            "a:b",
            "accuracy < 0.8",
            "m > 1 for 2 windows",
            "log",
            ">",
            "rose by",
            "2024-01-01",
            "https://hooks.example.test/x",
            "classification",
            "approval",
            "0 3 * * *",
        ]
    )  # fmt: skip
)
KEYS = st.sampled_from(NAMES) | st.text(max_size=6)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=25,
)
MAPPINGS = st.dictionaries(KEYS, VALUES, max_size=6)
# channels shaped like the real ones, secrets given in clear or by a variable's name
CHANNELS = VALUES | st.dictionaries(
    st.sampled_from(["webhook", "slack", "email", "log"]),
    VALUES
    | st.dictionaries(
        st.sampled_from(["url", "url_env", "password", "password_env", "host", "sender", "to"]),
        SCALARS,
        max_size=4,
    ),
    max_size=2,
)
# documents shaped like the real one, so that most reach the checks deep inside each section
SECTIONS = st.fixed_dictionaries(
    {},
    optional={
        "policies": st.dictionaries(st.sampled_from(["p", "q"]), MAPPINGS, max_size=2),
        "data": st.dictionaries(
            st.sampled_from(["wine", "t"]),
            st.fixed_dictionaries({"expectations": st.lists(MAPPINGS, max_size=3)}),
            max_size=2,
        ),
        "models": st.dictionaries(st.just("m"), st.fixed_dictionaries({"gate": MAPPINGS})),
        "monitoring": st.fixed_dictionaries(
            {
                "alerts": st.fixed_dictionaries(
                    {"rules": st.lists(VALUES), "channels": st.dictionaries(KEYS, CHANNELS)}
                )
            }
        ),
    },
)
DOCUMENTS = SECTIONS | st.dictionaries(KEYS, VALUES, max_size=5)


def _check(folder: Path) -> None:
    path = folder / "ferry.yaml"
    try:
        config = read_config(folder)
    except ConfigError as e:
        message = str(e)
        assert message.startswith(str(path)) and "\n" not in message, message
        return
    # A file that loads is usable: what the parts build from it fails only as InvalidArgument.
    for use in (
        lambda: load_policies(folder),
        lambda: [configured_gate(folder, name, "regression") for name in config.models or {}],
        # the alert rules and channels, as a monitor's pass builds them (no I/O yet)
        lambda: AlertManager.from_config(Settings.resolve(cwd=folder, environ={})),
        lambda: [
            expectation_from_checked(item)
            for entry in (config.data or {}).values()
            for item in entry.expectations
        ],
    ):
        with contextlib.suppress(InvalidArgument):
            use()


@settings(max_examples=100, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(DOCUMENTS)
def test_any_document_is_a_config_or_one_line_naming_the_file(document: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "ferry.yaml").write_text(yaml.safe_dump(document), encoding="utf-8")
        _check(Path(folder))


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=64) | st.text(max_size=64).map(str.encode))
def test_any_bytes_are_a_config_or_one_line_naming_the_file(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "ferry.yaml").write_bytes(content)
        _check(Path(folder))
