"""``POST /predict``: one image (multipart field ``file`` or raw ``image/*`` body) -> top-k labels."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile

from service.deps import API_KEY_REQUIRED, EngineDep
from service.disconnect import unless_disconnected
from service.errors import BadRequest, InvalidParameter, NotReady, UnsupportedMediaType

router = APIRouter(tags=["predict"])

RAW_TYPES = ("image/", "application/octet-stream")


class PredictionOut(BaseModel):
    """One class: its label, index in the model's output and softmax probability."""

    label: str
    index: int = Field(ge=0)
    score: float = Field(ge=0, le=1, description="Softmax probability.")


class PredictResponse(BaseModel):
    """Top-k predictions, score descending."""

    model: str
    version: str
    predictions: list[PredictionOut]


class ErrorOut(BaseModel):
    """Error body of the non-V2 routes."""

    error: str = Field(description="Short machine-readable reason, e.g. payload_too_large.")
    detail: str | list[dict[str, Any]] = Field(
        description="What was wrong: a message, or FastAPI's list of validation errors (422).")


_BODY_SCHEMA = {
    "required": True,
    "content": {
        "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                           "properties": {"file": {"type": "string", "format": "binary"}}}},
        "image/*": {"schema": {"type": "string", "format": "binary"}},
    },
}


#: Classes returned when the request names no ``top_k``.
DEFAULT_TOP_K = 5


@router.post(
    "/predict", response_model=PredictResponse, summary="Classify one image",
    openapi_extra={"requestBody": _BODY_SCHEMA}, dependencies=API_KEY_REQUIRED,
    responses={code: {"model": ErrorOut, "description": text} for code, text in {
        400: "Empty body, corrupt image, or no multipart field `file`.",
        401: "API_KEY is set and the request has no or a wrong `Authorization: Bearer` key.",
        413: "Body over MAX_BODY_BYTES or image over MAX_IMAGE_PIXELS.",
        415: "Not an image in a supported format (JPEG, PNG, WebP, GIF, BMP).",
        422: "Invalid query parameter, e.g. top_k outside 1..number of classes.",
        503: "Model not ready, or queue full (Retry-After).", 504: "Past REQUEST_TIMEOUT_MS."}.items()},
)
async def predict(
    request: Request,
    engine: EngineDep,
    top_k: int | None = Query(None, ge=1, description="How many classes to return: 1..number of classes "
                              f"(default {DEFAULT_TOP_K}, or every class of a smaller model)."),
) -> PredictResponse:
    """Decode the image, run it through the model (batched with concurrent requests), return top-k."""
    classifier = engine.classifier
    if not engine.ready:
        raise NotReady("model is not loaded yet")
    if top_k is None:
        top_k = min(DEFAULT_TOP_K, classifier.num_classes)
    elif top_k > classifier.num_classes:
        raise InvalidParameter(f"top_k must be between 1 and {classifier.num_classes}, got {top_k}")
    data = await read_image(request)
    [predictions] = await unless_disconnected(request, engine.classify([data], top_k))
    return PredictResponse(model=classifier.name, version=classifier.version,
                           predictions=[PredictionOut(**vars(p)) for p in predictions])


async def read_image(request: Request) -> bytes:
    """The uploaded image's bytes: multipart field ``file`` or the raw body (``image/*``).

    The body limit (``MAX_BODY_BYTES``) applies while reading. Raises ``UnsupportedMediaType`` for other
    content types and ``BadRequest`` when the multipart form has no ``file``.
    """
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith("multipart/form-data"):
        async with request.form(max_files=1, max_fields=16) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise BadRequest("multipart form needs a file field named 'file'")
            return await upload.read()
    if content_type.startswith(RAW_TYPES):
        return await request.body()
    raise UnsupportedMediaType(
        f"unsupported Content-Type {content_type or '(none)'!r}: send multipart/form-data with a 'file' "
        "field, or the raw image with Content-Type image/*")
