"""Prometheus metrics (prometheus-client), one registry per app.

Series (names follow Prometheus conventions: base units, ``_total`` counters):
- ``http_requests_total{method, route, status}``; ``http_request_duration_seconds{method, route}``
  (``route`` is the route template, e.g. ``/v2/models/{name}/infer``, or ``unmatched``);
  (counted and timed by ``service.logs.AccessLogMiddleware``);
- one histogram per stage of the request path, as KServe's ``request_{preprocess,predict,postprocess}_
  seconds``: ``image_preprocess_duration_seconds`` (decode + preprocess of one image, decode thread),
  ``inference_queue_wait_seconds`` (an image ready until its forward pass starts),
  ``inference_duration_seconds`` (one forward pass, collate included),
  ``postprocess_duration_seconds`` (probabilities -> a request's response: top-k, labels);
- ``inference_batch_size`` (images per forward pass), ``inference_rejected_total{reason}``
  (queue_full / timeout);
- ``inference_queue_depth`` (images admitted, neither in nor queued for a forward pass) and
  ``model_ready`` (1 once loaded and warmed), ``request_body_bytes`` (body bytes admitted, in flight) and
  ``request_body_budget_bytes`` (what the memory budget admits at once, ``service.memory``): read at
  scrape time from the running service
  (``Gauge.set_function``), never written by a request handler; ``model_info{name, version, format}``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128, 256)


class Metrics:
    """The service's metric objects, registered in their own ``CollectorRegistry``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("http_requests", "HTTP requests by route and status.",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram("http_request_duration_seconds", "HTTP request latency (s).",
                                 ["method", "route"], buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("inference_batch_size", "Images per forward pass.",
                                    buckets=BATCH_BUCKETS, registry=r)
        self.inference_seconds = Histogram("inference_duration_seconds", "One forward pass (s).",
                                           buckets=LATENCY_BUCKETS, registry=r)
        self.preprocess_seconds = Histogram("image_preprocess_duration_seconds",
                                            "Decode + preprocess of one image (s).",
                                            buckets=LATENCY_BUCKETS, registry=r)
        self.queue_wait_seconds = Histogram("inference_queue_wait_seconds",
                                            "From an image's tensor being ready to its forward pass "
                                            "starting (s).", buckets=LATENCY_BUCKETS, registry=r)
        self.postprocess_seconds = Histogram("postprocess_duration_seconds",
                                             "Probabilities -> one request's response: top-k, labels (s).",
                                             buckets=LATENCY_BUCKETS, registry=r)
        self.queue_depth = Gauge("inference_queue_depth", "Images admitted and neither in nor queued for a "
                                 "forward pass (decoding or waiting for a batch).", registry=r)
        self.rejected = Counter("inference_rejected", "Images refused: queue full or past deadline.",
                                ["reason"], registry=r)
        self.model_ready = Gauge("model_ready", "1 when the model is loaded and warmed.", registry=r)
        self.body_bytes = Gauge("request_body_bytes", "Request body bytes admitted and in flight.",
                                registry=r)
        self.body_budget = Gauge("request_body_budget_bytes", "Request body bytes the memory budget admits "
                                 "at once.", registry=r)
        self.model_info = Info("model", "The loaded model.", registry=r)
