"""Settings, resolved once: explicit value, then ``FERRY_*`` variable, then ``ferry.yaml``,
then the default (a ``.ferry/`` folder in the project root).

The project root is found as git finds its own: the nearest folder, from the working
directory upwards, that holds ``ferry.yaml`` or ``.ferry/``. The walk stops at a folder
holding ``.git`` (a project does not reach outside its repository) and at the filesystem
root; when nothing is found, the working directory is the root.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ferryml.errors import InvalidArgument

if TYPE_CHECKING:
    from ferryml._configfile import ProjectConfig

__all__ = [
    "CONFIG_FILE",
    "DEFAULT_SERVER_RETRY",
    "HOME_DIR",
    "Settings",
    "find_root",
    "read_config",
    "redact_url",
]

CONFIG_FILE = "ferry.yaml"
HOME_DIR = ".ferry"
_KEYS = ("home", "store", "artifacts", "server", "remote", "server_retry", "link")
DEFAULT_SERVER_RETRY = 20.0


@dataclass(frozen=True)
class Settings:
    """Where ferryml keeps its metadata, artifacts and local journal.

    Attributes:
        home: local folder for the embedded store and the write-ahead journal.
        store_url: SQLAlchemy URL of the metadata store (``sqlite:///…`` or
            ``postgresql+psycopg://…``).
        artifacts_url: fsspec URL of the artifact store (``file://…``, ``s3://…``).
        server: URL of a ferryml server, when one is used.
        root: the project folder, whose data ferryml versions (see ``find_root``).
        remote: fsspec URL of the artifact store that ``ferry data push``/``pull`` use.
        config_file: the project's ``ferry.yaml``, if it has one.
        cwd: the folder relative paths given by the user start from (default: ``root``).
        sources: where each of home, store, artifacts, server and remote came from:
            ``argument``, a variable's name such as ``FERRY_STORE``, ``ferry.yaml`` or
            ``default``.
        token: the API token sent to a team server (``FERRY_TOKEN``; never from a file).
        server_retry: seconds a client keeps retrying a team server it cannot reach, long
            enough for a restart (``FERRY_SERVER_RETRY``, ``server_retry`` in ferry.yaml).
        trust: public keys (or key files) from ferry.yaml's ``trust:``; when given, a model
            package loads only with a valid signature by one of them.
        link: how ``ferry data checkout`` puts stored files in the project, the first that
            works of ``reflink``, ``hardlink`` and ``copy`` (``FERRY_LINK``, ``link`` in
            ferry.yaml; default ``reflink,copy``).
    """

    home: Path
    store_url: str
    artifacts_url: str
    server: str | None = None
    root: Path = field(default_factory=Path.cwd)
    remote: str | None = None
    config_file: Path | None = None
    cwd: Path | None = None
    sources: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)
    token: str | None = field(default=None, repr=False)
    trust: tuple[str, ...] = ()
    server_retry: float = DEFAULT_SERVER_RETRY
    link: tuple[str, ...] = ("reflink", "copy")

    @property
    def journal_dir(self) -> Path:
        return self.home / "journal"

    @property
    def workdir(self) -> Path:
        """The folder that relative paths given by the user are relative to."""
        return self.cwd if self.cwd is not None else self.root

    @property
    def new_store(self) -> bool:
        """Whether the store is an embedded SQLite file that does not exist yet, so that
        opening it creates it."""
        path = _sqlite_path(self.store_url)
        return path is not None and not path.exists()

    def describe(self) -> dict[str, Any]:
        """What ``ferry info`` shows: the project root, its config file, and the store,
        artifacts, server and remote in use (passwords hidden), with where each came from."""
        return {
            "root": str(self.root),
            "config_file": None if self.config_file is None else str(self.config_file),
            "home": str(self.home),
            "store": redact_url(self.store_url),
            "artifacts": redact_url(self.artifacts_url),
            "server": None if self.server is None else redact_url(self.server),
            "remote": None if self.remote is None else redact_url(self.remote),
            "sources": dict(self.sources),
        }

    @classmethod
    def resolve(
        cls,
        *,
        home: str | Path | None = None,
        store: str | None = None,
        artifacts: str | None = None,
        server: str | None = None,
        remote: str | None = None,
        server_retry: float | str | None = None,
        link: str | None = None,
        cwd: str | Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Settings:
        """Resolve settings from arguments, the environment and the project's ``ferry.yaml``.

        Args:
            cwd: where the search for the project root starts; default the working
                directory.
            environ: the variables to read; default ``os.environ``.

        Raises:
            ConfigError: the project's ``ferry.yaml`` is wrong (see ``read_config``).
        """
        env = os.environ if environ is None else environ
        start = (Path(cwd) if cwd is not None else Path.cwd()).resolve()
        base = find_root(start) or start
        config = base / CONFIG_FILE
        config_file = config if config.is_file() else None
        project = read_config(base) if config_file else None
        file_values = project.model_dump(include=set(_KEYS)) if project else {}
        explicit = {
            "home": home,
            "store": store,
            "artifacts": artifacts,
            "server": server,
            "remote": remote,
            "server_retry": server_retry,
            "link": link,
        }
        sources: dict[str, str] = {}

        def pick(key: str) -> Any:
            variable = f"FERRY_{key.upper()}"
            from_env = env.get(variable) or None
            if key == "store" and from_env is None:  # MLflow's name for the same thing
                variable, from_env = "FERRY_TRACKING_URI", env.get("FERRY_TRACKING_URI") or None
            for source, value in (
                ("argument", explicit[key]),
                (variable, from_env),
                (CONFIG_FILE, file_values.get(key)),
            ):
                if value is not None:
                    sources[key] = source
                    return value
            sources[key] = "default"
            return None

        def folder(key: str) -> Path:
            # a relative path typed by the user is relative to where they are; one in
            # ferry.yaml, to the project root, wherever the command runs
            return base if sources[key] == CONFIG_FILE else start

        home_path = Path(pick("home") or base / HOME_DIR)
        if not home_path.is_absolute():
            home_path = (folder("home") / home_path).resolve()
        store = pick("store")
        store_url = (
            _absolute(store, folder("store")) if store else f"sqlite:///{home_path / 'ferry.db'}"
        )
        artifacts = pick("artifacts")
        # Through a team server, artifacts go where the server keeps them.
        server_store = store_url.startswith(("http://", "https://"))
        artifacts_url = (
            _absolute(artifacts, folder("artifacts"))
            if artifacts
            else store_url
            if server_store
            else (home_path / "artifacts").as_uri()
        )
        server_url, remote = pick("server"), pick("remote")
        remote_url = _absolute(remote, folder("remote")) if remote else None
        retry = pick("server_retry")
        retry_source = sources.pop("server_retry")  # sources name the places, not this
        links = pick("link")
        link_source = sources.pop("link")
        return cls(
            home=home_path,
            store_url=str(store_url),
            artifacts_url=str(artifacts_url),
            server=server_url,
            root=base,
            remote=remote_url,
            config_file=config_file,
            cwd=start,
            sources=sources,
            token=env.get("FERRY_TOKEN") or None,
            server_retry=(
                DEFAULT_SERVER_RETRY
                if retry is None
                else _seconds(retry, retry_source, "server_retry")
            ),
            trust=tuple(project.trust or ()) if project else (),
            link=("reflink", "copy") if links is None else _links(links, link_source),
        )


def find_root(start: str | Path) -> Path | None:
    """The project root for ``start``: the nearest folder from ``start`` upwards that holds
    ``ferry.yaml`` or ``.ferry/``; None when the walk reaches a folder holding ``.git``,
    or the filesystem root, without finding one."""
    here = Path(start).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_FILE).is_file() or (folder / HOME_DIR).is_dir():
            return folder
        if (folder / ".git").exists():
            return None  # the repository's top: a project does not reach above it
    return None


def redact_url(url: str) -> str:
    """``url`` with the password of its user part, if any, shown as ``***``."""
    parts = urllib.parse.urlsplit(url)
    user, at, host = parts.netloc.rpartition("@")
    if not at or ":" not in user:
        return url
    name = user.split(":", 1)[0]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{name}:***@{host}"))


def _absolute(url: str, folder: Path) -> str:
    """``url`` with a relative SQLite file or a plain relative path made absolute from
    ``folder``, so that it names the same place from every subfolder."""
    path = _sqlite_path(url)
    if path is not None and not path.is_absolute():
        query = url.partition("?")[1:]
        return f"sqlite:///{(folder / path).resolve()}{''.join(query)}"
    if "://" not in url and not Path(url).is_absolute():
        return str((folder / url).resolve())
    return url


def _seconds(value: Any, source: str, key: str) -> float:
    from ferryml._duration import parse_duration
    from ferryml.errors import ConfigError

    try:
        return parse_duration(value)
    except InvalidArgument as e:
        raise ConfigError(f"{key if source == CONFIG_FILE else source} {e}") from None


def _links(value: Any, source: str) -> tuple[str, ...]:
    from ferryml.data._links import parse_links
    from ferryml.errors import ConfigError

    try:
        return parse_links(value)
    except InvalidArgument as e:
        raise ConfigError(f"{CONFIG_FILE if source == CONFIG_FILE else source}: {e}") from None


def _sqlite_path(url: str) -> Path | None:
    if not url.startswith("sqlite:///"):
        return None
    path = url.removeprefix("sqlite:///").split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)


def read_config(root: str | Path) -> ProjectConfig:
    """The project's ``ferry.yaml`` (in ``root``), every field checked; an empty config
    when there is none. The one place the file is read; read again at each call, so a
    long-running agent sees edits.

    Raises:
        ConfigError: the file is not UTF-8 YAML or a field is wrong; the message names the
            file, the line and the field.
    """
    from ferryml._configfile import load  # pydantic is only paid for when it is needed

    return load(Path(root) / CONFIG_FILE)
