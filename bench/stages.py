"""Per-stage cost of the service under the benchmark's load, from its own Prometheus histograms.

``GET /metrics`` (the service's metrics port) after the levels; each histogram's ``_sum`` /
``_count`` over the whole run (warm-up included): decode + resize + crop per image
(``image_preprocess_duration_seconds``, decode threads), queue wait per image, forward pass per image
(``inference_duration_seconds`` sum over the images it answered: ``inference_batch_size`` sum), mean
batch size, postprocess per request.
"""

from __future__ import annotations

import re
import urllib.request

#: name in the result -> (histogram, divisor histogram or None for its own count, scale)
STAGES = {
    "decode_preprocess_ms_per_image": ("image_preprocess_duration_seconds", None, 1000.0),
    "queue_wait_ms_per_image": ("inference_queue_wait_seconds", None, 1000.0),
    "forward_ms_per_image": ("inference_duration_seconds", "inference_batch_size", 1000.0),
    "forward_ms_per_pass": ("inference_duration_seconds", None, 1000.0),
    "mean_batch_size": ("inference_batch_size", None, 1.0),
    "postprocess_ms_per_request": ("postprocess_duration_seconds", None, 1000.0),
}


def parse(text: str) -> dict[str, float]:
    """Per-stage means (see ``STAGES``) from a Prometheus text exposition; a stage with no samples is
    left out."""
    def value(name: str) -> float:
        match = re.search(rf"(?m)^{re.escape(name)}(?:{{[^}}]*}})? (\S+)", text)
        return float(match.group(1)) if match else 0.0

    result = {}
    for key, (histogram, divisor, scale) in STAGES.items():
        total = value(f"{histogram}_sum")
        count = value(f"{divisor}_sum") if divisor else value(f"{histogram}_count")
        if count > 0:
            result[key] = round(total / count * scale, 2)
    return result


def scrape(metrics_url: str, timeout_s: float = 10.0) -> dict[str, float]:
    """``parse`` of the service's ``/metrics`` at ``metrics_url`` (a loopback URL)."""
    with urllib.request.urlopen(metrics_url, timeout=timeout_s) as response:
        return parse(response.read().decode())
