"""service.logs and the error bodies: request ids, one access-log line per request, JSON or text lines,
generic 500 bodies with the details only in the log, overload summed instead of logged per request,
and a latency histogram per stage of the request path."""

from __future__ import annotations

import json
import logging
import sys

import pytest
import torch

from service.app import create_app
from service.logs import JsonFormatter, RateLimitedLog, TextFormatter, configure_logging
from tests.service.conftest import TestClient, encode, metric, scrape
from tests.service.tiny import TinyClassifier, solid, tiny_settings

RED = encode(solid((250, 10, 10)), "PNG")
PNG = {"Content-Type": "image/png"}
SECRET = "CUDA out of memory at /home/builder/torch/csrc/aten.cpp:42"


class BrokenClassifier(TinyClassifier):
    """Its forward pass raises an exception whose text must never reach a client."""

    def predict(self, batch: torch.Tensor) -> torch.Tensor:
        raise RuntimeError(SECRET)


@pytest.fixture(scope="module")
def client():
    settings = tiny_settings()
    with TestClient(create_app(settings, classifier=TinyClassifier(settings))) as test_client:
        yield test_client


def _access(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "service.access"]


def test_one_access_line_per_request_with_the_request_id_echoed(client, caplog):
    caplog.set_level(logging.INFO)
    response = client.post("/predict?top_k=1", content=RED, headers=PNG | {"X-Request-ID": "abc-123"})
    assert response.status_code == 200
    assert response.headers["X-Request-ID"] == "abc-123"
    [line] = _access(caplog)
    assert (line.method, line.path, line.status, line.request_id) == ("POST", "/predict", 200, "abc-123")
    assert (line.model, line.images, line.batch_size) == ("tiny", 1, 1)
    assert line.duration_ms > 0


@pytest.mark.parametrize("sent", [None, "", "x" * 129, "two words", "new\\nline"])
def test_a_missing_or_unusable_request_id_is_replaced_by_a_generated_one(client, caplog, sent):
    caplog.set_level(logging.INFO)
    response = client.get("/version", headers={"X-Request-ID": sent} if sent is not None else {})
    generated = response.headers["X-Request-ID"]
    assert len(generated) == 32 and generated != sent
    assert [r.request_id for r in _access(caplog)] == [generated]


def test_a_model_failure_is_a_generic_500_with_the_details_only_in_the_log(caplog):
    settings = tiny_settings()
    with TestClient(create_app(settings, classifier=BrokenClassifier(settings))) as broken:
        response = broken.post("/predict?top_k=1", content=RED, headers=PNG | {"X-Request-ID": "r-500"})
        v2 = broken.post("/v2/models/tiny/infer", headers={"X-Request-ID": "r-v2"}, json={"inputs": [
            {"name": "input", "datatype": "FP32", "shape": [1, 3, 32, 32], "data": [0.0] * 3072}]})
    assert response.status_code == 500
    assert response.json() == {"error": "internal_error", "detail": "internal error", "request_id": "r-500"}
    assert response.headers["X-Request-ID"] == "r-500"
    assert v2.status_code == 500 and v2.json() == {"error": "internal error", "request_id": "r-v2"}
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(SECRET in r.getMessage() or SECRET in str(r.exc_info) for r in logged)
    assert any(getattr(r, "request_id", None) == "r-500" or "r-500" in JsonFormatter().format(r)
               for r in logged)


def test_overload_is_summed_into_one_line_per_interval_not_one_per_request(caplog):
    logger = logging.getLogger("test.refusals")
    refusals = RateLimitedLog(logger, "requests refused", interval_s=3600)
    with caplog.at_level(logging.WARNING, logger="test.refusals"):
        for _ in range(500):
            refusals.event("overloaded")
        refusals.event("timeout")
    [line] = caplog.records  # the first event logs at once; the rest wait for the next interval
    assert line.counts == {"overloaded": 1}
    refusals.interval_s = 0
    refusals.event("overloaded")
    assert caplog.records[-1].counts == {"overloaded": 500, "timeout": 1}


def test_json_lines_carry_the_fields_and_text_lines_too():
    record = logging.makeLogRecord({"name": "service.access", "levelname": "INFO", "levelno": 20,
                                    "msg": "GET %s %d", "args": ("/healthz", 200), "status": 200,
                                    "request_id": "r1"})
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "GET /healthz 200" and entry["status"] == 200
    assert entry["request_id"] == "r1" and entry["level"] == "INFO" and entry["time"].endswith("Z")
    text = TextFormatter().format(record)
    assert "INFO service.access: GET /healthz 200" in text and "status=200 request_id=r1" in text


@pytest.mark.parametrize(("fmt", "tty", "formatter"), [("auto", True, TextFormatter),
                                                        ("auto", False, JsonFormatter),
                                                        ("json", True, JsonFormatter),
                                                        ("text", False, TextFormatter)])
def test_log_format_auto_is_text_on_a_terminal_and_json_otherwise(monkeypatch, fmt, tty, formatter):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: tty)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("info", fmt)
        [handler] = root.handlers
        assert type(handler.formatter) is formatter
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])


def test_every_stage_of_the_request_path_has_a_latency_histogram(client):
    assert client.post("/predict?top_k=1", content=RED, headers=PNG).status_code == 200
    text = scrape(client.app)
    for name in ("image_preprocess_duration_seconds", "inference_queue_wait_seconds",
                 "inference_duration_seconds", "postprocess_duration_seconds"):
        assert metric(text, f"{name}_count") >= 1, name


PROBES = ("/healthz", "/readyz", "/v2/health/live", "/v2/health/ready")


def test_probes_are_left_out_of_the_access_log_but_counted(client, caplog):
    """The kubelet polls the probes every few seconds per pod: by default they write no access line
    (requests around them still do), and http_requests_total still counts them."""
    caplog.set_level(logging.INFO)
    before = metric(scrape(client.app), "http_requests_total", route="/readyz")
    for path in PROBES:
        assert client.get(path).status_code == 200
    assert client.get("/version").status_code == 200
    assert [r.path for r in _access(caplog)] == ["/version"]
    assert metric(scrape(client.app), "http_requests_total", route="/readyz") == before + 1


def test_access_log_probes_setting_logs_them(caplog):
    settings = tiny_settings(access_log_probes=True)
    with TestClient(create_app(settings, classifier=TinyClassifier(settings))) as probed:
        caplog.set_level(logging.INFO)
        for path in PROBES:
            probed.get(path)
    assert [r.path for r in _access(caplog)] == list(PROBES)
