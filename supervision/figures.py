"""Plotly figures for the dashboard, as plain JSON-ready dicts (pure: no Django, no database).

Every function takes plain data (strings, numbers, mappings) and returns `{"data": [...], "layout": {...}}`
that the page embeds in a `<script type="application/json">` tag and hands to `Plotly.newPlot`.
Labels arrive already translated; numbers become floats only here, at the chart.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import networkx as nx

Figure = dict[str, Any]

FONT_FAMILY = '"PingFang SC","Noto Sans CJK SC","Microsoft YaHei",system-ui,sans-serif'
CHAIN_COLOURS = ("#1f5fa8", "#c77700", "#2e7d32", "#6a1b9a", "#00838f", "#ad1457", "#5d4037", "#455a64")
SEVERITY_ORDER = ("critical", "high", "medium", "low")
STATUS_ORDER = ("open", "acknowledged", "escalated", "closed")
STATUS_COLOURS = {
    "open": "#b3261e",
    "acknowledged": "#c77700",
    "escalated": "#6a1b9a",
    "closed": "#9aa3b2",
}
NODE_COLOURS = {"org": "#1f5fa8", "person": "#2e7d32", "unknown": "#9aa3b2"}
NODE_SYMBOLS = {"org": "square", "person": "circle", "unknown": "diamond"}


def _base_layout(**extra: Any) -> dict[str, Any]:
    layout: dict[str, Any] = {
        "font": {"family": FONT_FAMILY, "size": 12, "color": "#1d2433"},
        "margin": {"l": 48, "r": 16, "t": 36, "b": 40},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "hoverlabel": {"font": {"family": FONT_FAMILY}},
    }
    layout.update(extra)
    return layout


def _count_axis(peak: int, **extra: Any) -> dict[str, Any]:
    """A y axis for counts: whole-number ticks even when the counts are small."""
    axis: dict[str, Any] = {"rangemode": "tozero", "gridcolor": "#e3e7ee", "zeroline": False,
                            "tickformat": ",d", **extra}
    if peak <= 5:
        axis.update(dtick=1, range=[0, max(peak, 1) + 0.25])
    return axis


def blocks_per_minute_figure(
    minutes: Sequence[str],
    series: Mapping[str, Sequence[int]],
    *,
    title: str,
    y_title: str,
) -> Figure:
    """One line per chain: blocks received in each minute. `minutes` are the x labels (local time),
    `series[chain]` the counts for those minutes."""
    data = []
    for index, (chain, counts) in enumerate(sorted(series.items())):
        if len(counts) != len(minutes):
            raise ValueError(f"series {chain!r} has {len(counts)} points for {len(minutes)} minutes")
        data.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": chain,
                "x": list(minutes),
                "y": [int(c) for c in counts],
                "line": {"color": CHAIN_COLOURS[index % len(CHAIN_COLOURS)], "width": 2},
                "marker": {"size": 4},
                "hovertemplate": f"{chain} %{{x}}: %{{y}}<extra></extra>",
            }
        )
    layout = _base_layout(
        title={"text": title, "x": 0, "xanchor": "left", "font": {"size": 14}},
        xaxis={"type": "category", "showgrid": False, "nticks": 8, "tickangle": 0},
        yaxis=_count_axis(max((int(c) for counts in series.values() for c in counts), default=0),
                          title={"text": y_title}),
        legend={"orientation": "h", "y": -0.18},
        height=280,
    )
    return {"data": data, "layout": layout}


def alerts_by_severity_figure(
    counts: Mapping[str, Mapping[str, int]],
    *,
    severity_labels: Mapping[str, str],
    status_labels: Mapping[str, str],
    title: str,
) -> Figure:
    """Stacked bars: one bar per severity (critical first), stacked by status.
    `counts[severity][status]` is a number of alerts; missing pairs count as 0."""
    severities = [s for s in SEVERITY_ORDER if s in severity_labels or s in counts]
    extra = sorted(set(counts) - set(severities))
    severities += extra
    x = [severity_labels.get(s, s) for s in severities]
    data = []
    statuses = list(STATUS_ORDER) + sorted({st for row in counts.values() for st in row} - set(STATUS_ORDER))
    for status in statuses:
        y = [int(counts.get(s, {}).get(status, 0)) for s in severities]
        data.append(
            {
                "type": "bar",
                "name": status_labels.get(status, status),
                "x": x,
                "y": y,
                "marker": {"color": STATUS_COLOURS.get(status, "#607d8b")},
                "hovertemplate": f"%{{x}} · {status_labels.get(status, status)}: %{{y}}<extra></extra>",
                "meta": {"status": status},
            }
        )
    peak = max((sum(int(n) for n in row.values()) for row in counts.values()), default=0)
    layout = _base_layout(
        title={"text": title, "x": 0, "xanchor": "left", "font": {"size": 14}},
        barmode="stack",
        xaxis={"type": "category", "showgrid": False},
        yaxis=_count_axis(peak),
        legend={"orientation": "h", "y": -0.18, "traceorder": "normal"},
        height=280,
        meta={"severities": severities},  # lets the page's JS add live alerts to the right bar
    )
    return {"data": data, "layout": layout}


# --- ownership graph --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GraphNode:
    """A node to draw: `label` is what the page may show (ids already masked where needed)."""

    id: str
    label: str
    kind: str = "unknown"  # "org" / "person" / "unknown"
    href: str = ""
    hover: tuple[str, ...] = ()  # lines shown on hover (default: the label)


@dataclass(frozen=True, slots=True)
class GraphEdge:
    """`source` holds `weight` (a fraction 0..1) of `target`."""

    source: str
    target: str
    weight: Decimal | float


Position = tuple[float, float]


def ownership_layout(
    nodes: Sequence[str],
    edges: Sequence[tuple[str, str]],
    *,
    root: str,
    method: Literal["layered", "spring"] = "layered",
) -> dict[str, Position]:
    """Positions for the ownership subgraph around `root`.

    `layered`: holders above the root, holdings below (a breadth-first walk from the root over
    the undirected graph, one layer up when walking to a holder, one down when walking to a
    holding; the first visit wins, so cycles still get one place), then each layer is ordered by
    the mean x of its already placed neighbours to keep edges short. Nodes not connected to the
    root are placed with a seeded spring layout beside it. `spring`: networkx's spring layout with
    a fixed seed (deterministic).
    """
    graph = nx.DiGraph()
    graph.add_nodes_from(nodes)
    graph.add_edges_from((s, t) for s, t in edges if s != t)
    if root not in graph:
        graph.add_node(root)
    if method == "spring":
        raw = nx.spring_layout(graph, seed=7, k=1.5 / math.sqrt(max(graph.number_of_nodes(), 1)))
        return {n: (round(float(p[0]), 4), round(float(p[1]), 4)) for n, p in raw.items()}

    layer: dict[str, int] = {root: 0}
    order: list[str] = [root]
    queue = [root]
    while queue:
        current = queue.pop(0)
        neighbours = [(h, 1) for h in sorted(graph.predecessors(current))]
        neighbours += [(o, -1) for o in sorted(graph.successors(current))]
        for other, step in neighbours:
            if other not in layer:
                layer[other] = layer[current] + step
                order.append(other)
                queue.append(other)

    by_layer: dict[int, list[str]] = defaultdict(list)
    for node in order:
        by_layer[layer[node]].append(node)
    positions: dict[str, Position] = {}
    undirected = graph.to_undirected(as_view=True)
    # Place layers outward from the root so each one can follow its placed neighbours.
    for level in sorted(by_layer, key=lambda lv: (abs(lv), -lv)):
        members = by_layer[level]

        def barycentre(node: str) -> float:
            xs = [positions[n][0] for n in undirected.neighbors(node) if n in positions]
            return sum(xs) / len(xs) if xs else 0.0

        members.sort(key=lambda n: (barycentre(n), order.index(n)))
        width = len(members)
        for i, node in enumerate(members):
            positions[node] = (float(i - (width - 1) / 2), float(level))

    loose = [n for n in graph.nodes if n not in positions]
    if loose:
        sub = graph.subgraph(loose)
        raw = nx.spring_layout(sub, seed=7)
        right = max((p[0] for p in positions.values()), default=0.0) + 1.5
        for n, p in raw.items():
            positions[n] = (round(right + float(p[0]), 4), round(float(p[1]), 4))
    return positions


def _plain(text: str) -> str:
    """Text for plotly, which reads a little HTML in labels: show names as they are."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _percent(weight: Decimal | float) -> str:
    value = Decimal(str(weight)) * 100
    return f"{value.quantize(Decimal('0.01'))}%"


