"""Domain errors that carry their HTTP status, and the one place that turns errors into JSON.

Body shapes (chosen once, used everywhere):
- Open Inference Protocol routes (``/v2...``): ``{"error": "<message>"}`` as the protocol requires.
- Every other route: ``{"error": "<code>", "detail": <message or FastAPI's validation list>}``.
- A 500 (a model failure or a bug) says only ``internal error`` plus the ``request_id`` (also in the
  ``X-Request-ID`` header): the exception's text may hold internals, so it goes to the log only.

Logging: a 500 logs its exception at ERROR with the request id; refusals a saturated server answers
by the thousand (503 overloaded / not ready, 504 timeout) are summed into one WARNING per 10 s
(``RateLimitedLog``) and counted in ``inference_rejected_total``; every request also has its access-log
line (``service.logs``).
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.logs import REQUEST_ID_HEADER, RateLimitedLog, request_id

logger = logging.getLogger("service")
#: One WARNING per interval summing the 503 / 504 answers, instead of one per refused request.
refusals = RateLimitedLog(logger, "requests refused")

#: What a 500 tells the client.
INTERNAL_ERROR = "internal error"


class ServiceError(Exception):
    """Base domain error: ``status_code`` (HTTP), ``code`` (short machine-readable reason), message."""

    status_code = HTTPStatus.INTERNAL_SERVER_ERROR
    code = "internal_error"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers


class BadRequest(ServiceError):
    """400: a request the service cannot use (empty body, corrupt image, malformed V2 tensor)."""

    status_code = HTTPStatus.BAD_REQUEST
    code = "bad_request"


class UnsupportedMediaType(ServiceError):
    """415: the body is not an image in a supported format (JPEG, PNG, WebP, GIF, BMP)."""

    status_code = HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    code = "unsupported_media_type"


class PayloadTooLarge(ServiceError):
    """413: body over ``MAX_BODY_BYTES`` or decoded image over ``MAX_IMAGE_PIXELS``."""

    status_code = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    code = "payload_too_large"


class Unauthorized(ServiceError):
    """401 with ``WWW-Authenticate: Bearer``: ``API_KEY`` is set and the request has no or a wrong key."""

    status_code = HTTPStatus.UNAUTHORIZED
    code = "unauthorized"


class NotFound(ServiceError):
    """404: unknown model name or version."""

    status_code = HTTPStatus.NOT_FOUND
    code = "not_found"


class InvalidParameter(ServiceError):
    """422: a well-formed request with an out-of-range parameter (e.g. ``top_k`` over the class count)."""

    status_code = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "invalid_parameter"


class Overloaded(ServiceError):
    """503 with ``Retry-After``: the batch queue is full (``MAX_QUEUE``)."""

    status_code = HTTPStatus.SERVICE_UNAVAILABLE
    code = "overloaded"


class MemoryBudgetFull(ServiceError):
    """503 with ``Retry-After`` and ``Connection: close``: the request body does not fit the memory
    budget of bodies in flight now (``service.memory``); nothing more of it is read."""

    status_code = HTTPStatus.SERVICE_UNAVAILABLE
    code = "memory_budget_full"


class RequestTimeout(ServiceError):
    """408 with ``Connection: close``: the body arrived too slowly (``BODY_TIMEOUT_S``,
    ``MIN_UPLOAD_BYTES_PER_S``); headers too slow (``HEADER_TIMEOUT_S``) are answered by
    ``service.connections`` in the same JSON shape."""

    status_code = HTTPStatus.REQUEST_TIMEOUT
    code = "request_timeout"


class NotReady(ServiceError):
    """503: the model is not loaded and warmed yet (or the server is shutting down)."""

    status_code = HTTPStatus.SERVICE_UNAVAILABLE
    code = "not_ready"


class ClientClosedRequest(ServiceError):
    """499 (nginx's "client closed request"): the client disconnected before its answer. Nobody reads
    the response; the status marks the access-log line and ``http_requests_total``."""

    status_code = 499
    code = "client_closed_request"


class InferenceTimeout(ServiceError):
    """504: the request waited longer than ``REQUEST_TIMEOUT_MS`` for its result."""

    status_code = HTTPStatus.GATEWAY_TIMEOUT
    code = "timeout"


class UrlInputDisabled(UnsupportedMediaType):
    """415: a JSON ``{"url": ...}`` body while ``IMAGE_URL_FETCH`` is off."""

    code = "url_input_disabled"


class UrlRefused(ServiceError):
    """400: an image URL the service will not fetch (scheme, credentials, a non-public or metadata
    address, too many redirects); the message names the reason (``service.url_policy``)."""

    status_code = HTTPStatus.BAD_REQUEST
    code = "url_refused"


class UrlFetchFailed(ServiceError):
    """422: the image URL was allowed but gave no image (no such host, connection failed, an HTTP
    status other than 200, an empty body)."""

    status_code = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "url_fetch_failed"


class UrlFetchTimeout(ServiceError):
    """504: fetching the image URL (every redirect included) took longer than ``IMAGE_URL_TIMEOUT_S``."""

    status_code = HTTPStatus.GATEWAY_TIMEOUT
    code = "url_timeout"


class InferenceFailed(ServiceError):
    """500: the model raised during a forward pass (a bug or a model/input mismatch)."""


class ModelLoadError(Exception):
    """Start-up failure (missing/unreadable file, wrong output width...): one clear line, no HTTP status."""


def _is_v2(request: Request) -> bool:
    return request.url.path == "/v2" or request.url.path.startswith("/v2/")


def error_response(request: Request, status: int, code: str, detail: object,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    """The JSON error body for ``request``'s route family (see module docstring)."""
    if _is_v2(request):
        message = detail if isinstance(detail, str) else f"{code}: {detail}"
        body: dict[str, object] = {"error": message}
    else:
        body = {"error": code, "detail": detail}
    return JSONResponse(jsonable_encoder(body), status_code=status, headers=headers)


def internal_error_response(request: Request) -> JSONResponse:
    """The generic 500: ``{"error": "internal error", "request_id": ...}`` (non-V2 routes: ``"error":
    "internal_error", "detail": "internal error"``, as all their errors), the id also in ``X-Request-ID``."""
    rid = request_id() or getattr(request.state, "request_id", None) or ""
    body = {"error": INTERNAL_ERROR} if _is_v2(request) else {"error": "internal_error",
                                                                "detail": INTERNAL_ERROR}
    return JSONResponse(body | {"request_id": rid}, status_code=500, headers={REQUEST_ID_HEADER: rid})


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers: domain errors, HTTP errors (404 route, 405...), validation, and the rest."""

    @app.exception_handler(ServiceError)
    async def _domain(request: Request, exc: ServiceError) -> JSONResponse:
        if exc.status_code == 500:
            logger.error("%s %s -> 500 %s: %s", request.method, request.url.path, type(exc).__name__,
                         exc.message)
            return internal_error_response(request)
        if exc.status_code > 500:
            refusals.event(exc.code)
        return error_response(request, exc.status_code, exc.code, exc.message, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_")
        return error_response(request, exc.status_code, code, exc.detail, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        if _is_v2(request):  # the protocol answers malformed requests with 400
            first = exc.errors()[0] if exc.errors() else {"msg": "invalid request"}
            where = ".".join(str(p) for p in first.get("loc", ()))
            return error_response(request, 400, "bad_request", f"{where}: {first['msg']}")
        return error_response(request, 422, "validation_error", exc.errors())

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Starlette runs this outside the middleware stack: the request id comes from request.state.
        logger.exception("unhandled error on %s %s", request.method, request.url.path,
                         extra={"request_id": getattr(request.state, "request_id", None)})
        return internal_error_response(request)
