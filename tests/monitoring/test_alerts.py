"""Alerts: rules, channels over a real HTTP receiver and a real SMTP server, consecutive
windows, deduplication, cool-down, resolution, retries, the store and ``ferry alerts``."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import email
import email.policy
import json
import logging
import math
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from ferryml.config import Settings
from ferryml.errors import InvalidArgument, NotFound
from ferryml.monitoring.alerts import (
    Alert,
    AlertManager,
    Retry,
    Rule,
    list_alerts,
    parse_rule,
)
from ferryml.monitoring.channels import (
    EmailChannel,
    LogChannel,
    SlackChannel,
    WebhookChannel,
    parse_channel,
    parse_channels,
)
from ferryml.store.sql import SqlStore
from ferryml.store.sql_alerts import AlertState, SqlAlertStore

FAST = Retry(attempts=3, base_delay_s=0.01, max_delay_s=0.02)
T0 = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)


def window(n: int) -> tuple[dt.datetime, dt.datetime]:
    """The n-th hourly window from T0."""
    return T0 + dt.timedelta(hours=n), T0 + dt.timedelta(hours=n + 1)


class Recorder:
    """A channel that keeps what it is sent."""

    kind = "memory"

    def __init__(self) -> None:
        self.sent: list[Alert] = []

    def send(self, alert: Alert) -> None:
        self.sent.append(alert)


class Broken:
    kind = "broken"

    def send(self, alert: Alert) -> None:
        raise RuntimeError("boom")


def run(
    manager: AlertManager, values: list[float | None], metric: str = "m", monitor: str = "churn"
) -> list[list[Alert]]:
    """Evaluate one window per value (None: a window without the metric)."""
    return [
        manager.evaluate(monitor, *window(n), {} if v is None else {metric: v})
        for n, v in enumerate(values)
    ]


def states(fired: list[list[Alert]]) -> list[list[str]]:
    return [[a.state for a in alerts] for alerts in fired]


# -- a real HTTP receiver and a real SMTP server ------------------------------------------


class Receiver:
    """An HTTP server on 127.0.0.1 that records every POST and answers with the next of
    ``statuses`` (200 once they run out)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], Any]] = []
        self.statuses: list[int] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append((self.path, dict(self.headers), json.loads(body)))
                status = outer.statuses.pop(0) if outer.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def bodies(self) -> list[Any]:
        return [body for _, _, body in self.requests]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()
    r.thread.join()


