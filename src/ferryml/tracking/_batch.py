"""Values a user logs, checked and turned into the records the journal keeps; a batch is
checked whole before any of it is logged."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ferryml.errors import Conflict, InvalidArgument
from ferryml.store.entities import Metric
from ferryml.store.records import MetricRecord, ParamRecord, Record, TagRecord
from ferryml.tracking import _validation as check

__all__ = ["dict_text", "figure_bytes", "metric_records", "param_records", "tag_records"]


def metric_records(run_id: str, metrics: Iterable[Metric], now: int) -> list[Record]:
    """One record per metric value; a value without a timestamp gets ``now``."""
    records: list[Record] = []
    for m in metrics:
        # Checked inline: batches of thousands of values are the common case.
        key, value, ts, step = m.key, m.value, m.timestamp, m.step
        check.check_key(key, "metric")
        if type(value) is not float:
            value = check.check_metric_value(key, value)
        if ts is None:
            ts = now
        elif type(ts) is not int:
            ts = check.check_timestamp(key, ts)
        if type(step) is not int:
            step = check.check_step(key, step)
        if value == value:
            records.append(MetricRecord(run_id, key, step, ts, value, False))
        else:
            records.append(MetricRecord(run_id, key, step, ts, 0.0, True))
    return records


def param_records(
    run_id: str,
    params: Mapping[str, Any] | Iterable[Any],
    logged: Mapping[str, str],
) -> tuple[list[Record], dict[str, str]]:
    """A record for each param not ``logged`` yet, and those params.

    Raises:
        Conflict: a param was logged before with another value.
    """
    records: list[Record] = []
    new: dict[str, str] = {}
    for key, value in _pairs(params):
        check.check_key(key, "param")
        text = check.check_value(key, value, "Param", check.MAX_PARAM_VALUE)
        old = logged.get(key, new.get(key))
        if old is not None and old != text:
            raise Conflict(
                f"Param {key!r} of run {run_id} is {old!r} already; params cannot change "
                f"(got {text!r}). Log the new value under another key, or start a new run."
            )
        if old is None:
            new[key] = text
            records.append(ParamRecord(run_id, key, text))
    return records, new


def tag_records(run_id: str, tags: Mapping[str, Any] | Iterable[Any]) -> list[Record]:
    records: list[Record] = []
    for key, value in _pairs(tags):
        check.check_key(key, "tag")
        text = check.check_value(key, value, "Tag", check.MAX_TAG_VALUE)
        records.append(TagRecord(run_id, key, text))
    return records


def dict_text(dictionary: Mapping[str, Any], artifact_file: str) -> str:
    """A mapping as JSON, or as YAML when ``artifact_file`` ends in .yaml/.yml."""
    if artifact_file.endswith((".yaml", ".yml")):
        import yaml

        return yaml.safe_dump(dict(dictionary), sort_keys=False)
    try:
        return json.dumps(dictionary, indent=2)
    except TypeError as e:
        raise InvalidArgument(f"log_dict: {e}; use JSON-compatible values.") from e


def figure_bytes(figure: Any, artifact_file: str) -> bytes:
    """A matplotlib figure saved in the format of the file's extension (png without one)."""
    if not hasattr(figure, "savefig"):
        raise InvalidArgument(f"log_figure needs a matplotlib Figure; got {type(figure).__name__}.")
    buffer = io.BytesIO()
    figure.savefig(buffer, format=Path(artifact_file).suffix.lstrip(".") or "png")
    return buffer.getvalue()


def _pairs(values: Mapping[str, Any] | Iterable[Any]) -> Iterable[tuple[Any, Any]]:
    if isinstance(values, Mapping):
        return values.items()
    pairs = []
    for item in values:
        if not hasattr(item, "key") or not hasattr(item, "value"):
            raise InvalidArgument(
                f"Expected a mapping or Param/RunTag objects; got {type(item).__name__} {item!r}."
            )
        pairs.append((item.key, item.value))
    return pairs