def ownership_graph_figure(
    nodes: Sequence[GraphNode],
    edges: Sequence[GraphEdge],
    *,
    root: str,
    kind_labels: Mapping[str, str],
    title: str = "",
    method: Literal["layered", "spring"] = "layered",
) -> Figure:
    """The ownership graph: arrows from holder to issuer, labelled with the share held; orgs as
    squares, persons as circles, the root outlined. Clicking a node follows its `href` (the page's
    JS reads `customdata`)."""
    known = {n.id for n in nodes}
    drawn_edges = [e for e in edges if e.source in known and e.target in known and e.source != e.target]
    positions = ownership_layout(
        [n.id for n in nodes], [(e.source, e.target) for e in drawn_edges], root=root, method=method
    )

    arrows: list[dict[str, Any]] = []
    labels: list[dict[str, Any]] = []
    for edge in drawn_edges:
        (sx, sy), (tx, ty) = positions[edge.source], positions[edge.target]
        width = 1 + 3 * min(max(float(edge.weight), 0.0), 1.0)
        arrows.append(
            {
                "x": tx, "y": ty, "ax": sx, "ay": sy,
                "xref": "x", "yref": "y", "axref": "x", "ayref": "y",
                "showarrow": True, "arrowhead": 2, "arrowsize": 1, "arrowwidth": round(width, 2),
                "arrowcolor": "#8a94a6", "standoff": 14, "startstandoff": 14, "text": "",
            }
        )
        labels.append(
            {
                "x": (sx + tx) / 2, "y": (sy + ty) / 2, "xref": "x", "yref": "y", "showarrow": False,
                "text": _percent(edge.weight), "font": {"size": 11, "color": "#5b6578"},
                "bgcolor": "rgba(255,255,255,0.9)", "borderpad": 2,
            }
        )

    data: list[dict[str, Any]] = []
    for kind in ("org", "person", "unknown"):
        members = [n for n in nodes if (n.kind if n.kind in NODE_COLOURS else "unknown") == kind]
        members.sort(key=lambda n: n.id == root)  # the legend shows the first marker's style
        if not members:
            continue
        data.append(
            {
                "type": "scatter",
                "mode": "markers+text",
                "name": kind_labels.get(kind, kind),
                "x": [positions[n.id][0] for n in members],
                "y": [positions[n.id][1] for n in members],
                "text": [_plain(n.label) for n in members],
                "textposition": "middle right",
                "customdata": [n.href for n in members],
                "hovertext": ["<br>".join(_plain(line) for line in (n.hover or (n.label,))) for n in members],
                "hoverinfo": "text",
                "marker": {
                    "symbol": NODE_SYMBOLS[kind],
                    "size": [26 if n.id == root else 18 for n in members],
                    "color": NODE_COLOURS[kind],
                    "line": {"width": [3 if n.id == root else 1 for n in members],
                             "color": ["#b3261e" if n.id == root else "#ffffff" for n in members]},
                },
            }
        )
    ys = [p[1] for p in positions.values()] or [0.0]
    xs = [p[0] for p in positions.values()] or [0.0]
    layout = _base_layout(
        title={"text": title, "x": 0, "xanchor": "left", "font": {"size": 14}} if title else None,
        showlegend=True,
        legend={"orientation": "h", "y": 1.02, "x": 1, "xanchor": "right", "yanchor": "bottom"},
        xaxis={"visible": False, "range": [min(xs) - 1, max(xs) + 1.5]},
        yaxis={"visible": False, "range": [min(ys) - 0.6, max(ys) + 0.5]},
        annotations=arrows + labels,
        height=max(320, 130 * (int(max(ys) - min(ys)) + 1) + 60),
        hovermode="closest",
        dragmode="pan",
    )
    if layout["title"] is None:
        del layout["title"]
    return {"data": data, "layout": layout}
