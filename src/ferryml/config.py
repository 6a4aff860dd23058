"""Settings, resolved once: explicit value, then ``FERRY_*`` variable, then ``ferry.yaml``,
then the default (a ``.ferry/`` folder in the working directory)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ferryml.errors import InvalidArgument

__all__ = ["CONFIG_FILE", "Settings", "config_section"]

CONFIG_FILE = "ferry.yaml"
_KEYS = ("home", "store", "artifacts", "server", "remote")
# The parts' own sections of ferry.yaml, read where they are used (``config_section``).
SECTIONS = ("data", "models", "pipelines", "monitoring", "policies")


@dataclass(frozen=True)
class Settings:
    """Where ferryml keeps its metadata, artifacts and local journal.

    Attributes:
        home: local folder for the embedded store and the write-ahead journal.
        store_url: SQLAlchemy URL of the metadata store (``sqlite:///…`` or
            ``postgresql+psycopg://…``).
        artifacts_url: fsspec URL of the artifact store (``file://…``, ``s3://…``).
        server: URL of a ferryml server, when one is used.
        root: the project folder, whose data ferryml versions (the working directory).
        remote: fsspec URL of the artifact store that ``ferry data push``/``pull`` use.
    """

    home: Path
    store_url: str
    artifacts_url: str
    server: str | None = None
    root: Path = field(default_factory=Path.cwd)
    remote: str | None = None

    @property
    def journal_dir(self) -> Path:
        return self.home / "journal"

    @classmethod
    def resolve(
        cls,
        *,
        home: str | Path | None = None,
        store: str | None = None,
        artifacts: str | None = None,
        server: str | None = None,
        remote: str | None = None,
        cwd: str | Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Settings:
        """Resolve settings from arguments, the environment and ``ferry.yaml``.

        Raises:
            InvalidArgument: ``ferry.yaml`` is not a mapping of known keys.
        """
        env = os.environ if environ is None else environ
        base = Path(cwd) if cwd is not None else Path.cwd()
        file_values = _read_config_file(base / CONFIG_FILE)
        explicit = {
            "home": home,
            "store": store,
            "artifacts": artifacts,
            "server": server,
            "remote": remote,
        }

        def pick(key: str) -> Any:
            if explicit[key] is not None:
                return explicit[key]
            from_env = env.get(f"FERRY_{key.upper()}")
            if from_env:
                return from_env
            return file_values.get(key)

        home_path = Path(pick("home") or base / ".ferry")
        if not home_path.is_absolute():
            home_path = (base / home_path).resolve()
        store_url = pick("store") or f"sqlite:///{home_path / 'ferry.db'}"
        artifacts_url = pick("artifacts") or (home_path / "artifacts").as_uri()
        return cls(
            home=home_path,
            store_url=str(store_url),
            artifacts_url=str(artifacts_url),
            server=pick("server"),
            root=base.resolve(),
            remote=pick("remote"),
        )


def _read_config_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    import yaml  # only paid for when a config file exists

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise InvalidArgument(f"{path} is not valid YAML: {e}. Fix the file or remove it.") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidArgument(
            f"{path} must be a mapping with keys {', '.join(_KEYS)}; got {type(data).__name__}."
        )
    unknown = sorted(set(data) - set(_KEYS) - set(SECTIONS))
    if unknown:
        raise InvalidArgument(
            f"{path} has unknown key(s) {', '.join(map(str, unknown))}; "
            f"known keys are {', '.join((*_KEYS, *SECTIONS))}."
        )
    return {k: v for k, v in data.items() if k in _KEYS and v is not None}


def config_section(root: Path, name: str) -> dict[str, Any]:
    """A top-level section of ``ferry.yaml`` (such as ``data``) as a mapping; {} if absent.

    Raises:
        InvalidArgument: the section is not a mapping.
    """
    path = root / CONFIG_FILE
    if not path.is_file():
        return {}
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise InvalidArgument(f"{path} is not valid YAML: {e}. Fix the file.") from e
    section = data.get(name, {}) if isinstance(data, dict) else {}
    if not isinstance(section, dict):
        raise InvalidArgument(f"Section {name!r} of {path} must be a mapping.")
    return section
