"""Open Inference Protocol (KServe V2) REST endpoints; errors are ``{"error": "..."}``.

Inputs (send exactly one, any name): ``image`` BYTES ``[N]``/``[N, 1]`` encoded images (base64 strings
in JSON, raw bytes with the binary extension) or ``input`` FP32 ``[N, 3, H, W]`` preprocessed.
Output: ``probabilities`` FP32 ``[N, C]``, or BYTES ``[N, k]`` with ``parameters.classification = k``.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from service import __version__
from service.deps import API_KEY_REQUIRED, EngineDep
from service.disconnect import unless_disconnected
from service.errors import BadRequest, NotFound, NotReady
from service.inference import InferenceEngine
from service.routes.health import check_ready
from service.v2_protocol import (
    IMAGE_INPUT,
    OUTPUT_NAME,
    InferRequest,
    OutputSpec,
    build_outputs,
    decode_request,
)

router = APIRouter(prefix="/v2", tags=["Open Inference Protocol (V2)"])
EXTENSIONS = ["classification", "binary_tensor_data"]


class V2Error(BaseModel):
    """Open Inference Protocol error body."""

    error: str = Field(description="What was wrong.")


_NOT_FOUND = {404: {"model": V2Error, "description": "Unknown model or version."}}
_NOT_READY = {503: {"model": V2Error, "description": "Not ready (loading, or shutting down)."}}


@router.get("", summary="Server metadata")
async def server_metadata() -> dict[str, Any]:
    """Server name, version and the protocol extensions offered."""
    return {"name": "aks-image-classifier", "version": __version__, "extensions": EXTENSIONS}


@router.get("/health/live", summary="Server live")
async def live() -> dict[str, bool]:
    """200 while the server answers."""
    return {"live": True}


@router.get("/health/ready", summary="Server ready", responses=_NOT_READY)
async def ready(engine: EngineDep) -> dict[str, bool]:
    """200 when the model is loaded and warmed, else 503 (also while shutting down)."""
    check_ready(engine)
    return {"ready": True}


def _model(name: str, version: str | None, engine: InferenceEngine) -> InferenceEngine:
    classifier = engine.classifier
    if name != classifier.name:
        raise NotFound(f"unknown model {name!r}; this server has {classifier.name!r}")
    if version is not None and version != classifier.version:
        raise NotFound(f"unknown version {version!r} of model {name!r}; available: {classifier.version!r}")
    return engine


@router.get("/models/{name}", summary="Model metadata", responses=_NOT_FOUND)
@router.get("/models/{name}/versions/{version}", summary="Model metadata (version)", responses=_NOT_FOUND)
async def model_metadata(name: str, engine: EngineDep, version: str | None = None) -> dict[str, Any]:
    """Inputs and outputs with ``-1`` for the batch dimension; 404 for an unknown model or version.

    ``inputs`` are "the inputs required by the model" (Open Inference Protocol): one, ``image`` (BYTES
    ``[-1]``, encoded images), which is what a generic client sends. The FP32 ``[N, 3, H, W]`` input
    the infer route also takes instead (already preprocessed) is an alternative, not a second required
    input, so it is not listed (docs/service.md)."""
    c = _model(name, version, engine).classifier
    return {
        "name": c.name, "versions": [c.version], "platform": c.platform,
        "inputs": [{"name": IMAGE_INPUT, "datatype": "BYTES", "shape": [-1]}],
        "outputs": [{"name": OUTPUT_NAME, "datatype": "FP32",
                     "shape": [-1, c.num_classes if c.ready else -1]}],
    }


@router.get("/models/{name}/ready", summary="Model ready", responses=_NOT_FOUND | _NOT_READY)
@router.get("/models/{name}/versions/{version}/ready", summary="Model ready (version)",
            responses=_NOT_FOUND | _NOT_READY)
async def model_ready(name: str, engine: EngineDep, version: str | None = None) -> dict[str, Any]:
    """200 when this model is ready, 503 when not yet, 404 when unknown."""
    _model(name, version, engine)
    if not engine.ready or engine.failure is not None:
        raise NotReady(f"model {name!r} is not ready" + (f": {engine.failure}" if engine.failure else ""))
    return {"name": name, "ready": True}


_INFER_BODY = {"required": True, "content": {
    "application/json": {"schema": {"$ref": "#/components/schemas/InferRequest"}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary",
                                            "description": "Binary tensor extension: JSON header of "
                                            "Inference-Header-Content-Length bytes, then tensors."}}}}


_INFER_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": V2Error, "description": text} for code, text in {
        400: "Malformed request, tensor or image.",
        401: "API_KEY is set and the request has no or a wrong `Authorization: Bearer` key.",
        404: "Unknown model or version.", 413: "Body over MAX_BODY_BYTES or image over MAX_IMAGE_PIXELS.",
        415: "An image in an unsupported format.", 503: "Model not ready, or queue full (Retry-After).",
        504: "Past REQUEST_TIMEOUT_MS."}.items()}


@router.post("/models/{name}/infer", summary="Inference", openapi_extra={"requestBody": _INFER_BODY},
             dependencies=API_KEY_REQUIRED, responses=_INFER_ERRORS)
@router.post("/models/{name}/versions/{version}/infer", summary="Inference (version)",
             openapi_extra={"requestBody": _INFER_BODY}, dependencies=API_KEY_REQUIRED,
             responses=_INFER_ERRORS)
async def infer(request: Request, name: str, engine: EngineDep, version: str | None = None) -> Response:
    """Run a batch: BYTES images or FP32 ``[N, 3, H, W]`` (already normalised) in, probabilities or
    top-k strings out."""
    c = _model(name, version, engine).classifier
    if not engine.ready:
        raise NotReady(f"model {name!r} is not ready")
    body = await request.body()
    infer_request, specs, data = await run_in_threadpool(
        decode_request, body, request.headers.get("inference-header-content-length"), c.crop_size)
    _check_batch(len(data), engine)
    if isinstance(data, list):  # encoded images
        work = engine.probabilities(data)
    else:
        work = engine.probabilities_of_tensors(torch.from_numpy(data.copy()))
    rows = await unless_disconnected(request, work)
    with engine.metrics.postprocess_seconds.time():  # JSON of N x C floats: off the event loop too
        return await run_in_threadpool(_response, infer_request, c.name, c.version,
                                       torch.stack(rows).numpy(), c.labels, specs)


def _check_batch(n: int, engine: InferenceEngine) -> None:
    if n < 1:
        raise BadRequest("the batch is empty")
    if n > engine.settings.max_queue:
        raise BadRequest(f"batch of {n} is larger than the queue (MAX_QUEUE={engine.settings.max_queue})")


def _response(request: InferRequest, name: str, version: str, probabilities: np.ndarray, labels: list[str],
              specs: list[OutputSpec]) -> Response:
    """Probabilities ``[N, C]`` -> the infer response (JSON, or JSON header + binary outputs)."""
    outputs, tail = build_outputs(probabilities, labels, specs)
    body: dict[str, Any] = {"model_name": name, "model_version": version}
    if request.id is not None:
        body["id"] = request.id
    body["outputs"] = outputs
    if not tail:
        return JSONResponse(body)
    header = json.dumps(body, separators=(",", ":")).encode()
    return Response(header + tail, media_type="application/octet-stream",
                    headers={"Inference-Header-Content-Length": str(len(header))})


def register_openapi_schemas(app: FastAPI) -> None:
    """Add ``InferRequest`` (and its nested models) to ``/openapi.json`` components for the infer body."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        model = InferRequest.model_json_schema(ref_template="#/components/schemas/{model}")
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(model.pop("$defs", {}))
        components["InferRequest"] = model
        app.openapi_schema = schema
        return schema

    app.openapi = openapi
