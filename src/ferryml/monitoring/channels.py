"""Alert channels: where alerts go (a webhook, Slack, email, the log), built from their
``ferry.yaml`` form by ``parse_channel`` and ``parse_channels``.

A channel is any object with a ``kind`` and a ``send(alert)`` that delivers the alert or
raises; ``AlertManager`` (in ``ferryml.monitoring.alerts``) retries and records it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import re
import smtplib
import ssl
import urllib.parse
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from typing import Any, Protocol

from ferryml.errors import InvalidArgument
from ferryml.store.loop import Alert

__all__ = [
    "Channel",
    "DeliveryError",
    "EmailChannel",
    "LogChannel",
    "SlackChannel",
    "WebhookChannel",
    "channel_from_config",
    "parse_channel",
    "parse_channels",
]

log = logging.getLogger("ferryml.alerts")
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

_CHANNEL_EXAMPLE = (
    "e.g. 'log', {webhook: 'https://example.com/hook'}, "
    "{slack: 'https://hooks.slack.com/services/...'} or "
    "{email: {host: smtp.example.com, sender: ferry@example.com, to: [me@example.com]}}"
)


class DeliveryError(OSError):
    """A channel could not deliver an alert; the message says why (and is recorded)."""


class Channel(Protocol):
    """Where alerts go. ``send`` delivers one alert or raises; what it raises is recorded
    as the delivery's error, and the attempt is retried."""

    kind: str

    def send(self, alert: Alert) -> None: ...


class WebhookChannel:
    """POSTs the alert as JSON: ``id, state, monitor, rule, metric, op, value, threshold,
    reference, window {start, end}, time, message`` (times in ISO 8601, UTC).

    Raises:
        InvalidArgument: ``url`` is not an http(s) URL.
    """

    kind = "webhook"

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = _http_url(url, self.kind)
        self.timeout = timeout

    def payload(self, alert: Alert) -> dict[str, Any]:
        return {
            "id": alert.id,
            "state": alert.state,
            "monitor": alert.monitor,
            "rule": alert.rule,
            "metric": alert.metric,
            "op": alert.op,
            "value": _json_float(alert.value),
            "threshold": alert.threshold,
            "reference": None if alert.reference is None else _json_float(alert.reference),
            "window": {"start": _iso(alert.window_start), "end": _iso(alert.window_end)},
            "time": _iso(alert.time),
            "message": alert.message,
        }

    def send(self, alert: Alert) -> None:
        _post_json(self.url, self.payload(alert), self.timeout)

    def __repr__(self) -> str:
        return f"WebhookChannel({_where(self.url)!r})"


class SlackChannel(WebhookChannel):
    """POSTs ``{"text": message}``, the format of Slack's incoming webhooks (which
    Mattermost, Rocket.Chat and Discord's ``/slack`` endpoint also read)."""

    kind = "slack"

    def payload(self, alert: Alert) -> dict[str, Any]:
        return {"text": alert.message}

    def __repr__(self) -> str:
        return f"SlackChannel({_where(self.url)!r})"


class EmailChannel:
    """Sends the alert by email over SMTP, optionally with STARTTLS and a login.

    The subject reads ``[ferryml] FIRED churn: drift_share > 0.3 for 2 windows``; the
    body holds the message and the alert's fields.
    """

    kind = "email"

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        to: str | Sequence[str],
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        *,
        timeout: float = 10.0,
    ) -> None:
        recipients = (to,) if isinstance(to, str) else tuple(to)
        if not host or not sender or not recipients:
            raise InvalidArgument(
                f"Email channel needs host, sender and to; got host={host!r}, "
                f"sender={sender!r}, to={to!r}. {_CHANNEL_EXAMPLE}."
            )
        self.host = host
        self.port = port
        self.sender = sender
        self.to = recipients
        self.username = username
        self.password = password
        self.starttls = starttls
        self.timeout = timeout

    def message(self, alert: Alert) -> EmailMessage:
        mail = EmailMessage()
        mail["Subject"] = f"[ferryml] {alert.state.upper()} {alert.monitor}: {alert.rule}"
        mail["From"] = self.sender
        mail["To"] = ", ".join(self.to)
        reference = "" if alert.reference is None else f"reference: {alert.reference:.6g}\n"
        mail.set_content(
            f"{alert.message}\n\n"
            f"monitor: {alert.monitor}\nrule: {alert.rule}\nmetric: {alert.metric}\n"
            f"value: {alert.value:.6g}\nthreshold: {alert.op} {_num(alert.threshold)}\n"
            f"{reference}window: {_iso(alert.window_start)} to {_iso(alert.window_end)}\n"
            f"time: {_iso(alert.time)}\n"
        )
        return mail

    def send(self, alert: Alert) -> None:
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(self.message(alert))
        except (OSError, smtplib.SMTPException) as e:
            raise DeliveryError(f"SMTP {self.host}:{self.port}: {_reason(e)}") from e

    def __repr__(self) -> str:
        return f"EmailChannel({self.host}:{self.port} to {', '.join(self.to)})"


class LogChannel:
    """Writes the alert to the ``ferryml.alerts`` logger: WARNING when it fires, INFO
    when it resolves."""

    kind = "log"

    def send(self, alert: Alert) -> None:
        log.log(logging.WARNING if alert.state == "fired" else logging.INFO, alert.message)


