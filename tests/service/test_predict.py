"""POST /predict through the app: uploads, top-k, every bad input (the server keeps serving after each),
body limits while streaming, and concurrent requests sharing batches."""

from __future__ import annotations

import http.client
import io
import json
import socket
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from service.app import create_app
from tests.service.conftest import encode
from tests.service.tiny import LABELS, TinyClassifier, solid, tiny_settings


def _ok(client, jpeg) -> dict:
    """The server still serves a good image (after any bad request)."""
    response = client.post("/predict", files={"file": ("cat.jpg", jpeg, "image/jpeg")})
    assert response.status_code == 200, response.text
    return response.json()


def test_multipart_upload_returns_top5(client, jpeg, eager_model):
    body = _ok(client, jpeg)
    assert body["model"] == "small" and body["version"] == "7"
    predictions = body["predictions"]
    assert len(predictions) == 5
    scores = [p["score"] for p in predictions]
    assert scores == sorted(scores, reverse=True) and 0 < scores[0] <= 1
    assert all(p["label"] == f"class_{p['index']:03d}" for p in predictions)
    # Same answer as the eager model on the same preprocessing (softmax probabilities).
    classifier = client.app.state.engine.classifier
    tensor = classifier.preprocessor(Image.open(io.BytesIO(jpeg)).convert("RGB"))
    with torch.inference_mode():
        expected = torch.softmax(eager_model(tensor[None]), 1)[0].topk(5)
    assert [p["index"] for p in predictions] == expected.indices.tolist()
    np.testing.assert_allclose(scores, expected.values.tolist(), rtol=1e-3)


def test_raw_body_and_top_k(client, photos):
    png = encode(photos["coffee"], "PNG")
    response = client.post("/predict?top_k=3", content=png, headers={"Content-Type": "image/png"})
    assert response.status_code == 200
    assert len(response.json()["predictions"]) == 3
    response = client.post("/predict?top_k=1000", content=png, headers={"Content-Type": "image/png"})
    assert len(response.json()["predictions"]) == 1000
    assert abs(sum(p["score"] for p in response.json()["predictions"]) - 1) < 1e-3


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP"])
def test_every_format_is_accepted(client, photos, fmt):
    data = encode(photos["astronaut"], fmt)
    response = client.post("/predict", files={"file": (f"a.{fmt.lower()}", data, f"image/{fmt.lower()}")})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("kwargs", "status", "detail"),
    [
        ({"content": b"just text", "headers": {"Content-Type": "image/jpeg"}}, 415, "not a supported image"),
        ({"content": b"{}", "headers": {"Content-Type": "application/json"}}, 415, "Content-Type"),
        ({"content": b"", "headers": {"Content-Type": "image/png"}}, 400, "empty"),
        ({"files": {"other": ("x.jpg", b"abc", "image/jpeg")}}, 400, "'file'"),
        ({"files": {"file": ("x.jpg", b"", "image/jpeg")}}, 400, "empty"),
        ({"content": b"--x\r\nbroken", "headers": {"Content-Type": "multipart/form-data; boundary=x"}}, 400,
         None),
    ],
    ids=["not-an-image", "json", "empty-raw", "no-file-field", "empty-file", "broken-multipart"],
)
def test_bad_input_is_a_json_4xx_and_the_server_keeps_serving(client, jpeg, kwargs, status, detail):
    response = client.post("/predict", **kwargs)
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"error", "detail"}
    if detail:
        assert detail in body["detail"]
    _ok(client, jpeg)


def test_corrupt_image_is_400(client, jpeg):
    response = client.post("/predict", content=jpeg[:2000], headers={"Content-Type": "image/jpeg"})
    assert response.status_code == 400
    assert "truncated" in response.json()["detail"]
    _ok(client, jpeg)


@pytest.mark.parametrize("query", ["top_k=0", "top_k=1001", "top_k=-3", "top_k=abc"])
def test_bad_top_k_is_422(client, jpeg, query):
    response = client.post(f"/predict?{query}", content=jpeg, headers={"Content-Type": "image/jpeg"})
    assert response.status_code == 422
    assert response.json()["error"] in ("validation_error", "invalid_parameter")
    _ok(client, jpeg)


def test_decompression_bomb_is_413(client, jpeg):
    bomb = encode(Image.new("L", (10_000, 10_000)), "PNG")  # 100 Mpx in ~100 KiB; limit is 4 Mpx
    response = client.post("/predict", files={"file": ("bomb.png", bomb, "image/png")})
    assert response.status_code == 413
    assert "MAX_IMAGE_PIXELS" in response.json()["detail"]
    _ok(client, jpeg)


def test_body_over_the_limit_by_content_length_is_413(client, jpeg):
    big = b"\xff" * 4_100_000  # limit 4_000_000
    response = client.post("/predict", content=big, headers={"Content-Type": "image/jpeg"})
    assert response.status_code == 413
    assert "MAX_BODY_BYTES" in response.json()["detail"]
    response = client.post("/predict", files={"file": ("big.jpg", big, "image/jpeg")})
    assert response.status_code == 413
    _ok(client, jpeg)


