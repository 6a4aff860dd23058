"""The graphs and charts the pages draw on the server: nodes in columns by their longest
path, edges to unknown nodes left out, a cycle that does not hang; charts with gaps."""

from __future__ import annotations

from ferryml.ui._chart import DOTS, line_chart
from ferryml.ui._graph import GraphNode, layout


def test_nodes_stand_in_columns_by_their_longest_path() -> None:
    nodes = [GraphNode(k, k) for k in ("load", "clean", "fit", "report")]
    edges = [("load", "clean"), ("clean", "fit"), ("load", "fit"), ("fit", "report"), ("x", "fit")]
    drawing = layout(nodes, edges)
    x = {b.node.key: b.x for b in drawing.boxes}
    assert x["load"] < x["clean"] < x["fit"] < x["report"]
    assert len(drawing.lines) == 4  # the edge from the unknown "x" is left out
    assert all(line.x1 < line.x2 for line in drawing.lines)  # every edge points right


def test_a_cycle_is_drawn_without_hanging() -> None:
    drawing = layout([GraphNode("a", "a"), GraphNode("b", "b")], [("a", "b"), ("b", "a")])
    assert len(drawing.boxes) == 2 and drawing.width > 0


def test_a_chart_leaves_gaps_and_drops_dots_on_long_series() -> None:
    chart = line_chart("drift", [0, 1000, 2000], {"a": [0.1, None, 0.3], "b": [None] * 3})
    assert not chart.empty and len(chart.series[0].dots) == 2 and chart.series[1].points == ""
    long = line_chart("drift", list(range(DOTS + 1)), {"a": [1.0] * (DOTS + 1)})
    assert long.series[0].dots == () and long.series[0].points.count(",") == DOTS + 1
    assert line_chart("none", [], {}).empty
