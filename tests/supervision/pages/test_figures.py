"""supervision.figures: pure figure builders (no database). Figures are validated by plotly itself."""

from __future__ import annotations

import json
from decimal import Decimal

import plotly.graph_objects as go
import pytest

from supervision import figures
from supervision.figures import GraphEdge, GraphNode


def _valid(figure: dict) -> go.Figure:
    json.dumps(figure)  # embeddable as JSON
    return go.Figure(figure)  # raises on any property plotly does not know


def test_blocks_per_minute_figure_has_one_line_per_chain():
    minutes = ["10:00", "10:01", "10:02"]
    fig = figures.blocks_per_minute_figure(minutes, {"szse": [0, 1, 2], "sse": [3, 0, 1]},
                                           title="t", y_title="y")
    _valid(fig)
    assert [t["name"] for t in fig["data"]] == ["sse", "szse"]
    assert fig["data"][0]["y"] == [3, 0, 1]
    assert fig["data"][0]["x"] == minutes


def test_blocks_per_minute_figure_rejects_ragged_series():
    with pytest.raises(ValueError, match="2 points for 3 minutes"):
        figures.blocks_per_minute_figure(["a", "b", "c"], {"sse": [1, 2]}, title="", y_title="")


def test_alerts_by_severity_stacks_statuses_in_severity_order():
    fig = figures.alerts_by_severity_figure(
        {"medium": {"open": 2}, "critical": {"open": 1, "closed": 4}},
        severity_labels={"critical": "严重", "high": "高", "medium": "中", "low": "低"},
        status_labels={"open": "待处理", "closed": "已关闭"},
        title="告警",
    )
    _valid(fig)
    assert fig["layout"]["barmode"] == "stack"
    assert fig["layout"]["meta"]["severities"] == ["critical", "high", "medium", "low"]
    assert fig["layout"]["yaxis"]["dtick"] == 1  # small counts: whole-number ticks
    by_status = {t["name"]: t["y"] for t in fig["data"]}
    assert fig["data"][0]["x"] == ["严重", "高", "中", "低"]
    assert by_status["待处理"] == [1, 0, 2, 0]
    assert by_status["已关闭"] == [4, 0, 0, 0]


def test_layered_layout_puts_holders_above_and_holdings_below():
    edges = [("P", "A"), ("A", "B"), ("Q", "A"), ("B", "C")]
    pos = figures.ownership_layout(["A", "B", "C", "P", "Q"], edges, root="A")
    assert pos["A"][1] == 0
    assert pos["P"][1] == pos["Q"][1] == 1
    assert pos["B"][1] == -1 and pos["C"][1] == -2
    assert pos["P"][0] != pos["Q"][0]  # spread within a layer


def test_layered_layout_survives_cycles_and_loose_nodes():
    edges = [("A", "B"), ("B", "C"), ("C", "A")]
    pos = figures.ownership_layout(["A", "B", "C", "Z"], edges, root="A")
    assert set(pos) == {"A", "B", "C", "Z"}
    assert len({pos[n] for n in pos}) == 4  # nobody on top of anybody


def test_spring_layout_is_deterministic():
    edges = [("A", "B"), ("B", "C")]
    one = figures.ownership_layout(["A", "B", "C"], edges, root="A", method="spring")
    two = figures.ownership_layout(["A", "B", "C"], edges, root="A", method="spring")
    assert one == two


def test_ownership_graph_figure_draws_arrows_with_share_labels_and_links():
    nodes = [
        GraphNode(id="A", label="甲公司", kind="org", href="/entities/A/"),
        GraphNode(id="P", label="张三 110101********1234", kind="person", href="/entities/~x/"),
    ]
    edges = [GraphEdge(source="P", target="A", weight=Decimal("0.6")),
             GraphEdge(source="P", target="missing", weight=0.1)]
    fig = figures.ownership_graph_figure(nodes, edges, root="A",
                                         kind_labels={"org": "机构", "person": "自然人"})
    _valid(fig)
    arrows = [a for a in fig["layout"]["annotations"] if a["showarrow"]]
    labels = [a["text"] for a in fig["layout"]["annotations"] if not a["showarrow"]]
    assert len(arrows) == 1  # the edge to an undrawn node is left out
    assert (arrows[0]["ax"], arrows[0]["ay"]) != (arrows[0]["x"], arrows[0]["y"])
    assert labels == ["60.00%"]
    persons = next(t for t in fig["data"] if t.get("name") == "自然人")
    assert persons["customdata"] == ["/entities/~x/"]
    orgs = next(t for t in fig["data"] if t.get("name") == "机构")
    assert orgs["marker"]["size"] == [26]  # the root is drawn larger


def test_graph_labels_are_shown_as_text_not_markup():
    nodes = [GraphNode(id="A", label="<b>甲</b>&", kind="org"), GraphNode(id="B", label="乙", kind="org")]
    fig = figures.ownership_graph_figure(nodes, [GraphEdge("B", "A", 0.5)], root="A", kind_labels={})
    texts = [t for trace in fig["data"] for t in trace["text"]]
    assert "&lt;b&gt;甲&lt;/b&gt;&amp;" in texts