def test_chunked_body_over_the_limit_is_413(client, jpeg):
    def chunks():
        for _ in range(70):  # 70 x 64 KiB = 4.6 MB, no Content-Length
            yield b"\0" * 65536

    response = client.post("/predict", content=chunks(), headers={"Content-Type": "image/jpeg"})
    assert response.status_code == 413
    _ok(client, jpeg)


def test_real_server_counts_a_chunked_body_while_it_streams(live_server):
    # Send 4.6 MB of an unterminated chunked body: the 413 must come before the body ends.
    chunk = b"%x\r\n%s\r\n" % (65536, b"\0" * 65536)
    with socket.create_connection(("127.0.0.1", live_server.port), timeout=10) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        for _ in range(70):
            sock.sendall(chunk)
        head = sock.recv(65536).decode(errors="replace")
    assert head.startswith("HTTP/1.1 413"), head


def test_real_server_answers_413_without_reading_the_body(live_server):
    # Declare 1 GB, send nothing: the answer must come from the Content-Length alone.
    with socket.create_connection(("127.0.0.1", live_server.port), timeout=10) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                     b"Content-Length: 1000000000\r\n\r\n")
        head = sock.recv(65536).decode(errors="replace")
    assert head.startswith("HTTP/1.1 413"), head
    assert "MAX_BODY_BYTES" in head


def test_concurrent_requests_are_batched_and_a_bad_image_fails_alone(live_server, photos, jpeg):
    registry = live_server.server.config.app.state.metrics.registry

    def metrics(name: str) -> float | None:
        return registry.get_sample_value(name, {"model": "small", "version": "7"})
    before = (metrics("inference_batch_size_sum") or 0, metrics("inference_batch_size_count") or 0)
    images = [encode(photos[name], "JPEG") for name in ("chelsea", "coffee", "astronaut", "rocket")] * 4
    bodies = [*images[:7], b"garbage, not an image", *images[7:]]

    def post(body: bytes) -> tuple[int, dict]:
        conn = http.client.HTTPConnection("127.0.0.1", live_server.port, timeout=60)
        conn.request("POST", "/predict?top_k=1", body=body, headers={"Content-Type": "image/jpeg"})
        response = conn.getresponse()
        return response.status, json.loads(response.read())

    with ThreadPoolExecutor(len(bodies)) as pool:
        results = list(pool.map(post, bodies))
    assert [status for status, _ in results] == [200] * 7 + [415] + [200] * 9
    # Each caller got the result for its own image: the same scores as that image sent alone.
    alone = {body: post(body)[1]["predictions"][0] for body in set(images)}
    assert len({round(p["score"], 6) for p in alone.values()}) == 4  # the photos are distinguishable
    for body, (status, result) in zip(bodies, results, strict=True):
        if status == 200:
            assert result["predictions"][0]["index"] == alone[body]["index"]
            assert result["predictions"][0]["score"] == pytest.approx(alone[body]["score"], rel=1e-4)
    images_run = metrics("inference_batch_size_sum") - before[0] - 4
    passes = metrics("inference_batch_size_count") - before[1] - 4
    assert images_run == 16
    assert passes < images_run  # some forward passes carried more than one image


def test_default_top_k_is_every_class_of_a_model_with_fewer_than_five():
    settings = tiny_settings(norm_mean=(0, 0, 0), norm_std=(1, 1, 1))  # logits from raw colour
    buffer = io.BytesIO()
    Image.fromarray(solid((200, 10, 10))).save(buffer, format="PNG")
    with TestClient(create_app(settings, classifier=TinyClassifier(settings))) as client:
        response = client.post("/predict", content=buffer.getvalue(), headers={"Content-Type": "image/png"})
        assert response.status_code == 200, response.text
        predictions = response.json()["predictions"]
        assert predictions[0]["label"] == "red"
        assert len(predictions) == len(LABELS) == 4
        assert client.post("/predict?top_k=5", content=buffer.getvalue(),
                           headers={"Content-Type": "image/png"}).status_code == 422


def test_predict_and_v2_infer_make_no_thread_pool_hop(monkeypatch, jpeg):
    # A plain-def dependency or route runs in AnyIO's thread pool: one more thread to wake per request,
    # next to the model's threads (README "Performance"). Decoding goes to the service's own pool.
    import fastapi.dependencies.utils
    import fastapi.routing

    hops: list[str] = []

    def counting(original):
        async def run_in_threadpool(func, *args, **kwargs):
            hops.append(getattr(func, "__name__", repr(func)))
            return await original(func, *args, **kwargs)
        return run_in_threadpool

    for module in (fastapi.dependencies.utils, fastapi.routing):
        monkeypatch.setattr(module, "run_in_threadpool", counting(module.run_in_threadpool))
    settings = tiny_settings()
    with TestClient(create_app(settings, classifier=TinyClassifier(settings))) as client:
        red = encode(solid((250, 10, 10)), "PNG")
        assert client.post("/predict", content=red, headers={"Content-Type": "image/png"}).status_code == 200
        assert client.post("/predict", files={"file": ("cat.jpg", jpeg, "image/jpeg")}).status_code == 200
        v2 = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3, 32, 32],
                          "data": [0.0] * 3072}]}
        assert client.post("/v2/models/tiny/infer", json=v2).status_code == 200
    assert hops == []
