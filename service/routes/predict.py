"""``POST /predict``: one image (multipart field ``file``, raw ``image/*`` body, or JSON ``{"url": ...}`` when
``IMAGE_URL_FETCH`` is on: ``service.url_fetch``) -> top-k labels."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile

from service.deps import API_KEY_REQUIRED, EngineDep
from service.disconnect import unless_disconnected
from service.errors import BadRequest, InvalidParameter, NotReady, UnsupportedMediaType, UrlInputDisabled
from service.url_policy import MAX_URL_LENGTH

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


class UrlIn(BaseModel):
    """JSON body naming an image to fetch (``IMAGE_URL_FETCH=true``; docs/url-input.md)."""

    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=1, max_length=MAX_URL_LENGTH, description="http(s) URL of a public image.",
                     examples=["https://upload.wikimedia.org/wikipedia/commons/3/3a/Cat03.jpg"])


_BODY_SCHEMA = {
    "required": True,
    "content": {
        "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                           "properties": {"file": {"type": "string", "format": "binary"}}}},
        "image/*": {"schema": {"type": "string", "format": "binary"}},
        "application/json": {"schema": UrlIn.model_json_schema()},
    },
}


#: Classes returned when the request names no ``top_k``.
DEFAULT_TOP_K = 5


@router.post(
    "/predict", response_model=PredictResponse, summary="Classify one image",
    openapi_extra={"requestBody": _BODY_SCHEMA}, dependencies=API_KEY_REQUIRED,
    responses={code: {"model": ErrorOut, "description": text} for code, text in {
        400: "Empty body, corrupt image, no multipart field `file`, or an image URL refused (url_refused).",
        401: "API_KEY is set and the request has no or a wrong `Authorization: Bearer` key.",
        413: "Body (or the image URL's body) over MAX_BODY_BYTES, or image over MAX_IMAGE_PIXELS.",
        415: "Not an image in a supported format (JPEG, PNG, WebP, GIF, BMP), an image URL whose "
             "Content-Type is not image/*, or a JSON body while IMAGE_URL_FETCH is off.",
        422: "Invalid query parameter (top_k outside 1..number of classes), or the image URL gave no image.",
        503: "Model not ready, or queue full (Retry-After).",
        504: "Past REQUEST_TIMEOUT_MS, or the image URL past IMAGE_URL_TIMEOUT_S."}.items()},
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
    """The uploaded image's bytes: multipart field ``file``, the raw body (``image/*``), or the image a
    JSON ``{"url": ...}`` names (``read_url``).

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
    if content_type.split(";", 1)[0].strip() == "application/json":
        return await read_url(request)
    raise UnsupportedMediaType(
        f"unsupported Content-Type {content_type or '(none)'!r}: send multipart/form-data with a 'file' "
        "field, or the raw image with Content-Type image/*")


async def read_url(request: Request) -> bytes:
    """The bytes of the image ``{"url": "https://..."}`` names, fetched by ``app.state.url_fetcher``.

    Raises ``UrlInputDisabled`` (415) when ``IMAGE_URL_FETCH`` is off, ``BadRequest`` for another JSON
    shape, and the fetcher's errors (``service.url_fetch.UrlFetcher.fetch``).
    """
    fetcher = request.app.state.url_fetcher
    if fetcher is None:
        raise UrlInputDisabled("image URL input is off on this server (IMAGE_URL_FETCH=false): send the "
                               "image itself, as multipart/form-data with a 'file' field or with "
                               "Content-Type image/*")
    try:
        body = UrlIn.model_validate_json(await request.body())
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise BadRequest(f'JSON body must be {{"url": "https://..."}}: {where}: {first["msg"]}') from None
    return await fetcher.fetch(body.url)
