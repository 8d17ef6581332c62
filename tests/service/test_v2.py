"""Open Inference Protocol (KServe V2): JSON over the app, then tritonclient.http against a real server."""

from __future__ import annotations

import base64
import json
import threading

import httpx
import numpy as np
import pytest
import torch
import tritonclient.http as httpclient
from PIL import Image
from tritonclient.utils import InferenceServerException

from service.app import create_app
from tests.service.conftest import ServerThread, encode
from tests.service.tiny import TinyClassifier, tiny_settings

INFER = "/v2/models/small/infer"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _predict_top(client, data: bytes, k: int) -> list[dict]:
    response = client.post(f"/predict?top_k={k}", content=data, headers={"Content-Type": "image/jpeg"})
    return response.json()["predictions"]


def test_server_metadata_and_health(client):
    body = client.get("/v2").json()
    assert body["name"] == "aks-image-classifier"
    assert {"classification", "binary_tensor_data"} <= set(body["extensions"])
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").status_code == 200
    assert client.get("/v2/models/small/ready").status_code == 200
    assert client.get("/v2/models/small/versions/7/ready").status_code == 200


def test_model_metadata(client):
    body = client.get("/v2/models/small").json()
    assert body == client.get("/v2/models/small/versions/7").json()
    assert body["name"] == "small" and body["versions"] == ["7"] and body["platform"] == "pytorch_libtorch"
    assert body["inputs"] == [{"name": "image", "datatype": "BYTES", "shape": [-1]}]
    assert body["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 1000]}]


def _element(tensor: dict, jpeg: bytes) -> tuple[list[int], list]:
    """What a generic client puts in a metadata tensor: batch 1 (``-1`` -> 1) of the datatype's kind."""
    shape = [1 if d == -1 else d for d in tensor["shape"]]
    count = int(np.prod(shape))
    return shape, ([_b64(jpeg)] * count if tensor["datatype"] == "BYTES" else [0.0] * count)


def test_a_generic_client_built_from_the_metadata_gets_an_answer(client, jpeg):
    """The Open Inference Protocol's model metadata lists "the inputs required by the model": a generic
    client (KServe's, Triton's) sends each listed input, so the list must be one the infer route takes
    as a whole request."""
    metadata = client.get("/v2/models/small").json()
    inputs = []
    for tensor in metadata["inputs"]:
        shape, data = _element(tensor, jpeg)
        inputs.append({"name": tensor["name"], "datatype": tensor["datatype"], "shape": shape, "data": data})
    response = client.post(INFER, json={"inputs": inputs})
    assert response.status_code == 200, response.json()
    [output] = response.json()["outputs"]
    assert output["name"] == metadata["outputs"][0]["name"] and output["shape"] == [1, 1000]


@pytest.mark.parametrize("path", ["/v2/models/other", "/v2/models/other/ready", "/v2/models/small/versions/8",
                                  "/v2/models/small/versions/8/ready"])
def test_unknown_model_or_version_is_404(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert set(response.json()) == {"error"}


def test_unknown_model_infer_is_404(client, jpeg):
    body = {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [_b64(jpeg)]}]}
    response = client.post("/v2/models/other/infer", json=body)
    assert response.status_code == 404
    assert "unknown model 'other'" in response.json()["error"]


def test_bytes_input_json_gives_probabilities(client, photos):
    images = [encode(photos[n], "JPEG") for n in ("chelsea", "coffee")]
    body = {"id": "req-42", "inputs": [{"name": "image", "shape": [2, 1], "datatype": "BYTES",
                                        "data": [[_b64(i)] for i in images]}]}
    response = client.post(INFER, json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["id"] == "req-42"
    assert result["model_name"] == "small" and result["model_version"] == "7"
    [output] = result["outputs"]
    assert output["name"] == "probabilities" and output["datatype"] == "FP32" and output["shape"] == [2, 1000]
    probabilities = np.asarray(output["data"]).reshape(2, 1000)
    np.testing.assert_allclose(probabilities.sum(1), 1, rtol=1e-4)
    for row, image in zip(probabilities, images, strict=True):
        top = _predict_top(client, image, 1)[0]
        assert int(row.argmax()) == top["index"]
        assert row.max() == pytest.approx(top["score"], rel=1e-4)


def test_classification_extension_json(client, jpeg):
    body = {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [_b64(jpeg)]}],
            "outputs": [{"name": "probabilities", "parameters": {"classification": 3}}]}
    [output] = client.post("/v2/models/small/versions/7/infer", json=body).json()["outputs"]
    assert output["datatype"] == "BYTES" and output["shape"] == [1, 3]
    expected = _predict_top(client, jpeg, 3)
    for text, want in zip(output["data"], expected, strict=True):
        score, index, label = text.split(":", 2)
        assert (int(index), label) == (want["index"], want["label"])
        assert float(score) == pytest.approx(want["score"], abs=1e-6)


