"""Secrets of alert channels (webhook tokens, SMTP passwords) stay in the environment:
the config and the store name the variables, and neither the store nor the logs ever hold
the values, whether delivery works or fails."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest
from test_alerts import FAST, Receiver, window
from test_alerts import receiver as http_receiver  # noqa: F401 - the alert tests' fixtures
from test_alerts import smtp as smtp_server  # noqa: F401

from ferryml.config import Settings
from ferryml.errors import InvalidArgument
from ferryml.monitoring import MonitorSpec
from ferryml.monitoring.alerts import AlertManager

TOKEN = "tok-5f3a9c1e7b2d"
PASSWORD = "pw-8e1d4b6a0c3f"


def _files_holding(folder: Path, secret: str) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def test_secrets_named_by_variables_are_used_but_never_stored_or_logged(
    sqlite_settings: Settings,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("HOOK_TOKEN", TOKEN)
    monkeypatch.setenv("SMTP_PASSWORD", "secret")  # the one the server accepts
    monkeypatch.setenv("WRONG_PASSWORD", PASSWORD)
    receiver: Receiver = request.getfixturevalue("http_receiver")
    controller, box = request.getfixturevalue("smtp_server")
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))  # bound, not listening: refused
    mail = {"host": controller.hostname, "port": controller.port, "sender": "f@x.test"}
    channels = {
        "hook": {"webhook": f"{receiver.url}/hooks/${{HOOK_TOKEN}}"},
        "dead": {"webhook": {"url": f"http://127.0.0.1:{dead.getsockname()[1]}/${{HOOK_TOKEN}}"}},
        "mail": {"email": {**mail, "to": "o@x.test", "username": "ferry",
                           "password_env": "SMTP_PASSWORD"}},
        "badmail": {"email": {**mail, "to": "o@x.test", "username": "ferry",
                              "password": "${WRONG_PASSWORD}"}},
    }  # fmt: skip
    try:
        with AlertManager(sqlite_settings, ["m > 1"], channels, retry=FAST) as manager:
            (alert,) = manager.evaluate("churn", *window(0), {"m": 2.0})
    finally:
        dead.close()
    ok = {d.channel: d.ok for d in alert.deliveries}
    assert ok == {"hook": True, "dead": False, "mail": True, "badmail": False}
    assert [path for path, _, _ in receiver.requests] == [f"/hooks/{TOKEN}"]
    assert {("ferry", "secret"), ("ferry", PASSWORD)} <= set(box.logins)

    errors = " ".join(d.error or "" for d in alert.deliveries)
    assert "refused" in errors.lower() or "cannot reach" in errors
    for secret in (TOKEN, PASSWORD):
        assert _files_holding(sqlite_settings.home, secret) == []  # the store, WAL, journal
        assert secret not in errors
        assert secret not in caplog.text


def test_a_monitor_refuses_to_store_a_secret_given_in_clear() -> None:
    def spec(channel: object) -> MonitorSpec:
        return MonitorSpec("watch", "d", "model:m@champion", channels=[channel])

    for channel in (
        {"email": {"host": "h", "sender": "s", "to": "t", "password": PASSWORD}},
        {"slack": f"https://hooks.slack.test/services/T/B/{TOKEN}"},
        {"webhook": {"url": f"https://hooks.example.test/x?token={TOKEN}"}},
        {"webhook": f"https://user:{PASSWORD}@hooks.example.test/x"},
    ):
        with pytest.raises(InvalidArgument, match="in clear, which the store would keep") as e:
            spec(channel)
        assert TOKEN not in str(e.value) and PASSWORD not in str(e.value)
    # what it may keep: the variables' names, and a URL with no secret in it
    for channel in (
        {"email": {"host": "h", "sender": "s", "to": "t", "password_env": "SMTP_PASSWORD"}},
        {"slack": {"url_env": "SLACK_URL"}},
        {"webhook": "https://hooks.example.test/x/${HOOK_TOKEN}"},
        {"webhook": "http://127.0.0.1:9/alerts"},
        "log",
    ):
        assert spec(channel).to_dict()["channels"] == [channel]
