"""``ferry.yaml``, read in one place: every field type-checked against the pydantic models
of its sections, and every mistake reported on one line naming the file, the line and the
field::

    ferry.yaml line 7: data.wine.expectations[0].range.min: must be a number or a date
    such as 2024-01-01; got 'low'.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from ferryml._configtypes import (
    DaskConfig,
    DatasetConfig,
    Duration,
    ModelConfig,
    MonitoringConfig,
    Name,
    PathName,
    Strict,
    Text,
)
from ferryml.automation._policy_config import PolicyConfig
from ferryml.errors import ConfigError

__all__ = ["ProjectConfig", "check", "describe", "dotted", "load", "validate"]

M = TypeVar("M", bound=BaseModel)


# -- the file ----------------------------------------------------------------------------------


class ProjectConfig(Strict):
    """The whole of ``ferry.yaml``: where the stores are, and the parts' sections."""

    home: Text | None = None
    store: Text | None = None
    artifacts: Text | None = None
    server: Text | None = None
    remote: Text | None = None
    server_retry: Duration | None = None
    link: Text | list[Text] | None = None  # how checkouts place files: reflink,hardlink,copy
    data: dict[PathName, DatasetConfig] | None = None
    models: dict[Name, ModelConfig] | None = None
    pipelines: dict[str, dict[str, Any]] | None = None  # reserved for pipeline defaults
    monitoring: MonitoringConfig | None = None
    dask: DaskConfig | None = None
    policies: dict[Name, PolicyConfig] | None = None
    # public keys (or files of them) whose signature a model package needs to be loaded
    trust: list[Text] | None = None

    @property
    def declares_policies(self) -> bool:
        """Whether the file has a ``policies:`` section, even an empty one."""
        return "policies" in self.model_fields_set


def load(path: Path) -> ProjectConfig:
    """The project's ``ferry.yaml``, checked field by field; an empty config if there is no
    such file.

    Raises:
        ConfigError: the file is not UTF-8 YAML, or a field is wrong; one line that names
            the file, the line and the field.
    """
    if not path.is_file():
        return ProjectConfig()
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{path} is not text: byte {e.start} is not UTF-8. Write ferry.yaml as YAML text "
            "in UTF-8."
        ) from e
    except OSError as e:
        raise ConfigError(f"Cannot read {path}: {e.strerror}.") from e
    try:
        node, data = _compose(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        what = "; ".join(" ".join(str(p).split()) for p in (e.problem, e.context) if p)
        raise ConfigError(f"{path}{where}: not valid YAML: {what}. Fix the file.") from e
    except yaml.reader.ReaderError as e:  # a control character YAML does not allow
        char = chr(e.character) if isinstance(e.character, int) else e.character
        raise ConfigError(
            f"{path}: not valid YAML: character {char!r} at position {e.position} is not "
            "allowed. Fix the file."
        ) from e
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(e).split())}.") from e
    twice = _duplicate(node, ())
    if twice is not None:
        loc, line, first = twice
        raise ConfigError(
            f"{path} line {line}: {dotted(loc)}: given twice (first on line {first}); YAML "
            "would keep only the last. Keep one."
        )
    return validate(ProjectConfig, {} if data is None else data, path, node)


def _compose(text: str) -> tuple[Any, Any]:
    """The document's node tree (whose marks give each field's line) and its data."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        return node, (loader.construct_document(node) if node is not None else None)
    finally:
        loader.dispose()


def _duplicate(node: Any, loc: tuple[Any, ...]) -> tuple[tuple[Any, ...], int, int] | None:
    """The first key given twice in one mapping: its location, its line and the line of
    its first appearance."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            name, line = str(getattr(key, "value", "")), key.start_mark.line + 1
            if isinstance(key, yaml.ScalarNode) and name in seen:
                return (*loc, name), line, seen[name]
            seen.setdefault(name, line)
            found = _duplicate(value, (*loc, name))
            if found is not None:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            found = _duplicate(item, (*loc, index))
            if found is not None:
                return found
    return None


