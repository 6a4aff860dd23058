"""Graphs drawn as SVG on the server: a pipeline's DAG and a model's lineage. Nodes go in
columns by their longest path from a source, so every edge points right."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Box", "Drawing", "GraphNode", "Line", "layout"]

WIDTH, HEIGHT, GAP_X, GAP_Y, PAD = 170, 46, 60, 18, 8


@dataclass(frozen=True)
class GraphNode:
    """A node: ``key`` names it in the edges; ``href`` is where clicking it leads;
    ``status`` colours it (finished, failed, running, cached, ...)."""

    key: str
    label: str
    detail: str = ""
    href: str | None = None
    status: str = ""


@dataclass(frozen=True)
class Box:
    node: GraphNode
    x: int
    y: int


@dataclass(frozen=True)
class Line:
    x1: int
    y1: int
    x2: int
    y2: int


@dataclass(frozen=True)
class Drawing:
    width: int
    height: int
    boxes: tuple[Box, ...]
    lines: tuple[Line, ...]
    box_width: int = WIDTH
    box_height: int = HEIGHT


def layout(nodes: Sequence[GraphNode], edges: Sequence[tuple[str, str]]) -> Drawing:
    """Boxes and lines for ``nodes`` and ``edges`` (from, to); edges naming an unknown node
    are left out, and a cycle does not hang the layout."""
    keys = {n.key for n in nodes}
    kept = [(a, b) for a, b in edges if a in keys and b in keys and a != b]
    column = dict.fromkeys(keys, 0)
    for _ in range(len(nodes)):  # longest path, at most len(nodes) rounds
        moved = False
        for a, b in kept:
            if column[b] < column[a] + 1 and column[a] + 1 < len(nodes):
                column[b], moved = column[a] + 1, True
        if not moved:
            break
    rows: dict[int, int] = {}
    boxes = []
    for node in nodes:
        c = column[node.key]
        r = rows.get(c, 0)
        rows[c] = r + 1
        boxes.append(Box(node, PAD + c * (WIDTH + GAP_X), PAD + r * (HEIGHT + GAP_Y)))
    at = {b.node.key: b for b in boxes}
    lines = tuple(
        Line(at[a].x + WIDTH, at[a].y + HEIGHT // 2, at[b].x, at[b].y + HEIGHT // 2)
        for a, b in kept
    )
    columns = max(column.values(), default=0) + 1
    height = max(rows.values(), default=1)
    return Drawing(
        width=2 * PAD + columns * WIDTH + (columns - 1) * GAP_X,
        height=2 * PAD + height * HEIGHT + (height - 1) * GAP_Y,
        boxes=tuple(boxes),
        lines=lines,
    )
