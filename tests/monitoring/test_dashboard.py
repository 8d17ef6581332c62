"""monitoring/dashboard.json (Grafana dashboard as code): it shows what the issue asks for, and every
query names a series the service really exports (its /metrics output, scraped in-process), a series
monitoring/rules.yaml records, or one of the kube-state-metrics series listed in KUBE_STATE_SERIES."""

from __future__ import annotations

import json

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from service.app import create_app
from tests.monitoring.conftest import RULES
from tests.monitoring.dashboards import DASHBOARD, KUBE_STATE_SERIES, queries, series_names
from tests.service.conftest import TestClient, encode, scrape
from tests.service.tiny import TinyClassifier, solid, tiny_settings

#: Sample names of each metric type in the text exposition (OpenMetrics / Prometheus text format).
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",),
            "info": ("_info",), "summary": ("_sum", "_count", "")}


@pytest.fixture(scope="module")
def exported() -> set[str]:
    """Series names in the service's real /metrics output after a few requests (the app in-process)."""
    settings = tiny_settings()
    with TestClient(create_app(settings, classifier=TinyClassifier(settings))) as client:
        client.post("/predict?top_k=1", content=encode(solid((250, 10, 10)), "PNG"),
                    headers={"Content-Type": "image/png"})
        text = scrape(client.app)
    return {family.name + suffix for family in text_string_to_metric_families(text)
            for suffix in SUFFIXES[family.type]}


def recorded() -> set[str]:
    return {rule["record"] for group in yaml.safe_load(RULES.read_text())["groups"]
            for rule in group["rules"] if "record" in rule}


def test_every_query_names_an_exported_recorded_or_kube_state_series(exported):
    allowed = exported | recorded() | KUBE_STATE_SERIES
    unknown = {(title, name) for title, expr in queries() for name in series_names(expr) - allowed}
    assert not unknown
    named = set().union(*(series_names(expr) for _, expr in queries()))
    assert named & KUBE_STATE_SERIES == KUBE_STATE_SERIES  # the allowed list holds no dead entries


def test_the_check_catches_a_series_nobody_exports(exported):
    dashboard = json.loads(DASHBOARD.read_text())
    dashboard["panels"][0]["targets"][0]["expr"] = 'sum(rate(http_request_total{route="/predict"}[5m]))'
    names = set().union(*(series_names(expr) for _, expr in queries(dashboard)))
    assert "http_request_total" in names and "http_request_total" not in exported


def test_series_names_reads_promql():
    expr = ('histogram_quantile(0.99, sum by (le) (rate(inference_duration_seconds_bucket'
            '{route=~"/v2/models/.+/infer", model="by"}[$__rate_interval]))) / on (pod) group_left up')
    assert series_names(expr) == {"inference_duration_seconds_bucket", "up"}


def test_the_dashboard_shows_what_operators_need():
    """Throughput, p50 and p99 of every stage, queue depth, batch sizes, error rates and replicas."""
    dashboard = json.loads(DASHBOARD.read_text())
    by_title = {panel["title"]: {name for target in panel["targets"] for name in series_names(target["expr"])}
                for panel in dashboard["panels"]}
    stages = {"http_request_duration_seconds_bucket", "image_preprocess_duration_seconds_bucket",
              "inference_queue_wait_seconds_bucket", "inference_duration_seconds_bucket",
              "postprocess_duration_seconds_bucket"}
    assert by_title["Latency p50 per stage"] == by_title["Latency p99 per stage"] == stages
    assert {"http_requests_total", "inference_batch_size_sum"} <= by_title["Throughput"]
    assert "inference_queue_depth" in by_title["Queue depth"]
    assert "inference_batch_size_bucket" in by_title["Batch size"]
    assert "namespace_job:http_requests_5xx:ratio_rate5m" in by_title["Error rates"]
    assert "kube_deployment_status_replicas_available" in by_title["Replicas"]
    exprs = [expr for _, expr in queries(dashboard)]
    assert all("histogram_quantile(0.5," in e or "histogram_quantile(0.99," in e
               for e in exprs if "_bucket" in e and "batch" not in e)
    assert {p["datasource"]["uid"] for p in dashboard["panels"]} == {"${datasource}"}
    assert [v["name"] for v in dashboard["templating"]["list"]] == ["datasource"]