def test_fp32_input_matches_the_image_path(client, jpeg):
    classifier = client.app.state.engine.classifier
    import io

    tensor = classifier.preprocessor(Image.open(io.BytesIO(jpeg)).convert("RGB"))[None]
    body = {"inputs": [{"name": "input", "shape": [1, 3, 224, 224], "datatype": "FP32",
                        "data": tensor.flatten().tolist()}]}
    response = client.post(INFER, json=body)
    assert response.status_code == 200, response.text
    probabilities = np.asarray(response.json()["outputs"][0]["data"])
    top = _predict_top(client, jpeg, 1)[0]
    assert int(probabilities.argmax()) == top["index"]
    with torch.inference_mode():
        expected = classifier.predict(tensor)[0].numpy()
    np.testing.assert_allclose(probabilities, expected, rtol=1e-4, atol=1e-6)


def _input(**overrides) -> dict:
    tensor = {"name": "image", "shape": [1], "datatype": "BYTES", "data": ["aGVsbG8="]}
    return tensor | overrides


MALFORMED = {
    "not-json": b"{not json",
    "empty": b"",
    "no-inputs": {"inputs": []},
    "inputs-not-list": {"inputs": "x"},
    "two-inputs": {"inputs": [_input(), _input(name="b")]},
    "bad-datatype": {"inputs": [_input(datatype="INT64", data=[1])]},
    "shape-vs-data": {"inputs": [_input(shape=[2])]},
    "bytes-shape-2d": {"inputs": [_input(shape=[1, 2], data=["aGk=", "aGk="])]},
    "negative-shape": {"inputs": [_input(shape=[-1])]},
    "not-base64": {"inputs": [_input(data=["***"])]},
    "data-not-list": {"inputs": [_input(data="aGk=")]},
    "fp32-wrong-shape": {"inputs": [{"name": "input", "shape": [1, 3, 100, 100], "datatype": "FP32",
                                     "data": [0.0] * 30000}]},
    "fp32-short-data": {"inputs": [{"name": "input", "shape": [1, 3, 224, 224], "datatype": "FP32",
                                    "data": [0.0] * 10}]},
    "fp32-strings": {"inputs": [{"name": "input", "shape": [1, 3, 224, 224], "datatype": "FP32",
                                 "data": ["x"] * 150528}]},
    "unknown-output": {"inputs": [_input()], "outputs": [{"name": "logits"}]},
    "classification-zero": {"inputs": [_input()],
                            "outputs": [{"name": "probabilities", "parameters": {"classification": 0}}]},
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_requests_are_400_and_the_server_keeps_serving(client, jpeg, body):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = client.post(INFER, content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert set(response.json()) == {"error"} and response.json()["error"]
    good = {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [_b64(jpeg)]}]}
    assert client.post(INFER, json=good).status_code == 200


def test_binary_extension_size_errors_are_400(client):
    header = json.dumps({"inputs": [_input(data=None, parameters={"binary_data_size": 100})]}).encode()
    for length, tail in ((len(header), b"short"), ("abc", b""), (len(header) + 999, b"")):
        response = client.post(INFER, content=header + tail,
                               headers={"Inference-Header-Content-Length": str(length)})
        assert response.status_code == 400, response.text
        assert "error" in response.json()


def test_a_bad_image_in_v2_is_a_json_error(client):
    body = {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [_b64(b"not an image")]}]}
    response = client.post(INFER, json=body)
    assert response.status_code == 415
    assert set(response.json()) == {"error"}


# --- tritonclient.http against a real uvicorn server ------------------------------------------------


@pytest.fixture(scope="module")
def triton(live_server):
    client = httpclient.InferenceServerClient(url=f"127.0.0.1:{live_server.port}", network_timeout=60)
    yield client
    client.close()


