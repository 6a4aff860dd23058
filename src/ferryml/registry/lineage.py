"""A model version's lineage as a graph: prediction → model version → run → data versions
→ code commit, each arrow a record the stores keep. What the model and prediction pages
draw."""

from __future__ import annotations

from dataclasses import dataclass

from ferryml.config import Settings
from ferryml.errors import NotFound

__all__ = ["LineageGraph", "LineageNode", "lineage_graph", "prediction_lineage"]


@dataclass(frozen=True)
class LineageNode:
    """One record: ``kind`` is prediction, model_version, run, data_version or commit;
    ``key`` names it (a prediction or run id, ``NAME/VERSION``, ``NAME@VERSION``, a
    commit hash); ``label`` is what a person reads; ``detail`` a second line."""

    kind: str
    key: str
    label: str
    detail: str = ""


@dataclass(frozen=True)
class LineageGraph:
    """Nodes, and edges (from, to) by node key, from the newest record to its sources."""

    nodes: tuple[LineageNode, ...]
    edges: tuple[tuple[str, str], ...]


def lineage_graph(name: str, version: int, *, settings: Settings | None = None) -> LineageGraph:
    """Model version ``name``/``version`` and where it came from.

    Raises:
        NotFound: no such model version.
    """
    from ferryml.registry.models import Registry

    registry = Registry(settings or Settings.resolve())
    try:
        found = registry.lineage(f"{name}/{int(version)}")
    finally:
        registry.close()
    v = found.version
    top = LineageNode("model_version", f"{v.name}/{v.version}", f"{v.name} v{v.version}", v.flavor)
    nodes, edges = [top], []
    sources = [top.key]
    if found.run is not None:
        info = found.run.info
        run = LineageNode("run", info.run_id, info.run_name or info.run_id[:8], info.status.value)
        nodes.append(run)
        edges.append((top.key, run.key))
        sources = [run.key]
    for data in found.data_versions:
        nodes.append(LineageNode("data_version", data, data))
        edges.extend((source, data) for source in sources)
    if found.commit:
        dirty = " with uncommitted changes" if found.dirty else ""
        nodes.append(LineageNode("commit", found.commit, found.commit[:10], f"git commit{dirty}"))
        edges.extend((source, found.commit) for source in sources)
    return LineageGraph(tuple(nodes), tuple(edges))


def prediction_lineage(prediction_id: str, *, settings: Settings | None = None) -> LineageGraph:
    """The logged prediction ``prediction_id``, the model version that made it and that
    version's lineage.

    Raises:
        NotFound: no flushed prediction has that id.
    """
    from ferryml.serving.predictions import find_prediction

    settings = settings or Settings.resolve()
    found = find_prediction(prediction_id, settings=settings)
    if found is None:
        raise NotFound(
            f"No logged prediction has id {prediction_id!r}; a prediction appears once its "
            "server flushed its log (about a second)."
        )
    deployment, model, version = found
    graph = lineage_graph(model, version, settings=settings)
    node = LineageNode("prediction", prediction_id, prediction_id[:12], f"deployment {deployment}")
    return LineageGraph((node, *graph.nodes), ((node.key, graph.nodes[0].key), *graph.edges))
