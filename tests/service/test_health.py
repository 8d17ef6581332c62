"""Probes, /version, /metrics, the OpenAPI document and the container health check."""

from __future__ import annotations

import subprocess
import sys

import pytest
from prometheus_client.parser import text_string_to_metric_families

from service.app import create_app
from service.errors import ModelLoadError
from service.settings import Settings
from tests.service.conftest import TestClient, scrape


def test_healthz_and_readyz_when_loaded(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "model": "small", "version": "7"}


def test_not_ready_before_the_model_is_loaded(app_settings, jpeg):
    unstarted = TestClient(create_app(app_settings))  # no `with`: the lifespan (model load) never runs
    assert unstarted.get("/healthz").status_code == 200
    response = unstarted.get("/readyz")
    assert response.status_code == 503
    assert response.json()["error"] == "not_ready"
    assert unstarted.get("/v2/health/ready").status_code == 503
    assert unstarted.get("/v2/models/small/ready").status_code == 503
    assert unstarted.get("/v2/health/live").status_code == 200
    response = unstarted.post("/predict", content=jpeg, headers={"Content-Type": "image/jpeg"})
    assert response.status_code == 503


def test_readyz_turns_503_at_shutdown(app_settings):
    app = create_app(app_settings)
    with TestClient(app) as started:
        assert started.get("/readyz").status_code == 200
    assert not app.state.engine.ready
    assert TestClient(app).get("/readyz").status_code == 503


def test_version(client):
    body = client.get("/version").json()
    assert body["model"] == "small" and body["version"] == "7"
    assert body["format"] == "torchscript" and body["num_classes"] == 1000
    assert body["input_shape"] == [-1, 3, 224, 224]
    assert body["torch"].startswith("2.")


def test_metrics_count_requests_by_route_and_status(client, jpeg):
    client.post("/predict", content=jpeg, headers={"Content-Type": "image/jpeg"})
    client.post("/predict", content=b"nope", headers={"Content-Type": "image/jpeg"})
    client.get("/no/such/page")
    families = {f.name: f for f in text_string_to_metric_families(scrape(client.app))}
    requests = {(s.labels["route"], s.labels["status"]): s.value for s in families["http_requests"].samples
                if s.name == "http_requests_total"}
    assert requests[("/predict", "200")] >= 1
    assert requests[("/predict", "415")] >= 1
    assert requests[("unmatched", "404")] >= 1
    for name in ("http_request_duration_seconds", "inference_batch_size", "inference_duration_seconds",
                 "image_preprocess_duration_seconds", "inference_queue_depth", "model_ready"):
        assert name in families, name
    batch_count = [s.value for s in families["inference_batch_size"].samples if s.name.endswith("_count")]
    assert batch_count[0] >= 1
    ready = [(s.labels, s.value) for s in families["model_ready"].samples]
    assert ready == [({"model": "small", "version": "7"}, 1.0)]


def test_metrics_are_not_on_the_api_port(client):
    """The API port (the one the Service and Ingress expose) has no /metrics: METRICS_PORT serves them."""
    assert client.get("/metrics").status_code == 404
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]


def test_openapi_documents_the_routes(client):
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in ("/predict", "/healthz", "/readyz", "/version", "/v2", "/v2/health/live",
                 "/v2/health/ready", "/v2/models/{name}", "/v2/models/{name}/infer",
                 "/v2/models/{name}/versions/{version}/infer"):
        assert path in paths, path
    predict = paths["/predict"]["post"]
    assert {"multipart/form-data", "image/*"} <= set(predict["requestBody"]["content"])
    assert predict["parameters"][0]["name"] == "top_k"
    infer_body = paths["/v2/models/{name}/infer"]["post"]["requestBody"]["content"]["application/json"]
    ref = infer_body["schema"]["$ref"].rsplit("/", 1)[-1]
    assert ref in spec["components"]["schemas"]
    assert "RequestInput" in spec["components"]["schemas"]
    assert client.get("/docs").status_code == 200


def test_unknown_route_is_json_404(client):
    response = client.get("/nothing-here")
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "detail": "Not Found"}
    response = client.get("/v2/nothing")
    assert response.status_code == 404
    assert response.json() == {"error": "Not Found"}


def test_container_healthcheck_module(live_server):
    command = [sys.executable, "-m", "service.healthcheck"]
    ok = subprocess.run(command, env={"PORT": str(live_server.port)}, capture_output=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    closed = subprocess.run(command, env={"PORT": "1"}, capture_output=True, text=True, timeout=60)
    assert closed.returncode == 1
    assert "unhealthy" in closed.stderr


def test_creating_the_app_loads_nothing_the_lifespan_does(tmp_path):
    app = create_app(Settings(model_path=tmp_path / "missing.pt"))  # no error yet: nothing is loaded
    assert TestClient(app).get("/readyz").status_code == 503
    with pytest.raises(ModelLoadError, match="no such file"), TestClient(app):
        pass
    assert isinstance(app.state.startup_error, ModelLoadError)