def test_tritonclient_health_and_metadata(triton):
    assert triton.is_server_live()
    assert triton.is_server_ready()
    assert triton.is_model_ready("small")
    assert not triton.is_model_ready("other")
    assert "classification" in triton.get_server_metadata()["extensions"]
    metadata = triton.get_model_metadata("small")
    assert metadata["outputs"][0]["shape"] == [-1, 1000]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_tritonclient_classification(triton, live_server, photos, binary):
    images = [encode(photos[n], "JPEG") for n in ("astronaut", "coffee")]
    elements = images if binary else [base64.b64encode(i) for i in images]  # JSON BYTES are base64 text
    tensor = httpclient.InferInput("image", [2, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[e] for e in elements], dtype=object), binary_data=binary)
    output = httpclient.InferRequestedOutput("probabilities", binary_data=binary, class_count=5)
    result = triton.infer("small", [tensor], outputs=[output], request_id="abc")
    assert result.get_response()["id"] == "abc"
    top = result.as_numpy("probabilities")
    assert top.shape == (2, 5)
    for row, image in zip(top, images, strict=True):
        entries = [(e.decode() if isinstance(e, bytes) else e).split(":", 2) for e in row]
        scores = [float(s) for s, _, _ in entries]
        assert scores == sorted(scores, reverse=True)
        assert all(label == f"class_{int(index):03d}" for _, index, label in entries)
        reference = _live_predict(live_server, image)
        assert int(entries[0][1]) == reference["index"]


def test_tritonclient_single_jpeg_as_in_the_docs(triton, jpeg):
    tensor = httpclient.InferInput("image", [1, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[jpeg]], dtype=object))
    result = triton.infer("small", [tensor], outputs=[httpclient.InferRequestedOutput("probabilities",
                                                                                      class_count=3)])
    [[first, *_]] = result.as_numpy("probabilities")
    assert first.decode().count(":") >= 2


def test_tritonclient_fp32_input_and_default_outputs(triton, client, jpeg):
    import io

    classifier = client.app.state.engine.classifier
    batch = torch.stack([classifier.preprocessor(Image.open(io.BytesIO(jpeg)).convert("RGB"))] * 3).numpy()
    tensor = httpclient.InferInput("input", list(batch.shape), "FP32")
    tensor.set_data_from_numpy(batch)
    result = triton.infer("small", [tensor])  # no outputs listed: all outputs, binary
    probabilities = result.as_numpy("probabilities")
    assert probabilities.dtype == np.float32 and probabilities.shape == (3, 1000)
    np.testing.assert_allclose(probabilities.sum(1), 1, rtol=1e-4)
    np.testing.assert_allclose(probabilities[0], probabilities[2], rtol=1e-5)


def test_tritonclient_errors(triton, jpeg):
    tensor = httpclient.InferInput("image", [1, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[jpeg]], dtype=object))
    with pytest.raises(InferenceServerException, match="unknown model") as info:
        triton.infer("other", [tensor])
    assert info.value.status() == "404"
    bad = httpclient.InferInput("image", [1, 1], "BYTES")
    bad.set_data_from_numpy(np.array([[b"nope"]], dtype=object))
    with pytest.raises(InferenceServerException, match="not a supported image"):
        triton.infer("small", [bad])
    assert triton.infer("small", [tensor]).as_numpy("probabilities").shape == (1, 1000)


def _live_predict(server, image: bytes) -> dict:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    conn.request("POST", "/predict?top_k=1", body=image, headers={"Content-Type": "image/jpeg"})
    return json.loads(conn.getresponse().read())["predictions"][0]


def test_json_tensors_are_parsed_off_the_event_loop(monkeypatch):
    """While one request's JSON tensor is being parsed (held here), the event loop answers others: a
    big JSON body (MAX_BODY_BYTES of nested lists) no longer stalls every connection of the pod."""
    from service import v2_protocol
    from service.routes import v2 as v2_routes

    entered, release = threading.Event(), threading.Event()
    real = v2_protocol.parse_request

    def held(*args):
        entered.set()
        assert release.wait(30)
        return real(*args)

    monkeypatch.setattr(v2_protocol, "parse_request", held)
    monkeypatch.setattr(v2_routes, "parse_request", held, raising=False)  # where older code called it
    settings = tiny_settings()
    with ServerThread(create_app(settings, classifier=TinyClassifier(settings))) as server:
        answers: list[httpx.Response] = []
        body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3, 32, 32],
                            "data": [[[[0.5] * 32] * 32] * 3]}]}
        request = threading.Thread(target=lambda: answers.append(
            httpx.post(server.url + "/v2/models/tiny/infer", json=body, timeout=60)))
        request.start()
        try:
            assert entered.wait(10)
            assert httpx.get(server.url + "/healthz", timeout=5).status_code == 200
        finally:
            release.set()
            request.join(30)
        assert answers[0].status_code == 200
        assert answers[0].json()["outputs"][0]["shape"] == [1, 4]
