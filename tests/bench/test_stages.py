"""bench.stages: per-stage means from the service's own Prometheus histograms."""

from __future__ import annotations

from prometheus_client import generate_latest

from bench import stages
from service.metrics import Metrics


def test_per_stage_means_come_from_the_service_histograms() -> None:
    metrics = Metrics()
    for _ in range(4):
        metrics.preprocess_seconds.observe(0.002)  # 2 ms per image
    metrics.batch_size.observe(3)
    metrics.batch_size.observe(1)
    metrics.inference_seconds.observe(0.030)
    metrics.inference_seconds.observe(0.010)  # 40 ms over 4 images
    text = generate_latest(metrics.registry).decode()
    result = stages.parse(text)
    assert result["decode_preprocess_ms_per_image"] == 2.0
    assert result["forward_ms_per_image"] == 10.0 and result["forward_ms_per_pass"] == 20.0
    assert result["mean_batch_size"] == 2.0
    assert "postprocess_ms_per_request" not in result  # no samples: left out
