"""A real Prometheus scrapes the real service (``python -m service`` on 127.0.0.1) on its metrics port
under a bounded load, and evaluates monitoring/rules.yaml: every recording rule yields its series
from the service's own, with the values the load implies, and no rule fails to evaluate; the dashboard's
queries run on the same series."""

from __future__ import annotations

import contextlib
import io
import threading
import urllib.request

import numpy as np
import pytest
import yaml
from PIL import Image

from tests.monitoring.conftest import MODEL_NAME, RULES, get, wait_for
from tests.monitoring.dashboards import queries

# ~60 s here, most of it building the model and starting the service (2 shared CPUs).
pytestmark = pytest.mark.slow

#: Dashboard panels drawn from the service's series alone (the others need kube-state-metrics or errors).
SERVICE_PANELS = ("Throughput", "Latency p50 per stage", "Latency p99 per stage", "Queue depth", "Batch size",
                  "Error rates")

#: Requests the load sends at most (it stops earlier once the recorded series are there).
MAX_REQUESTS = 3000


def _png() -> bytes:
    buffer = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 255, (80, 96, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def _load(url: str, stop: threading.Event, sent: list[int]) -> None:
    """Upload images (and every tenth time a non-image: a 415) until ``stop`` or MAX_REQUESTS."""
    image = _png()
    while not stop.is_set() and sum(sent) < MAX_REQUESTS:
        bad = sum(sent) % 10 == 9
        request = urllib.request.Request(url + "/predict?top_k=1", data=b"not an image" if bad else image,
                                         headers={"Content-Type": "image/png"}, method="POST")
        with contextlib.suppress(OSError):  # the 415s (HTTPError is an OSError)
            urllib.request.urlopen(request, timeout=30).read()
        sent.append(1)


def test_prometheus_scrapes_the_service_and_evaluates_the_recording_rules(service, prometheus):
    stop, sent = threading.Event(), []
    workers = [threading.Thread(target=_load, args=(service.url, stop, sent)) for _ in range(3)]
    for worker in workers:
        worker.start()
    try:
        [target] = wait_for(lambda: [t for t in prometheus.api("targets")["activeTargets"]
                                     if t["health"] == "up"], 60, "scrape target up")
        assert target["labels"]["job"] == "classifier"
        assert target["scrapeUrl"] == service.metrics_url
        recorded = [rule["record"] for group in yaml.safe_load(RULES.read_text())["groups"]
                    for rule in group["rules"] if "record" in rule]
        # Each recording rule's series appears once the scrapes hold two samples of the load.
        results = {name: wait_for(lambda name=name: prometheus.query(name), 90, f"recorded {name}")
                   for name in recorded}
    finally:
        stop.set()
        for worker in workers:
            worker.join(60)

    def value(name: str) -> float:
        [sample] = results[name]
        return float(sample["value"][1])

    for name in recorded:
        assert results[name][0]["metric"]["job"] == "classifier", name
    assert value("namespace_job:http_requests:rate5m") > 0
    assert value("namespace_job:http_requests_5xx:ratio_rate5m") == 0  # 200s and 415s only
    assert value("namespace_job:http_requests_503:ratio_rate5m") == 0
    assert 0 < value("namespace_job:inference_request_duration_seconds:p50_5m") \
        <= value("namespace_job:inference_request_duration_seconds:p99_5m") < 30
    [images] = results["namespace_job_model:inference_images:rate5m"]
    assert (images["metric"]["model"], images["metric"]["version"]) == (MODEL_NAME, "3")
    assert float(images["value"][1]) > 0
    assert 0 <= value("namespace_job:inference_queue_saturation:max_avg5m") <= 1

    # Every rule, alerts included, evaluated without error against the real series; none fires.
    rules = [rule for group in prometheus.api("rules")["groups"] for rule in group["rules"]]
    assert len(rules) == sum(len(group["rules"]) for group in yaml.safe_load(RULES.read_text())["groups"])
    assert {rule["health"] for rule in rules} == {"ok"}, [r.get("lastError") for r in rules]
    assert not [rule["name"] for rule in rules if rule["type"] == "alerting" and rule["state"] != "inactive"]
    # The dashboard's queries are valid PromQL over the real series; those of the service's own
    # panels return data ($__rate_interval is Grafana's: at least 4 scrape intervals).
    for title, expr in queries():
        result = prometheus.query(expr.replace("$__rate_interval", "1m"))
        if title in SERVICE_PANELS:
            assert result, (title, expr)
    # The API port serves no metrics: only the metrics port is scraped.
    assert get(service.url + "/metrics")[0] == 404
