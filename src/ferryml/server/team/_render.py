"""Responses of the team server: the store's dataclasses as JSON, with NaN and infinite
metric values spelled as Python's json spells them (as MLflow's server does), since a
metric may hold them and JSON has no other way to say so."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from fastapi.responses import Response
from pydantic import ConfigDict, PydanticUserError, TypeAdapter

__all__ = ["render"]


_KEEP_NAN = ConfigDict(ser_json_inf_nan="constants")  # also inside fields typed Any


@lru_cache(maxsize=64)
def _adapter(kind: Any) -> TypeAdapter[Any]:
    try:
        return TypeAdapter(kind, config=_KEEP_NAN)
    except PydanticUserError:  # a dataclass or model itself: it keeps its own config
        return TypeAdapter(kind)


def render(value: Any, kind: Any, status: int = 200) -> Response:
    body = _adapter(kind).dump_python(value, mode="json")
    return Response(json.dumps(body, separators=(",", ":")), status, media_type="application/json")