def validate(model: type[BaseModel], data: Any, path: Path | None, node: Any = None) -> Any:
    """``model`` validated from ``data``; a ConfigError names the first wrong field (by
    ``path`` and line, when given)."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        problems = describe(e, model)
        lines = [_line(node, loc) for loc, _ in problems]
        first = min(range(len(problems)), key=lambda i: lines[i])
        field, detail = dotted(problems[first][0]), problems[first][1]
        if not field and detail.startswith("must be a mapping"):
            detail = f"the file must be a mapping of settings and sections{detail[17:]}"
        others = len(problems) - 1
        more = f" ({others} more problem{'s' if others > 1 else ''} in the file)" if others else ""
        where = "" if path is None else f"{path} line {lines[first]}: "
        raise ConfigError(f"{where}{field + ': ' if field else ''}{detail}{more}") from e


def check(model: type[M], data: Any, wrap: Callable[[str, str], Exception]) -> M:
    """``model`` validated from ``data`` given in Python; the first problem is raised as
    ``wrap(field, detail)`` (``field`` is dotted, e.g. ``rollout.steps[0].weight``, or
    empty for the whole)."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        loc, detail = describe(e, model)[0]
        raise wrap(dotted(loc), detail) from e


def describe(error: ValidationError, model: type[BaseModel]) -> list[tuple[tuple[Any, ...], str]]:
    """Each problem as (location, what is wrong): "must be …; got …." or the validator's own
    message, without pydantic's wording or links; unknown fields first, missing ones last."""
    # A misspelt key explains more than the missing field it was meant to be: it goes first.
    items = sorted(
        error.errors(include_url=False),
        key=lambda i: (i["type"] != "extra_forbidden", i["type"] == "missing"),
    )
    return [(tuple(p for p in i["loc"] if p != "[key]"), _detail(i, model)) for i in items]


_PHRASES = {
    "missing": "is required.",
    "string_type": "must be text",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "bool_type": "must be true or false",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "list_type": "must be a list",
    "none_required": "takes no settings",
}


def _detail(item: Any, model: type[BaseModel]) -> str:
    kind, value = item["type"], item.get("input")
    if kind == "extra_forbidden":
        known = _fields_at(model, item["loc"][:-1])
        close = difflib.get_close_matches(str(item["loc"][-1]), known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown field{hint}" + (f"; use {', '.join(known)}." if known else ".")
    if kind in ("value_error", "assertion_error"):
        text = str(item["ctx"]["error"]).strip()
        return text if text.endswith(".") else f"{text}."
    if kind == "missing":
        return "is required."
    phrase = _PHRASES.get(kind) or re.sub(r"^Input should", "must", item["msg"]).rstrip(".")
    if kind == "string_too_short":
        phrase = "must be non-empty text"
    return f"{phrase}; got {_shown(value)}."


def _shown(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{value!r:.80}"


def _fields_at(model: Any, loc: Sequence[Any]) -> list[str]:
    """The fields of the section at ``loc`` (for "unknown field; use …")."""
    current = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return []
            current = field.annotation
        elif typing.get_origin(current) in (dict, list, Mapping, Sequence):
            current = typing.get_args(current)[-1]
        else:
            return []
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(current.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    """``X`` from ``X | None`` and ``Annotated[X, ...]``."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def dotted(loc: Sequence[Any]) -> str:
    """``policies.p.steps[0]``: a location as the docs write it; a key that is not a plain
    name is quoted (``data['my file']``), so that the message stays one line."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif re.fullmatch(r"[\w\-/]+(\.[\w\-/]+)*", str(part)):
            text += f".{part}" if text else str(part)
        else:
            text += f"[{str(part)!r}]"
    return text


def _line(node: Any, loc: Sequence[Any]) -> int:
    """The 1-based line of the field at ``loc`` in the composed YAML, or of the deepest
    node on the way that exists (for a missing field: its parent); 1 without a node."""
    if node is None:
        return 1
    line = node.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                break
            node = node.value[part]
            line = node.start_mark.line + 1
        elif isinstance(node, yaml.MappingNode):
            found = [(k, v) for k, v in node.value if str(getattr(k, "value", "")) == str(part)]
            if not found:
                break
            key, node = found[0]
            line = key.start_mark.line + 1
        else:
            break
    return line