@pytest.fixture
def dead_url() -> Iterator[str]:
    """A URL on a port that is bound but not listening: connections are refused."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{held.getsockname()[1]}/hook"


class Mailbox:
    def __init__(self) -> None:
        self.envelopes: list[Any] = []
        self.logins: list[tuple[str, str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.logins.append((data.login.decode(), data.password.decode()))
        return AuthResult(success=data.password == b"secret", handled=False)

    def messages(self) -> list[email.message.EmailMessage]:
        return [
            email.message_from_bytes(e.content, policy=email.policy.default) for e in self.envelopes
        ]


@pytest.fixture
def smtp() -> Iterator[tuple[Controller, Mailbox]]:
    """An SMTP server (aiosmtpd) on a free port of 127.0.0.1 that accepts a login."""
    box = Mailbox()
    for _ in range(5):  # another process may take the free port before the server does
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        controller = Controller(
            box,
            hostname="127.0.0.1",
            port=port,
            authenticator=box.authenticate,
            auth_require_tls=False,
        )
        try:
            controller.start()
            break
        except OSError:
            continue
    else:
        pytest.fail("no free port for the SMTP server")
    yield controller, box
    controller.stop()


# -- rules -------------------------------------------------------------------------------


def test_rule_text_gives_metric_comparison_threshold_and_windows() -> None:
    rule = parse_rule("drift_share > 0.3 for 2 windows")
    assert rule == Rule("drift_share > 0.3 for 2 windows", "drift_share", ">", 0.3, windows=2)
    assert parse_rule("accuracy < 0.85") == Rule("accuracy < 0.85", "accuracy", "<", 0.85)
    assert parse_rule("  f1>=.5 for 1 window").op == ">="


def test_rule_text_reads_dropped_by_rose_by_and_cooldown() -> None:
    dropped = parse_rule("estimated_auc dropped by 0.05")
    assert (dropped.op, dropped.threshold, dropped.name) == (
        "dropped_by",
        0.05,
        "estimated_auc dropped by 0.05",
    )
    rose = parse_rule("latency_p99 rose_by 50 for 3 windows cooldown 30m")
    assert (rose.op, rose.windows, rose.cooldown_s) == ("rose_by", 3, 1800.0)
    assert rose.text == "latency_p99 rose by 50 for 3 windows"


def test_rule_mapping_from_ferry_yaml_gives_every_field() -> None:
    rule = parse_rule(
        yaml.safe_load(
            "{name: acc, metric: accuracy, op: '<', threshold: 0.85, windows: 2, "
            "cooldown: 6h, channels: [ops]}"
        )
    )
    assert rule == Rule("acc", "accuracy", "<", 0.85, 2, 6 * 3600.0, ("ops",))
    assert parse_rule({"metric": "auc", "op": "dropped by", "threshold": "0.05"}) == Rule(
        "auc dropped by 0.05", "auc", "dropped_by", 0.05
    )
    assert parse_rule({"metric": "m", "op": ">", "threshold": 1, "channels": "ops"}).channels == (
        "ops",
    )
    assert parse_rule({"metric": "m", "op": ">", "threshold": 1, "cooldown": 90}).cooldown_s == 90


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("> 0.3", "it does not start with a metric name"),
        ("drift_share == 0.3", "expected a comparison after 'drift_share', found '=='"),
        ("drift_share 0.3", "expected a comparison after 'drift_share', found '0.3'"),
        ("accuracy < high", "the threshold must be a number, found 'high'"),
        ("accuracy <", "the threshold must be a number, found 'nothing'"),
        ("drift_share > 0.3 for two windows", "'for two windows' needs a whole number"),
        ("drift_share > 0.3 for 0 windows", "windows: must be at least 1; got 0"),
        ("accuracy dropped by -0.05", "dropped by needs a positive threshold; got -0.05"),
        ("accuracy < 0.85 please", "unexpected 'please' at the end"),
        ("accuracy < 0.85 cooldown soon", "the cool-down must be seconds or a duration such as"),
        ({"metric": "accuracy", "op": "<"}, "threshold: is required"),
        ({"metric": "accuracy", "op": "~", "threshold": 1}, "op: must be '>', '>=', '<', '<='"),
        ({"metric": "a b", "op": "<", "threshold": 1}, "metric: must be a metric name such as"),
        ({"metric": "m", "op": "<", "threshold": "x"}, "threshold: must be a number; got 'x'"),
        ({"metric": "m", "op": "<", "threshold": 1, "window": 2}, "mean 'windows'"),
        ({"metric": "m", "op": "<", "threshold": 1, "windows": "2"}, "whole number; got '2'"),
        ({"metric": "m", "op": "<", "threshold": 1, "channels": 3}, "must be a list; got 3"),
        (42, "must be text or a mapping, not int"),
    ],
)
def test_bad_rules_are_refused_with_the_reason_and_an_example(spec: Any, reason: str) -> None:
    with pytest.raises(InvalidArgument, match=f"^Alert rule .*{reason}.*e\\.g\\."):
        parse_rule(spec)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"threshold": math.nan}, "threshold: must be a finite number; got nan"),
        ({"threshold": math.inf}, "threshold: must be a finite number; got inf"),
        ({"windows": True}, "windows: must be a whole number; got True"),
        ({"cooldown_s": -1}, "cooldown: must be at least 0 .*; got -1"),
        ({"channels": 3}, "channels: must be a list; got 3"),
        ({"name": ""}, "name: must be non-empty text; got ''"),
        ({"op": "=="}, "op: must be '>', '>=', '<', '<=', 'dropped_by' or 'rose_by'; got '=='"),
    ],
)
def test_rule_refuses_out_of_range_fields(fields: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidArgument, match=reason):
        Rule(**{"name": "r", "metric": "m", "op": ">", "threshold": 1.0, **fields})


def test_dropped_by_breaches_at_exactly_the_threshold_despite_float_rounding() -> None:
    rule = parse_rule("auc dropped by 0.05")
    assert rule.breached(0.85, reference=0.90)
    assert rule.breached(0.80, reference=0.85)
    assert not rule.breached(0.86, reference=0.90)
    assert not rule.breached(0.80)  # no reference, no breach
    assert parse_rule("latency rose by 20").breached(120.0, reference=100.0)


# -- channels ----------------------------------------------------------------------------


def test_channels_are_built_from_their_config_forms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SLACK_URL", "https://hooks.slack.test/services/T/B/X")
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "secret")
    channels = parse_channels(
        {
            "log": "log",
            "hook": {"webhook": "http://127.0.0.1:9/hook"},
            "chat": {"slack": {"url_env": "TEST_SLACK_URL"}},
            "mail": {
                "email": {
                    "host": "smtp.test",
                    "port": 587,
                    "sender": "ferry@test",
                    "to": "ops@test",
                    "username": "ferry",
                    "password_env": "TEST_SMTP_PASSWORD",
                    "starttls": True,
                }
            },
        }
    )
    assert isinstance(channels["log"], LogChannel)
    assert isinstance(channels["hook"], WebhookChannel)
    assert channels["hook"].url == "http://127.0.0.1:9/hook"
    chat = channels["chat"]
    assert isinstance(chat, SlackChannel)
    assert chat.url == "https://hooks.slack.test/services/T/B/X"
    assert repr(chat) == "SlackChannel('https://hooks.slack.test')"  # the path is the secret
    mail = channels["mail"]
    assert isinstance(mail, EmailChannel)
    assert (mail.port, mail.to, mail.password, mail.starttls) == (
        587,
        ("ops@test",),
        "secret",
        True,
    )
    listed = parse_channels(["log", {"webhook": "https://example.test/h"}])
    assert sorted(listed) == ["log", "webhook"]


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("pager", "Alert channel 'pager': is not one of log, webhook, slack, email: write log"),
        ({"sms": "555"}, "sms: unknown field; use email, log, slack, webhook"),
        ({"webhook": "ftp://example.test/x"}, "URL 'ftp://example.test/x' is not an http"),
        ({"slack": {"url_env": "FERRY_TEST_UNSET_VARIABLE"}}, "FERRY_TEST_UNSET_VARIABLE.*not set"),
        ({"slack": {}}, "slack: give url \\(or url_env, the variable that holds it\\)"),
        ({"email": {"host": "h"}}, "email.sender: is required"),
        ({"email": {"hots": "h"}}, "email.hots: unknown field .did you mean 'host'.*; use host"),
        ({"email": {"host": "h", "port": "x"}}, "email.port: must be a whole number; got 'x'"),
        ({"email": "smtp.test"}, "email: must be a mapping; got 'smtp.test'"),
        ({"webhook": {"url": "http://a.test", "timeout": "soon"}}, "timeout: must be a number"),
    ],
)
def test_bad_channels_are_refused_with_the_reason(spec: Any, reason: str) -> None:
    with pytest.raises(InvalidArgument, match=reason):
        parse_channel(spec)


def test_two_channels_of_one_kind_in_a_list_must_be_named() -> None:
    with pytest.raises(InvalidArgument, match="Two slack channels in a list: name them"):
        parse_channels([{"slack": "https://a.test/1"}, {"slack": "https://a.test/2"}])


def test_manager_refuses_unknown_channels_and_rules_sharing_a_name(settings: Settings) -> None:
    with pytest.raises(InvalidArgument, match="sends to channel 'ops', which is not configured"):
        AlertManager(settings, [{"metric": "m", "op": ">", "threshold": 1, "channels": ["ops"]}])
    with pytest.raises(InvalidArgument, match="Two alert rules are named 'm > 1'"):
        AlertManager(settings, ["m > 1", "m > 1 cooldown 5m"])


# -- delivery to real receivers -----------------------------------------------------------


def test_webhook_receives_the_alert_as_json(settings: Settings, receiver: Receiver) -> None:
    hook = {"webhook": f"{receiver.url}/hooks/ferry"}
    with AlertManager(settings, ["drift_share > 0.3"], {"hook": hook}, retry=FAST) as manager:
        (alert,) = manager.evaluate("churn", *window(0), {"drift_share": 0.42, "other": 1.0})
    ((path, headers, body),) = receiver.requests
    assert path == "/hooks/ferry"
    assert headers["Content-Type"] == "application/json"
    assert body == {
        "id": alert.id,
        "state": "fired",
        "monitor": "churn",
        "rule": "drift_share > 0.3",
        "metric": "drift_share",
        "op": ">",
        "value": 0.42,
        "threshold": 0.3,
        "reference": None,
        "window": {"start": "2024-06-01T00:00:00.000Z", "end": "2024-06-01T01:00:00.000Z"},
        "time": body["time"],
        "message": "[FIRED] churn: drift_share > 0.3; drift_share = 0.42 in window "
        "2024-06-01T00:00:00.000Z to 2024-06-01T01:00:00.000Z.",
    }
    assert dt.datetime.fromisoformat(body["time"]).tzinfo is not None
    assert [(d.channel, d.ok, d.attempts) for d in alert.deliveries] == [("hook", True, 1)]


def test_slack_receives_the_message_as_incoming_webhook_text(
    settings: Settings, receiver: Receiver
) -> None:
    rule = {"name": "auc", "metric": "auc", "op": "dropped_by", "threshold": 0.05}
    with AlertManager(settings, [rule], {"chat": {"slack": receiver.url}}, retry=FAST) as manager:
        (alert,) = manager.evaluate("churn", *window(0), {"auc": 0.8, "auc_baseline": 0.9})
    assert receiver.bodies == [
        {
            "text": "[FIRED] churn: auc (auc dropped by 0.05); auc = 0.8, -0.1 from 0.9 in "
            "window 2024-06-01T00:00:00.000Z to 2024-06-01T01:00:00.000Z."
        }
    ]
    assert alert.reference == 0.9


def test_email_arrives_with_the_subject_and_the_body(
    settings: Settings, smtp: tuple[Controller, Mailbox]
) -> None:
    controller, box = smtp
    mail = {
        "email": {
            "host": controller.hostname,
            "port": controller.port,
            "sender": "ferry@example.test",
            "to": ["ops@example.test", "ml@example.test"],
            "username": "ferry",
            "password": "secret",
        }
    }
    with AlertManager(settings, ["accuracy < 0.85"], {"mail": mail}, retry=FAST) as manager:
        (alert,) = manager.evaluate("churn", *window(0), {"accuracy": 0.8})
    assert alert.deliveries[0].ok
    assert box.logins == [("ferry", "secret")]
    (envelope,) = box.envelopes
    assert envelope.mail_from == "ferry@example.test"
    assert envelope.rcpt_tos == ["ops@example.test", "ml@example.test"]
    (message,) = box.messages()
    assert message["Subject"] == "[ferryml] FIRED churn: accuracy < 0.85"
    assert message["To"] == "ops@example.test, ml@example.test"
    body = message.get_content().replace("\r\n", "\n")
    assert body.startswith(alert.message + "\n\n")
    assert "value: 0.8\nthreshold: < 0.85\n" in body


def test_email_with_a_wrong_password_is_recorded_failed(
    settings: Settings, smtp: tuple[Controller, Mailbox]
) -> None:
    controller, box = smtp
    mail = EmailChannel(controller.hostname, controller.port, "f@x.test", "o@x.test", "ferry", "no")
    retry = Retry(attempts=2, base_delay_s=0.01)
    with AlertManager(settings, ["m > 1"], {"mail": mail}, retry=retry) as manager:
        (alert,) = manager.evaluate("churn", *window(0), {"m": 2.0})
    (delivery,) = alert.deliveries
    assert (delivery.ok, delivery.attempts) == (False, 2)
    assert delivery.error is not None
    assert delivery.error.startswith(f"SMTP 127.0.0.1:{controller.port}: SMTPAuthenticationError")
    assert box.envelopes == []


def test_log_channel_writes_to_the_ferryml_alerts_logger(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ferryml.alerts")
    with AlertManager(settings, ["m > 1"], {"log": "log"}, retry=FAST) as manager:
        fired, resolved = run(manager, [2.0, 0.5])
    records = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
    assert records == [
        ("ferryml.alerts", logging.WARNING, fired[0].message),
        ("ferryml.alerts", logging.INFO, resolved[0].message),
    ]
    assert resolved[0].message.startswith("[RESOLVED] churn: m > 1; m = 0.5 in window")


# -- retries and failures ----------------------------------------------------------------


def test_a_receiver_failing_twice_gets_three_attempts_and_the_delivery_is_ok(
    settings: Settings, receiver: Receiver
) -> None:
    receiver.statuses = [500, 500]
    with AlertManager(settings, ["m > 1"], {"hook": {"webhook": receiver.url}}, retry=FAST) as mgr:
        (alert,) = mgr.evaluate("churn", *window(0), {"m": 2.0})
        (stored,) = mgr.store.list_alerts()
    assert len(receiver.requests) == 3
    assert receiver.bodies[0] == receiver.bodies[2]
    assert [(d.channel, d.attempts, d.ok, d.error) for d in alert.deliveries] == [
        ("hook", 3, True, None)
    ]
    assert stored.deliveries == alert.deliveries


def test_a_dead_url_is_retried_recorded_failed_and_evaluate_returns(
    settings: Settings, dead_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    channels: dict[str, Any] = {"dead": {"webhook": dead_url}, "log": "log"}
    with AlertManager(settings, ["m > 1"], channels, retry=FAST) as manager:
        (alert,) = manager.evaluate("churn", *window(0), {"m": 2.0})
        (stored,) = manager.store.list_alerts()
    dead, logged = alert.deliveries
    port = dead_url.split(":")[2].split("/")[0]
    assert (dead.channel, dead.attempts, dead.ok) == ("dead", 3, False)
    assert dead.error == (
        f"cannot reach http://127.0.0.1:{port}: ConnectError: [Errno 111] Connection refused"
    )
    assert (logged.channel, logged.ok) == ("log", True)
    assert stored.deliveries == alert.deliveries
    failures = [r.getMessage() for r in caplog.records if "failed (attempt" in r.getMessage()]
    assert [m.split("(")[1].split(")")[0] for m in failures] == [
        "attempt 1 of 3",
        "attempt 2 of 3",
        "attempt 3 of 3",
    ]


@pytest.fixture
def silent_url() -> Iterator[tuple[str, socket.socket]]:
    """A URL whose server takes connections and never answers (a hung receiver)."""
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen(8)  # the kernel completes each handshake; nothing ever replies
        yield f"http://127.0.0.1:{listening.getsockname()[1]}/hook", listening


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # the same over either store
def test_a_hung_channel_does_not_hold_the_pass_and_its_failure_is_recorded_and_retried(
    settings: Settings, silent_url: tuple[str, socket.socket]
) -> None:
    url, listening = silent_url
    memory = Recorder()
    channels: dict[str, Any] = {"hung": WebhookChannel(url, timeout=2.0), "memory": memory}
    retry = Retry(attempts=2, base_delay_s=0.01)
    with AlertManager(settings, ["m > 1"], channels, retry=retry, wait_s=0.2) as manager:
        assert manager.store.list_alerts() == []  # the store is made before the pass is timed
        began = time.monotonic()
        (alert,) = manager.evaluate("churn", *window(0), {"m": 2.0})
        took = time.monotonic() - began
        assert took < 2.0  # one attempt alone takes 2 s; both, over 4 s
        assert [d.channel for d in alert.deliveries] == ["memory"]  # the hung one is pending
        assert manager.wait(timeout=30)
        (stored,) = manager.store.list_alerts()
    hung = next(d for d in stored.deliveries if d.channel == "hung")
    assert (hung.ok, hung.attempts) == (False, 2)
    assert hung.error == f"http://127.0.0.1:{listening.getsockname()[1]}: ReadTimeout: timed out"
    listening.setblocking(False)
    taken = []
    with contextlib.suppress(BlockingIOError):
        while True:
            taken.append(listening.accept()[0])
    assert len(taken) == 2  # each attempt connected anew
    for connection in taken:
        connection.close()


def test_a_channel_raising_anything_is_recorded_failed_and_monitoring_goes_on(
    settings: Settings,
) -> None:
    memory = Recorder()
    channels: dict[str, Any] = {"broken": Broken(), "memory": memory}
    with AlertManager(settings, ["m > 1"], channels, retry=FAST) as manager:
        fired, resolved = run(manager, [2.0, 0.0])
    assert [(d.channel, d.ok, d.error) for d in fired[0].deliveries] == [
        ("broken", False, "RuntimeError: boom"),
        ("memory", True, None),
    ]
    assert [a.state for a in memory.sent] == ["fired", "resolved"]
    assert resolved[0].deliveries[0].attempts == 3


def test_retry_waits_double_each_time_up_to_the_cap() -> None:
    retry = Retry(attempts=4, base_delay_s=0.5, max_delay_s=1.5)
    assert [retry.delay(n) for n in (1, 2, 3)] == [0.5, 1.0, 1.5]
    with pytest.raises(InvalidArgument, match="Retry needs attempts >= 1"):
        Retry(attempts=0)


# -- windows, deduplication, cool-down, resolution ---------------------------------------


def test_an_alert_fires_when_the_breach_lasts_the_rule_s_windows(settings: Settings) -> None:
    memory = Recorder()
    with AlertManager(settings, ["m > 1 for 3 windows"], {"memory": memory}) as manager:
        fired = run(manager, [2.0, 2.0, 2.0])
        state = manager.store.get_state("churn", "m > 1 for 3 windows")
    assert states(fired) == [[], [], ["fired"]]
    assert (state.consecutive, state.firing) == (3, True)
    assert fired[2][0].window_end == int(window(2)[1].timestamp() * 1000)
    assert memory.sent == [dataclasses.replace(fired[2][0], deliveries=())]


def test_a_window_within_the_limit_restarts_the_count(settings: Settings) -> None:
    with AlertManager(settings, ["m > 1 for 2 windows"], {"m": Recorder()}) as manager:
        assert states(run(manager, [2.0, 0.5, 2.0, 1.0, 2.0])) == [[], [], [], [], []]


def test_a_continuous_breach_fires_one_alert_not_one_per_window(settings: Settings) -> None:
    memory = Recorder()
    rule = Rule("drift", "drift_share", ">", 0.3, cooldown_s=0)
    with AlertManager(settings, [rule], {"memory": memory}) as manager:
        fired = run(manager, [0.5, 0.6, 0.7, 0.8], metric="drift_share")
        history = manager.store.list_alerts(monitor="churn")
    assert states(fired) == [["fired"], [], [], []]
    assert len(memory.sent) == 1
    assert [a.state for a in history] == ["fired"]


def test_recovery_resolves_the_alert_and_a_new_breach_fires_again(settings: Settings) -> None:
    memory = Recorder()
    with AlertManager(settings, ["m < 0.85 cooldown 0"], {"memory": memory}) as manager:
        fired = run(manager, [0.8, 0.9, 0.9, 0.7])
        history = manager.store.list_alerts()
    assert states(fired) == [["fired"], ["resolved"], [], ["fired"]]
    assert [a.state for a in memory.sent] == ["fired", "resolved", "fired"]
    assert [(a.state, a.value) for a in history] == [  # newest first
        ("fired", 0.7),
        ("resolved", 0.9),
        ("fired", 0.8),
    ]


def test_cooldown_holds_back_a_second_alert_until_it_has_passed(settings: Settings) -> None:
    # Hourly windows: window 0 (ending 01:00) fired, so the cool-down lasts to 04:00, the
    # end of window 3.
    with AlertManager(settings, ["m > 1 cooldown 3h"], {"m": Recorder()}) as manager:
        fired = run(manager, [2.0, 0.0, 2.0, 2.0, 2.0, 0.0])
    assert states(fired) == [["fired"], ["resolved"], [], ["fired"], [], ["resolved"]]


def test_a_breach_within_the_cooldown_that_ends_records_nothing(settings: Settings) -> None:
    with AlertManager(settings, ["m > 1 cooldown 1d"], {"m": Recorder()}) as manager:
        fired = run(manager, [2.0, 0.0, 2.0, 0.0])
        history = manager.store.list_alerts()
    assert states(fired) == [["fired"], ["resolved"], [], []]
    assert len(history) == 2


def test_dropped_by_compares_with_the_first_window_seen(settings: Settings) -> None:
    with AlertManager(settings, ["auc dropped by 0.05"], {"m": Recorder()}) as manager:
        fired = run(manager, [0.90, 0.87, 0.85, 0.84, 0.89], metric="auc")
        state = manager.store.get_state("churn", "auc dropped by 0.05")
    assert states(fired) == [[], [], ["fired"], [], ["resolved"]]
    assert (fired[2][0].reference, fired[2][0].value) == (0.90, 0.85)
    assert state.reference == 0.90


def test_rose_by_uses_the_baseline_the_window_gives(settings: Settings) -> None:
    with AlertManager(settings, ["latency rose by 20"], {"m": Recorder()}) as manager:
        first = manager.evaluate("api", *window(0), {"latency": 130.0, "latency_baseline": 100.0})
        second = manager.evaluate("api", *window(1), {"latency": 130.0, "latency_baseline": 120.0})
    assert [(a.state, a.reference) for a in first + second] == [
        ("fired", 100.0),
        ("resolved", 120.0),
    ]


def test_a_window_without_the_metric_leaves_the_count_alone(settings: Settings) -> None:
    with AlertManager(settings, ["m > 1 for 2 windows"], {"m": Recorder()}) as manager:
        fired = run(manager, [2.0, None, math.nan, 2.0])
    assert states(fired) == [[], [], [], ["fired"]]


def test_the_same_window_evaluated_twice_counts_once(settings: Settings) -> None:
    with AlertManager(settings, ["m > 1 for 2 windows"], {"m": Recorder()}) as manager:
        assert manager.evaluate("churn", *window(0), {"m": 2.0}) == []
        assert manager.evaluate("churn", *window(0), {"m": 2.0}) == []
        assert manager.store.get_state("churn", "m > 1 for 2 windows").consecutive == 1
        assert [a.state for a in manager.evaluate("churn", *window(1), {"m": 2.0})] == ["fired"]


def test_monitors_keep_separate_counts(settings: Settings) -> None:
    with AlertManager(settings, ["m > 1 for 2 windows"], {"m": Recorder()}) as manager:
        run(manager, [2.0], monitor="a")
        assert states(run(manager, [None, 2.0], monitor="b")) == [[], []]
        (alert,) = manager.evaluate("a", *window(5), {"m": 2.0})
    assert alert.monitor == "a"


def test_rules_send_only_to_their_own_channels(settings: Settings) -> None:
    ops, team = Recorder(), Recorder()
    rules = [
        {"metric": "m", "op": ">", "threshold": 1, "channels": ["ops"]},
        {"metric": "n", "op": ">", "threshold": 1},
    ]
    with AlertManager(settings, rules, {"ops": ops, "team": team}) as manager:
        manager.evaluate("churn", *window(0), {"m": 2.0, "n": 2.0})
    assert [a.rule for a in ops.sent] == ["m > 1", "n > 1"]
    assert [a.rule for a in team.sent] == ["n > 1"]


def test_state_survives_a_new_manager_on_the_same_store(settings: Settings) -> None:
    memory = Recorder()
    rules, channels = ["m > 1 for 2 windows"], {"memory": memory}
    with AlertManager(settings, rules, channels) as first:
        assert first.evaluate("churn", *window(0), {"m": 2.0}) == []
    with AlertManager(settings, rules, channels) as second:
        assert states([second.evaluate("churn", *window(1), {"m": 2.0})]) == [["fired"]]
    with AlertManager(settings, rules, channels) as third:
        assert third.evaluate("churn", *window(2), {"m": 2.0}) == []  # still the same breach
        assert states([third.evaluate("churn", *window(3), {"m": 0.0})]) == [["resolved"]]
    assert [a.state for a in memory.sent] == ["fired", "resolved"]


def test_windows_may_be_ms_or_naive_datetimes_read_as_utc(settings: Settings) -> None:
    with AlertManager(settings, ["m > 1"], {"m": Recorder()}) as manager:
        (alert,) = manager.evaluate("churn", dt.datetime(2024, 6, 1), 1717203600000, {"m": 2.0})
    assert (alert.window_start, alert.window_end) == (1717200000000, 1717203600000)


@pytest.mark.parametrize(
    ("monitor", "start", "end", "reason"),
    [
        ("", 0, 1, "Monitor name '' must be non-empty"),
        ("churn", 10, 5, "The window ends .* before it starts"),
        ("churn", "yesterday", 5, "window_start 'yesterday' must be a datetime or ms"),
    ],
)
def test_evaluate_refuses_a_bad_monitor_or_window(
    settings: Settings, monitor: str, start: Any, end: Any, reason: str
) -> None:
    with (
        AlertManager(settings, ["m > 1"], {"m": Recorder()}) as manager,
        pytest.raises(InvalidArgument, match=reason),
    ):
        manager.evaluate(monitor, start, end, {"m": 2.0})


# -- the store ---------------------------------------------------------------------------


def test_store_lists_alerts_newest_first_by_monitor_and_rule(settings: Settings) -> None:
    with AlertManager(settings, ["m > 1", "n > 1"], {"m": Recorder()}) as manager:
        manager.evaluate("a", *window(0), {"m": 2.0})
        manager.evaluate("b", *window(0), {"m": 2.0, "n": 2.0})
        manager.evaluate("a", *window(1), {"m": 0.0})
    everything = list_alerts(settings)
    assert [(a.monitor, a.rule, a.state) for a in everything] == [
        ("a", "m > 1", "resolved"),
        ("b", "n > 1", "fired"),
        ("b", "m > 1", "fired"),
        ("a", "m > 1", "fired"),
    ]
    assert [a.id for a in list_alerts(settings, monitor="a")] == [
        everything[0].id,
        everything[3].id,
    ]
    assert [a.monitor for a in list_alerts(settings, rule="n > 1")] == ["b"]
    assert len(list_alerts(settings, limit=1)) == 1
    with pytest.raises(InvalidArgument, match="limit must be at least 1; got 0"):
        list_alerts(settings, limit=0)


def test_store_transition_writes_state_and_alert_together(store_url: str) -> None:
    store = SqlAlertStore(SqlStore(store_url).open())
    try:
        assert store.get_state("m", "r") == AlertState("m", "r")
        draft = Alert(0, 5, "m", "r", "x", ">", 2.0, 1.0, None, "fired", "msg", 1, 2)

        def step(state: AlertState) -> tuple[AlertState, Alert | None]:
            return dataclasses.replace(state, consecutive=1, firing=True, last_fired=2), draft

        alert = store.transition("m", "r", step)
        assert alert is not None and alert.id > 0
        assert store.get_alert(alert.id) == alert
        assert store.get_state("m", "r") == AlertState("m", "r", 1, True, 2)
        with pytest.raises(NotFound, match="Alert 999 not found. See `ferry alerts list`."):
            store.get_alert(999)
    finally:
        store.close()


# -- from ferry.yaml ---------------------------------------------------------------------


def test_manager_from_ferry_yaml_reads_rules_and_channels(
    settings: Settings, tmp_path: Path, receiver: Receiver
) -> None:
    (tmp_path / "ferry.yaml").write_text(
        "monitoring:\n"
        "  alerts:\n"
        "    channels:\n"
        f"      hook: {{webhook: '{receiver.url}'}}\n"
        "      log: log\n"
        "    rules:\n"
        "      - drift_share > 0.3 for 2 windows\n"
        "      - {name: acc, metric: accuracy, op: '<', threshold: 0.85, channels: [hook]}\n"
    )
    here = dataclasses.replace(settings, root=tmp_path)
    with AlertManager.from_config(here, retry=FAST) as manager:
        assert [r.name for r in manager.rules] == ["drift_share > 0.3 for 2 windows", "acc"]
        (alert,) = manager.evaluate("churn", *window(0), {"accuracy": 0.5, "drift_share": 0.9})
    assert [d.channel for d in alert.deliveries] == ["hook"]
    assert receiver.bodies[0]["rule"] == "acc"


def test_manager_from_config_refuses_unknown_keys(settings: Settings) -> None:
    with pytest.raises(InvalidArgument, match="must be a mapping with keys rules and channels"):
        AlertManager.from_config(settings, {"rule": ["m > 1"]})


# -- ferry alerts ------------------------------------------------------------------------


def stores(settings: Settings) -> list[str]:
    return [
        "--home",
        str(settings.home),
        "--store",
        settings.store_url,
        "--artifacts",
        settings.artifacts_url,
    ]


def test_cli_alerts_list_json_gives_alerts_and_deliveries(
    cli: Callable[..., tuple[int, str, str]], settings: Settings, dead_url: str
) -> None:
    channels: dict[str, Any] = {"dead": {"webhook": dead_url}, "log": "log"}
    with AlertManager(settings, ["m > 1"], channels, retry=FAST) as manager:
        run(manager, [2.0], monitor="churn")
        run(manager, [2.0], monitor="fraud")
    code, out, err = cli(*stores(settings), "alerts", "list", "--monitor", "churn", "--json")
    assert (code, err) == (0, "")
    (listed,) = json.loads(out)
    assert {k: listed[k] for k in ("monitor", "rule", "state", "value", "threshold")} == {
        "monitor": "churn",
        "rule": "m > 1",
        "state": "fired",
        "value": 2.0,
        "threshold": 1.0,
    }
    assert [(d["channel"], d["ok"], d["attempts"]) for d in listed["deliveries"]] == [
        ("dead", False, 3),
        ("log", True, 1),
    ]
    code, out, _ = cli(*stores(settings), "alerts", "list", "--json")
    assert [a["monitor"] for a in json.loads(out)] == ["fraud", "churn"]


def test_cli_alerts_list_prints_a_table_or_says_there_are_none(
    cli: Callable[..., tuple[int, str, str]], settings: Settings
) -> None:
    assert cli(*stores(settings), "alerts", "list") == (0, "No alerts.\n", "")
    assert cli(*stores(settings), "alerts", "list", "--monitor", "churn") == (
        1,
        "",
        "error: Monitor 'churn' not found. See `ferry monitor list`.\n",
    )  # no such monitor, and no alert of it: a typo, not a quiet monitor
    with AlertManager(settings, ["m > 1"], {"m": Recorder()}) as manager:
        run(manager, [2.0])
    code, out, err = cli(*stores(settings), "alerts", "list")
    assert (code, err) == (0, "")
    assert "churn" in out and "m > 1" in out and "fired" in out and "m: ok" in out
    code, out, _ = cli(*stores(settings), "alerts", "list", "--monitor", "churn")
    assert code == 0 and "fired" in out


def test_cli_alerts_test_sends_to_a_configured_channel(
    cli: Callable[..., tuple[int, str, str]],
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    receiver: Receiver,
    dead_url: str,
) -> None:
    (tmp_path / "ferry.yaml").write_text(
        yaml.safe_dump(
            {
                "monitoring": {
                    "alerts": {
                        "channels": {"hook": {"webhook": receiver.url}, "dead": {"slack": dead_url}}
                    }
                }
            },
            sort_keys=False,
        )
    )
    monkeypatch.chdir(tmp_path)
    assert cli(*stores(settings), "alerts", "test", "hook") == (
        0,
        "Sent a test alert to channel 'hook' (1 attempt).\n",
        "",
    )
    assert receiver.bodies[0]["message"].startswith("[TEST] A test alert from ferryml")
    port = dead_url.split(":")[2].split("/")[0]
    code, out, err = cli(*stores(settings), "alerts", "test", "dead", "--attempts", "1")
    assert (code, out) == (1, "")
    assert err.endswith(
        f"error: channel 'dead' failed after 1 attempt: cannot reach http://127.0.0.1:{port}: "
        "ConnectError: [Errno 111] Connection refused\n"
    )
    code, out, err = cli(*stores(settings), "alerts", "test", "nope")
    assert (code, out) == (1, "")
    assert err == (
        "error: Alert channel 'nope' is not configured; the channels are: hook, dead "
        "(ferry.yaml, monitoring.alerts.channels).\n"
    )
