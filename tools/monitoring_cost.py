"""Monthly cost of the cluster's observability at a stated load: managed Prometheus samples, Log Analytics GB.

    python -m tools.monitoring_cost --pods 3 --rps 20

Managed Prometheus bills samples ingested: one sample per series per scrape. The series of one pod are counted
from the service's own registry (`service.metrics.Metrics`) after observing the label sets a running pod
exports (`LABELS`), in the text exposition the scraper reads, plus the five series Prometheus adds per target
(`up`, `scrape_duration_seconds`, `scrape_samples_scraped`, `scrape_samples_post_metric_relabeling`,
`scrape_series_added`). The scrape interval is the PodMonitor's (`stacks.scrape.SCRAPE_INTERVAL`).
Log Analytics bills GB ingested: the service's access-log line (JSON formatter, `service.logs`) per request
in ContainerLogV2, with `ROW_OVERHEAD_BYTES` of Container Insights columns per row (an assumption, not a
measurement). Node and pod inventory and performance rows are not modelled: read them off the workspace's
`Usage` table (docs/managed-prometheus.md). Prices: `PRICES` (list prices, not verified live).
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass

from prometheus_client import generate_latest

from service.logs import JsonFormatter
from service.metrics import Metrics
from stacks.scrape import SCRAPE_INTERVAL

SECONDS_PER_MONTH = 30 * 86_400
#: Series Prometheus itself adds per scraped target (Prometheus docs, "Jobs and instances": automatically
#: generated labels and time series).
SCRAPE_SERIES = 5
#: What a pod under load has seen: the two inference routes and the probes; statuses 200, 400, 413, 503, 504.
ROUTES = ("/predict", "/v2/models/{name}/infer", "/healthz", "/readyz")
STATUSES = ("200", "400", "413", "503", "504")
REJECT_REASONS = ("queue_full", "timeout", "disconnected")
#: Container Insights columns of a ContainerLogV2 row besides the log line (time, computer, pod, namespace,
#: container, ids): an assumed size; the workspace's `Usage` table gives the real one.
ROW_OVERHEAD_BYTES = 500


@dataclass(frozen=True)
class Prices:
    """USD list prices, pay-as-you-go, US East (azure.microsoft.com/pricing/details/monitor/, as published in
    2025-2026; not verified live here: check the pricing calculator for your region and date)."""

    prometheus_per_10m_samples: float = 0.16  # metrics ingestion; 18 months' retention included
    log_analytics_per_gb: float = 2.30  # Analytics logs ingestion; 31 days' retention included
    log_analytics_free_gb: float = 5.0  # per billing account per month


PRICES = Prices()


def scrape_seconds() -> int:
    """`SCRAPE_INTERVAL` (`30s`) in seconds."""
    assert SCRAPE_INTERVAL.endswith("s")
    return int(SCRAPE_INTERVAL[:-1])


def series_per_pod() -> int:
    """Samples in one scrape of one pod: the service's exposition after every `ROUTES` x `STATUSES` request
    and both rejection reasons have been seen, plus `SCRAPE_SERIES`."""
    metrics = Metrics("resnet50", "1")
    for route in ROUTES:
        method = "POST" if route.startswith(("/predict", "/v2/models")) else "GET"
        for status in STATUSES:
            metrics.requests.labels(method, route, status).inc()
        metrics.latency.labels(method, route).observe(0.05)
    for reason in REJECT_REASONS:
        metrics.reject(reason, 1)
    for histogram in (
        metrics.batch_size,
        metrics.inference_seconds,
        metrics.preprocess_seconds,
        metrics.queue_wait_seconds,
        metrics.postprocess_seconds,
    ):
        histogram.observe(1)
    text = generate_latest(metrics.registry).decode()
    return sum(1 for line in text.splitlines() if line and not line.startswith("#")) + SCRAPE_SERIES


def access_log_bytes() -> int:
    """Bytes of one inference request's access-log line (the service's JSON formatter), newline included."""
    record = logging.LogRecord(
        "service.access",
        logging.INFO,
        __file__,
        0,
        "%s %s %d",
        ("POST", "/v2/models/resnet50/infer", 200),
        None,
    )
    for key, value in {
        "method": "POST",
        "path": "/v2/models/resnet50/infer",
        "status": 200,
        "duration_ms": 41.27,
        "request_id": "0" * 32,
        "images": 1,
        "batch_size": 8,
    }.items():
        setattr(record, key, value)
    return len(JsonFormatter().format(record).encode()) + 1


@dataclass(frozen=True)
class Estimate:
    """One month at `pods` replicas and `rps` requests/s: samples, USD, GB."""

    pods: int
    rps: float
    samples: int
    prometheus_usd: float
    log_gb: float
    log_usd: float


def estimate(pods: int, rps: float, prices: Prices = PRICES) -> Estimate:
    """Monthly samples and cost: `pods` replicas scraped every SCRAPE_INTERVAL, `rps` requests/s logged."""
    samples = series_per_pod() * pods * SECONDS_PER_MONTH // scrape_seconds()
    log_gb = rps * SECONDS_PER_MONTH * (access_log_bytes() + ROW_OVERHEAD_BYTES) / 1e9
    return Estimate(
        pods=pods,
        rps=rps,
        samples=samples,
        prometheus_usd=round(samples / 1e7 * prices.prometheus_per_10m_samples, 2),
        log_gb=round(log_gb, 1),
        log_usd=round(max(0.0, log_gb - prices.log_analytics_free_gb) * prices.log_analytics_per_gb, 2),
    )


def row(e: Estimate) -> str:
    """A Markdown table row: pods, requests/s, samples/month, USD, GB/month, USD."""
    return (
        f"| {e.pods} | {e.rps:g} | {e.samples / 1e6:.1f} M | ${e.prometheus_usd:.2f} | {e.log_gb:.1f} GB "
        f"| ${e.log_usd:.2f} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", type=int, default=3, help="replicas scraped (default 3)")
    parser.add_argument("--rps", type=float, default=20.0, help="inference requests per second (default 20)")
    args = parser.parse_args(argv)
    print(
        f"series per pod: {series_per_pod()}, scrape every {SCRAPE_INTERVAL}, "
        f"access log line: {access_log_bytes()} B + {ROW_OVERHEAD_BYTES} B per row"
    )
    print(row(estimate(args.pods, args.rps)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
