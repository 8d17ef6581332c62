"""Prometheus metrics (prometheus-client), one registry per app, served on their own port.

Series (names follow Prometheus conventions: base units, ``_total`` counters):
- ``http_requests_total{method, route, status}``; ``http_request_duration_seconds{method, route}``
  (``route`` is the route template, e.g. ``/v2/models/{name}/infer``, or ``unmatched``);
  (counted and timed by ``service.logs.AccessLogMiddleware``);
- labelled ``{model, version}`` (the served model's name and version, as KServe labels its
  ``request_*_seconds`` series with the model), one histogram per stage of the request path, as KServe's
  ``request_{preprocess,predict,postprocess}_seconds``: ``image_preprocess_duration_seconds`` (decode +
  preprocess of one image, decode thread), ``inference_queue_wait_seconds`` (an image ready until its
  forward pass starts), ``inference_duration_seconds`` (one forward pass, collate included),
  ``postprocess_duration_seconds`` (probabilities -> a request's response: top-k, labels);
  ``inference_batch_size`` (images per forward pass), ``inference_rejected_total{reason}``
  (queue_full / timeout / disconnected); ``inference_queue_depth`` (images admitted, neither in nor
  queued for a forward pass), ``inference_queue_capacity`` (``MAX_QUEUE``: 503 at depth = capacity) and
  ``model_ready`` (1 once loaded and warmed and the batcher healthy): read at scrape time from the
  running service (``Gauge.set_function``), never written by a request handler;
- ``request_body_bytes`` (body bytes admitted and in flight) and ``request_body_budget_bytes`` (what the
  memory budget admits at once, ``service.memory``), read at scrape time too;
- ``model_info{name, version, format}``.

``serve_metrics`` serves the registry on ``METRICS_PORT`` (default 9090, container port ``metrics``),
apart from the API port, so that the Service / Ingress that expose the API never expose the metrics.
"""

from __future__ import annotations

import logging
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, start_http_server

logger = logging.getLogger("service")

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128, 256)
#: Labels of every per-model series.
MODEL_LABELS = ("model", "version")


class Metrics:
    """The service's metric objects, registered in their own ``CollectorRegistry``.

    The per-model series are bound to ``model`` / ``version`` here, so the request path observes
    ``metrics.batch_size`` etc. without naming the model; ``reject(reason, n)`` counts refusals.
    """

    def __init__(self, model: str = "", version: str = "") -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.model_labels = {"model": model, "version": version}
        self.requests = Counter("http_requests", "HTTP requests by route and status.",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram("http_request_duration_seconds", "HTTP request latency (s).",
                                 ["method", "route"], buckets=LATENCY_BUCKETS, registry=r)

        def histogram(name: str, text: str, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> Histogram:
            family = Histogram(name, text, MODEL_LABELS, buckets=buckets, registry=r)
            return family.labels(**self.model_labels)

        def gauge(name: str, text: str) -> Gauge:
            return Gauge(name, text, MODEL_LABELS, registry=r).labels(**self.model_labels)

        self.batch_size = histogram("inference_batch_size", "Images per forward pass.", BATCH_BUCKETS)
        self.inference_seconds = histogram("inference_duration_seconds", "One forward pass (s).")
        self.preprocess_seconds = histogram("image_preprocess_duration_seconds",
                                            "Decode + preprocess of one image (s).")
        self.queue_wait_seconds = histogram("inference_queue_wait_seconds", "From an image's tensor being "
                                            "ready to its forward pass starting (s).")
        self.postprocess_seconds = histogram("postprocess_duration_seconds",
                                             "Probabilities -> one request's response: top-k, labels (s).")
        self.queue_depth = gauge("inference_queue_depth", "Images admitted and neither in nor queued for a "
                                 "forward pass (decoding or waiting for a batch).")
        self.queue_capacity = gauge("inference_queue_capacity", "MAX_QUEUE: the queue depth at which "
                                    "requests are refused with 503.")
        self.rejected = Counter("inference_rejected", "Images refused or abandoned: queue full, past "
                                "deadline, client disconnected.", [*MODEL_LABELS, "reason"], registry=r)
        self.model_ready = gauge("model_ready", "1 when the model is loaded and warmed and the batcher "
                                 "healthy.")
        self.body_bytes = Gauge("request_body_bytes", "Request body bytes admitted and in flight.",
                                registry=r)
        self.body_budget = Gauge("request_body_budget_bytes", "Request body bytes the memory budget admits "
                                 "at once.", registry=r)
        self.model_info = Info("model", "The loaded model.", registry=r)

    def reject(self, reason: str, images: int) -> None:
        """Count ``images`` refused for ``reason`` (``queue_full``, ``timeout``, ``disconnected``)."""
        self.rejected.labels(**self.model_labels, reason=reason).inc(images)


def serve_metrics(registry: CollectorRegistry, host: str, port: int) -> WSGIServer:
    """Serve ``registry`` in the Prometheus text format on ``host``:``port`` (0: a free port) from a
    daemon thread (prometheus-client's ``start_http_server``: any path, ``/metrics`` included; it
    writes no access log). Runs apart from the event loop, so a scrape still answers while the loop
    is busy. Returns the server (``server_address`` holds the bound port; ``shutdown()`` stops it).
    Raises ``OSError`` when the port cannot be bound."""
    server, _ = start_http_server(port, addr=host, registry=registry)
    logger.info("metrics on http://%s:%d/metrics", host, server.server_address[1])
    return server