def parse_channel(spec: str | Mapping[str, Any]) -> Channel:
    """A channel from its ``ferry.yaml`` form: ``"log"``, ``{webhook: URL}``,
    ``{slack: URL}`` or ``{email: {host, port, sender, to, username, password,
    password_env, starttls}}``. A URL may also be given as ``{url: ...}`` or, to keep it
    out of the file, ``{url_env: VARIABLE}``; so may the email password (``password_env``).

    Raises:
        InvalidArgument: the form is unknown or a field is missing or malformed.
    """
    from ferryml._configfile import check
    from ferryml._configtypes import ChannelSpec

    def wrong(field: str, detail: str) -> InvalidArgument:
        return InvalidArgument(
            f"Alert channel {spec!r:.200}: {field + ': ' if field else ''}{detail}"
        )

    return channel_from_config(check(ChannelSpec, spec, wrong))


def channel_from_config(config: Any) -> Channel:
    """A channel from its checked ``ferry.yaml`` form (a ``ChannelSpec``).

    Raises:
        InvalidArgument: the URL is not http(s), or a secret's variable is not set.
    """
    web = config.webhook or config.slack
    if web is not None:
        kind = WebhookChannel if config.webhook is not None else SlackChannel
        return kind(_secret(web.url, web.url_env, "url", config.kind), timeout=web.timeout)
    mail = config.email
    if mail is None:
        return LogChannel()
    given = mail.password is not None or mail.password_env is not None
    return EmailChannel(
        mail.host,
        mail.port,
        mail.sender,
        tuple(mail.to),
        mail.username,
        _secret(mail.password, mail.password_env, "password", "email") if given else None,
        mail.starttls,
        timeout=mail.timeout,
    )


def parse_channels(
    config: Mapping[str, Any] | Sequence[Any],
) -> dict[str, Channel]:
    """Channels by name from ``{name: spec}``, or from a list of specs each named by its
    kind (``log``, ``webhook``, ``slack``, ``email``).

    Raises:
        InvalidArgument: a spec is malformed, or a list holds two channels of one kind.
    """
    if isinstance(config, Mapping):
        return {
            str(name): spec if _is_channel(spec) else parse_channel(spec)
            for name, spec in config.items()
        }
    if isinstance(config, str):
        config = [config]
    channels: dict[str, Channel] = {}
    for spec in config:
        channel = spec if _is_channel(spec) else parse_channel(spec)
        if channel.kind in channels:
            raise InvalidArgument(
                f"Two {channel.kind} channels in a list: name them instead, e.g. "
                "channels: {ops: {slack: URL1}, team: {slack: URL2}}."
            )
        channels[channel.kind] = channel
    return channels


def _is_channel(value: Any) -> bool:
    return callable(getattr(value, "send", None)) and isinstance(getattr(value, "kind", None), str)


def _secret(value: str | None, variable: str | None, key: str, kind: str) -> str:
    """The value, with each ``${VAR}`` in it replaced by the variable's value, or the
    variable's value: secrets stay in the environment, their names in the config."""
    if value is not None:
        return _expand(value, key, kind)
    found = os.environ.get(str(variable))
    if not found:
        raise InvalidArgument(
            f"The {kind} channel reads its {key} from ${variable}, which is not set. "
            f"Set it, or give {key} in the channel's settings."
        )
    return found


def _expand(value: str, key: str, kind: str) -> str:
    def variable(match: re.Match[str]) -> str:
        found = os.environ.get(match.group(1))
        if not found:
            raise InvalidArgument(
                f"The {kind} channel's {key} reads ${{{match.group(1)}}}, which is not set. "
                "Set it in the environment of the process that sends alerts."
            )
        return found

    return _VARIABLE.sub(variable, value)


def _http_url(url: str, kind: str) -> str:
    parts = urllib.parse.urlsplit(str(url))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidArgument(
            f"The {kind} channel's URL {url!r} is not an http(s) URL, e.g. "
            "https://example.com/hook."
        )
    return str(url)


def _where(url: str) -> str:
    """The URL without its path: a webhook's path is often its secret."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def _post_json(url: str, body: Mapping[str, Any], timeout: float) -> None:
    import httpx

    data = json.dumps(body, allow_nan=False).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "ferryml-alerts"}
    # The transport, not a Client: a Client logs every request's full URL at INFO, and a
    # webhook's URL usually holds its token.
    request = httpx.Request(
        "POST",
        url,
        content=data,
        headers=headers,
        extensions={"timeout": httpx.Timeout(timeout).as_dict()},
    )
    try:
        with httpx.HTTPTransport() as transport:
            response = transport.handle_request(request)
            try:
                response.read()
            finally:
                response.close()
    except httpx.ConnectError as e:
        raise DeliveryError(f"cannot reach {_where(url)}: {_reason(e)}") from e
    except httpx.HTTPError as e:  # a timeout or reset while sending or reading the answer
        raise DeliveryError(f"{_where(url)}: {_reason(e)}") from e
    if response.is_error:
        raise DeliveryError(
            f"HTTP {response.status_code} {response.reason_phrase} from {_where(url)}"
        )


def _reason(error: Any) -> str:
    if isinstance(error, BaseException):
        text = str(error) or type(error).__name__
        return text if isinstance(error, DeliveryError) else f"{type(error).__name__}: {text}"
    return str(error)


# -- small helpers ----------------------------------------------------------------------
# alerts.py imports _is_number, _num and _iso from here too, so that alert messages and
# what the channels send format numbers and times alike.


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _num(value: float) -> str:
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def _json_float(value: float) -> float | str:
    return value if math.isfinite(value) else ("Infinity" if value > 0 else "-Infinity")


def _iso(ms: int) -> str:
    moment = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
