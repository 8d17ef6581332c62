"""Logging: JSON lines (text on a terminal), a request id on every line, one access-log line per request.

- ``configure_logging`` sets up the root logger once (``python -m service``): ``LOG_FORMAT=json`` writes one
  JSON object per line (``time``, ``level``, ``logger``, ``message``, then any fields), ``text`` writes
  ``time level logger: message key=value...``, ``auto`` (default) picks text when stderr is a terminal.
  uvicorn's own loggers go through the same handler; its access log is off (``AccessLogMiddleware``
  writes the one line per request instead).
- ``AccessLogMiddleware`` (pure ASGI): takes the request id from ``X-Request-ID`` (or makes one),
  echoes it in the response header, counts and times the request in the Prometheus metrics and logs
  ``method, path, status, duration_ms, request_id`` plus what the handler ``annotate``-d (``model``,
  ``images``, ``batch_size``) at INFO on logger ``service.access``. Probes (``PROBE_PATHS``, polled by the
  kubelet every few seconds) are counted but not logged unless ``ACCESS_LOG_PROBES=true``; scrapes go
  to the metrics port, which logs nothing.
- ``RateLimitedLog`` sums repeated events (e.g. 503 overload refusals) into one line per interval.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import threading
import time
import uuid
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.metrics import Metrics

#: Header carrying the request id in and out (the de-facto standard name, as nginx and Envoy use).
REQUEST_ID_HEADER = "X-Request-ID"
#: A client's id is used when it matches this (length-bounded, no spaces or control characters).
_VALID_ID = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")
#: The current request's log fields (request id, then what ``annotate`` adds); ``None`` outside a request.
_request: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("request", default=None)
#: ``LogRecord`` attributes that are not extra fields.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}

access_logger = logging.getLogger("service.access")
#: Liveness / readiness routes (ours and the Open Inference Protocol's): left out of the access log.
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/v2/health/live", "/v2/health/ready"})


def annotate(**fields: Any) -> None:
    """Add ``fields`` to the current request's access-log line (no-op outside a request)."""
    current = _request.get()
    if current is not None:
        current.update(fields)


def request_id() -> str | None:
    """The current request's id, or ``None`` outside a request."""
    current = _request.get()
    return current.get("request_id") if current else None


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """``extra=`` fields of ``record`` (the request id of the request it was logged in among them)."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


_base_factory = logging.getLogRecordFactory()


def _record_with_request_id(*args: Any, **kwargs: Any) -> logging.LogRecord:
    """Every record made while a request is handled carries its ``request_id`` (any logger, any
    handler: a line logged deep in the request path can be matched with the request's access line)."""
    record = _base_factory(*args, **kwargs)
    if (rid := request_id()) is not None:
        record.request_id = rid
    return record


if getattr(_base_factory, "__name__", "") != _record_with_request_id.__name__:  # once, even on reload
    logging.setLogRecordFactory(_record_with_request_id)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``time`` (ISO 8601 UTC, ms), ``level``, ``logger``, ``message``, fields,
    and ``exception`` (the traceback text) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                    + f".{int(record.msecs):03d}Z",
            "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        entry |= _fields(record)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """``time level logger: message key=value ...`` for a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        if not fields:
            return line
        head, newline, rest = line.partition("\n")  # fields before a traceback, on the first line
        return f"{head} {fields}{newline}{rest}"


def configure_logging(level: str, fmt: str = "auto") -> None:
    """Root logger at ``level`` writing to stderr as ``fmt`` (``json``, ``text`` or ``auto``: text when
    stderr is a terminal). Replaces earlier handlers, so calling it twice is harmless."""
    use_text = fmt == "text" or (fmt == "auto" and sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(TextFormatter() if use_text else JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


class RateLimitedLog:
    """Counts events by kind and logs their sum at most once per ``interval_s`` (default 10 s).

    ``event(kind)`` logs at once when the last line is older than ``interval_s`` (the count includes
    the events held back since), else only counts: a saturated server writes one line per interval,
    not one per refused request. Thread-safe.
    """

    def __init__(self, logger: logging.Logger, message: str, interval_s: float = 10.0,
                 level: int = logging.WARNING) -> None:
        self.logger, self.message, self.interval_s, self.level = logger, message, interval_s, level
        self._counts: dict[str, int] = {}
        self._last = float("-inf")
        self._lock = threading.Lock()

    def event(self, kind: str) -> None:
        """Count one ``kind`` event; log the counts if the interval has passed."""
        with self._lock:
            self._counts[kind] = self._counts.get(kind, 0) + 1
            now = time.monotonic()
            if now - self._last < self.interval_s:
                return
            counts, self._counts, self._last = self._counts, {}, now
        summary = ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items()))
        self.logger.log(self.level, "%s: %s (at most one line per %.0f s)", self.message, summary,
                        self.interval_s, extra={"counts": counts})


class AccessLogMiddleware:
    """Pure ASGI middleware: request id in and out, HTTP metrics, and one access-log line per request
    (none for ``PROBE_PATHS`` unless ``log_probes``)."""

    def __init__(self, app: ASGIApp, metrics: Metrics, log_probes: bool = False) -> None:
        self.app = app
        self.metrics = metrics
        self.log_probes = log_probes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid = _client_request_id(scope) or uuid.uuid4().hex
        fields: dict[str, Any] = {"request_id": rid}
        token = _request.set(fields)
        # Also in the request's state: Starlette's last-resort 500 handler runs outside this middleware.
        scope.setdefault("state", {})["request_id"] = rid
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = rid
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            seconds = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope.get("method", "")
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(seconds)
            if self.log_probes or scope.get("path", "") not in PROBE_PATHS:
                access_logger.info("%s %s %d", method, scope.get("path", ""), status, extra={
                    "method": method, "path": scope.get("path", ""), "status": status,
                    "duration_ms": round(seconds * 1000, 2)} | {k: v for k, v in fields.items()
                                                                  if k != "request_id"})  # on the record
            _request.reset(token)


def _client_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            return text if _VALID_ID.fullmatch(text) else None
    return None
