"""Reading monitoring/dashboard.json: its panels' PromQL queries and the series each one names."""

from __future__ import annotations

import json
import re
from pathlib import Path

DASHBOARD = Path(__file__).resolve().parents[2] / "monitoring" / "dashboard.json"

#: kube-state-metrics series the dashboard may name (replicas, readiness, restarts); Azure's managed
#: Prometheus add-on scrapes kube-state-metrics by default.
KUBE_STATE_SERIES = frozenset({"kube_deployment_spec_replicas", "kube_deployment_status_replicas_available",
                               "kube_pod_status_ready", "kube_pod_container_status_restarts_total"})
#: PromQL words that are not series names (https://prometheus.io/docs/prometheus/latest/querying/operators/).
_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
                       "unless", "offset", "inf", "nan"})


def queries(dashboard: dict | None = None) -> list[tuple[str, str]]:
    """``(panel title, expr)`` of every target of every panel."""
    dashboard = dashboard or json.loads(DASHBOARD.read_text())
    return [(panel["title"], target["expr"]) for panel in dashboard["panels"] for target in panel["targets"]]


def series_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects: identifiers outside strings, label matchers, ranges
    and grouping clauses that are neither functions / aggregations (followed by ``(``) nor keywords."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    for match in re.finditer(r"(?<![\w.$])[A-Za-z_:][A-Za-z0-9_:]*", expr):
        if match.group() not in _KEYWORDS and not expr[match.end():].lstrip().startswith("("):
            names.add(match.group())
    return names
