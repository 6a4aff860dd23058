"""ferry.yaml is read in one place and every field is type-checked on load: a mistake is
one line naming the file, the line and the field, in Python and on every command (exit 2)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ferryml.config import Settings, read_config
from ferryml.errors import ConfigError

Cli = Callable[..., tuple[int, str, str]]

# (the file, the line and field named, what is said about it)
WRONG = {
    "a range bound that is not a number": (
        "data:\n  wine:\n    expectations:\n      - not_null: age\n"
        "      - range: {column: age, min: low}\n",
        "line 5: data.wine.expectations[1].range.min",
        "must be a number or a date such as 2024-01-01; got 'low'.",
    ),
    "a range upside down": (
        "data:\n  wine:\n    expectations:\n      - range: {column: age, min: 9, max: 1}\n",
        "line 4: data.wine.expectations[0].range", "min 9 is above max 1.",
    ),
    "a range between a number and a date": (
        "data:\n  wine:\n    expectations:\n"
        "      - range: {column: day, min: 0, max: 2024-01-01}\n",
        "line 4: data.wine.expectations[0].range",
        "min 0 and max 2024-01-01 differ: give two numbers or two dates.",
    ),
    "an unknown expectation": (
        "data:\n  wine:\n    expectations:\n      - rnage: {column: age}\n",
        "line 4: data.wine.expectations[0].rnage",
        "unknown field (did you mean 'range'?); use allowed_values, custom, freshness, "
        "not_null, range, regex, "
        "row_count, unique.",
    ),
    "a freshness that is not a duration": (
        "data:\n  t:\n    expectations:\n      - freshness: {column: ts, max_age: a week}\n",
        "line 4: data.t.expectations[0].freshness.max_age",
        "must be seconds or a duration such as 90s, 30min, 6h, 1d or 1d12h; got 'a week'.",
    ),
    "a gate delta that is not a number": (
        "models:\n  wine:\n    gate:\n      metric: f1\n      min_delta: lots\n",
        "line 5: models.wine.gate.min_delta", "must be a number; got 'lots'.",
    ),
    "a gate floor that is text": (
        "models:\n  wine:\n    gate: {floors: {accuracy: high}}\n",
        "line 3: models.wine.gate.floors.accuracy", "must be a number; got 'high'.",
    ),
    "a section that is not a mapping": (
        "store: sqlite:///x.db\nmonitoring: 3\n",
        "line 2: monitoring", "must be a mapping; got 3.",
    ),
    "a setting that is not text": ("home: 3\n", "line 1: home", "must be text; got 3."),
    "a policy named against the rule for names": (
        "policies:\n  retrain churn:\n    deployment: churn\n",
        "line 2: policies['retrain churn']",
        "is not a name: use 1 to 250 letters, digits, _ . and -, not starting with . or -; "
        "got 'retrain churn'.",
    ),
    "a key that is not a plain name": (
        "monitoring:\n  alerts:\n    channels:\n      on call: 3\n",
        "line 4: monitoring.alerts.channels['on call']",
        "is not one of log, webhook, slack, email: write log or a mapping with one key, its "
        "kind, e.g. {slack: 'https://hooks.slack.com/services/...'}.",
    ),
    "an unknown key": (
        "stroe: sqlite:///x.db\n",
        "line 1: stroe",
        "unknown field (did you mean 'store'?); use artifacts, dask, data, home, link, "
        "models, monitoring, pipelines, policies, remote, server, server_retry, store, trust.",
    ),
    "an alert threshold that is not a number": (
        "monitoring:\n  alerts:\n    rules:\n      - {metric: acc, op: '<', threshold: high}\n",
        "line 4: monitoring.alerts.rules[0].threshold", "must be a number; got 'high'.",
    ),
    "an alert rule that does not parse": (
        "monitoring:\n  alerts:\n    rules:\n      - accuracy is low\n",
        "line 4: monitoring.alerts.rules[0]",
        "Alert rule 'accuracy is low' is invalid: expected a comparison after 'accuracy'",
    ),
    "an alert rule sending to no such channel": (
        "monitoring:\n  alerts:\n    channels: {ops: log}\n"
        "    rules: [{metric: m, op: '>', threshold: 1, channels: [pager]}]\n",
        "line 2: monitoring.alerts",
        "alert rule 'm' sends to channel 'pager', which is not configured; the channels "
        "are: ops.",
    ),
    "a channel timeout that is not a number": (
        "monitoring:\n  alerts:\n    channels:\n"
        "      ops: {slack: {url: 'https://hooks.example.com/x', timeout: soon}}\n",
        "line 4: monitoring.alerts.channels.ops.slack.timeout", "must be a number; got 'soon'.",
    ),
    "an email channel without its sender": (
        "monitoring:\n  alerts:\n    channels:\n      mail:\n"
        "        email: {host: smtp, to: a@b}\n",
        "line 5: monitoring.alerts.channels.mail.email.sender", "is required.",
    ),
    "a policy cool-down that is not a duration": (
        "policies:\n  p:\n    deployment: churn\n    triggers: [{alert: watch}]\n"
        "    retrain: {pipeline: 'train.py:training'}\n    cooldown: soon\n",
        "line 6: policies.p.cooldown",
        "must be seconds or a duration such as 90s, 30min, 6h, 1d or 1d12h; got 'soon'.",
    ),
}  # fmt: skip


@pytest.mark.parametrize(("text", "where", "detail"), WRONG.values(), ids=WRONG)
def test_a_wrong_field_is_named_by_file_line_and_field(
    tmp_path: Path, text: str, where: str, detail: str
) -> None:
    (tmp_path / "ferry.yaml").write_text(text)
    with pytest.raises(ConfigError) as caught:
        read_config(tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'ferry.yaml'} {where}: {detail}"), message
    assert "\n" not in message


# (the file's bytes, the whole message after its path)
WHOLE_FILE = {
    "invalid YAML": (
        b"store: sqlite:///x.db\nhome: [unclosed\n",
        " line 3 column 1: not valid YAML: expected ',' or ']', but got '<stream end>'; while "
        "parsing a flow sequence. Fix the file.",
    ),
    "a binary file": (
        b"store: \xff\xfe\x00\x01",
        " is not text: byte 7 is not UTF-8. Write ferry.yaml as YAML text in UTF-8.",
    ),
    "a control character": (
        b"store: \x00\n",
        ": not valid YAML: character '\\x00' at position 7 is not allowed. Fix the file.",
    ),
    "a list": (
        b"- store\n- home\n",
        " line 1: the file must be a mapping of settings and sections; got a list.",
    ),
    "a policy given twice": (
        b"policies:\n  p: {}\nstore: x\npolicies:\n  q: {}\n",
        " line 4: policies: given twice (first on line 1); YAML would keep only the last. "
        "Keep one.",
    ),
    "a field given twice deep down": (
        b"data:\n  t:\n    expectations:\n      - range: {column: a, min: 1, min: 2}\n",
        " line 4: data.t.expectations[0].range.min: given twice (first on line 4); YAML would "
        "keep only the last. Keep one.",
    ),
    "three wrong fields": (
        b"home: 3\nstore: 4\nremote: 5\n",
        " line 1: home: must be text; got 3. (2 more problems in the file)",
    ),
}


@pytest.mark.parametrize(("content", "message"), WHOLE_FILE.values(), ids=WHOLE_FILE)
def test_a_file_that_cannot_be_read_is_one_line_naming_it(
    tmp_path: Path, content: bytes, message: str
) -> None:
    (tmp_path / "ferry.yaml").write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        Settings.resolve(cwd=tmp_path, environ={})
    assert str(caught.value) == f"{tmp_path / 'ferry.yaml'}{message}"


def test_empty_sections_and_an_empty_file_are_accepted(tmp_path: Path) -> None:
    (tmp_path / "ferry.yaml").write_text("")
    assert read_config(tmp_path).policies is None
    (tmp_path / "ferry.yaml").write_text("data:\nmodels: {}\nmonitoring:\npolicies:\n")
    config = read_config(tmp_path)
    assert (config.data, config.models, config.declares_policies) == (None, {}, True)


def test_a_valid_file_is_read_into_its_sections(tmp_path: Path) -> None:
    (tmp_path / "ferry.yaml").write_text(
        "store: sqlite:///x.db\n"
        "data:\n  wine:\n    expectations:\n      - not_null: age\n"
        "      - range: {column: day, min: 2024-01-01}\n"
        "      - freshness: {column: ts, max_age: 1d12h}\n"
        "models:\n  wine: {gate: {min_delta: 0.01}}\n"
        "monitoring:\n  alerts:\n    rules: [accuracy < 0.8 cooldown 30min]\n"
    )
    config = read_config(tmp_path)
    assert config.store == "sqlite:///x.db"
    assert config.data is not None and config.models is not None
    kinds = [e.kind for e in config.data["wine"].expectations]
    assert kinds == ["not_null", "range", "freshness"]
    freshness = config.data["wine"].expectations[2].freshness
    assert freshness is not None and freshness.max_age == 129600.0
    gate = config.models["wine"].gate
    assert gate is not None and (gate.metric, gate.min_delta) == (None, 0.01)
    assert config.monitoring is not None and config.monitoring.alerts is not None
    (rule,) = config.monitoring.alerts.rules
    assert (rule.metric, rule.op, rule.threshold, rule.cooldown) == ("accuracy", "<", 0.8, 1800)


@pytest.mark.parametrize(
    "command",
    [
        ["info"],
        ["runs", "list"],
        ["data", "validate", "wine"],
        ["models", "list"],
        ["monitor", "list"],
        ["agent", "--once"],
    ],
)
def test_every_command_refuses_a_wrong_file_with_one_line_and_exit_2(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    (tmp_path / "ferry.yaml").write_text("models:\n  wine:\n    gate: {min_delta: lots}\n")
    monkeypatch.chdir(tmp_path)
    assert cli(*command) == (
        2,
        "",
        f"error: {tmp_path / 'ferry.yaml'} line 3: models.wine.gate.min_delta: must be a "
        "number; got 'lots'.\n",
    )


def test_help_works_beside_a_wrong_file(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "ferry.yaml").write_text("monitoring: 3\n")
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("runs", "list", "--help")
    assert (code, err) == (0, "")
    assert "Usage: ferry runs list" in out
