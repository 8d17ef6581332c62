"""Security for a public endpoint: the optional API key, response security headers, opt-in CORS.

- ``API_KEY`` set: ``require_api_key`` (a route dependency on ``/predict`` and V2 infer) wants
  ``Authorization: Bearer <key>``, compared in constant time (``hmac.compare_digest``), else 401 with
  ``WWW-Authenticate: Bearer`` (RFC 6750 section 3). Probes, metrics, metadata and the page stay open.
- ``SecurityHeadersMiddleware`` adds ``Content-Security-Policy`` (no inline script or style: the page's
  JS/CSS are files under ``/static``), ``X-Content-Type-Options: nosniff``, ``Referrer-Policy:
  no-referrer`` and ``X-Frame-Options: DENY`` to every response. Only the interactive docs (``/docs``,
  ``/redoc``) get a relaxed policy: FastAPI renders them with an inline bootstrap script and loads
  Swagger UI / ReDoc from the jsDelivr CDN, so they work only where that CDN is reachable.
- ``CORS_ORIGINS`` set: Starlette's ``CORSMiddleware`` for exactly those origins; unset: no CORS headers,
  so browsers keep the same-origin policy.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import FastAPI, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import Unauthorized

#: Policy of every response but the docs: same-origin everything, no inline script/style, no framing.
#: ``img-src blob:`` lets the page preview the chosen file (``URL.createObjectURL``).
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
#: Policy of ``/docs`` and ``/redoc`` only: FastAPI's inline bootstrap script plus the CDN they load from.
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
            "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
            "font-src 'self' https://fonts.gstatic.com; img-src 'self' data: https://fastapi.tiangolo.com "
            "https://cdn.redoc.ly; worker-src 'self' blob:; connect-src 'self'; object-src 'none'; "
            "base-uri 'none'; frame-ancestors 'none'")
HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"}

bearer = HTTPBearer(auto_error=False, scheme_name="APIKey",
                    description="`Authorization: Bearer <API_KEY>`; needed only if the server sets API_KEY.")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]


async def require_api_key(request: Request, credentials: Credentials) -> None:
    """Route dependency: pass when ``API_KEY`` is unset or the bearer token equals it, else ``Unauthorized``.

    The comparison is on UTF-8 bytes with ``hmac.compare_digest`` (constant time in the token's
    content; non-ASCII tokens are compared, not rejected with a 500).
    """
    expected = request.app.state.settings.api_key
    if expected is None:
        return
    if credentials is None or not credentials.credentials:
        raise Unauthorized("this endpoint needs 'Authorization: Bearer <API key>'",
                           headers={"WWW-Authenticate": 'Bearer realm="aks-image-classifier"'})
    if not hmac.compare_digest(credentials.credentials.encode(), expected.get_secret_value().encode()):
        raise Unauthorized("invalid API key", headers={
            "WWW-Authenticate": 'Bearer realm="aks-image-classifier", error="invalid_token"'})


class SecurityHeadersMiddleware:
    """Pure ASGI middleware: adds the security headers above to every HTTP response that lacks them.

    ``docs_paths``: paths (exact, or their sub-paths) that get ``DOCS_CSP`` instead of ``CSP``.
    """

    def __init__(self, app: ASGIApp, docs_paths: tuple[str, ...] = ()) -> None:
        self.app = app
        self.docs_paths = tuple(p for p in docs_paths if p)

    def _csp(self, path: str) -> str:
        docs = any(path == p or path.startswith(p + "/") for p in self.docs_paths)
        return DOCS_CSP if docs else CSP

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = self._csp(scope.get("path", ""))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", csp)
                for name, value in HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install_security(app: FastAPI, cors_origins: list[str]) -> None:
    """Add the security-headers middleware and, when ``cors_origins`` is not empty, CORS for them.

    Call after the other middleware: the last added runs first, so every response (413s from the body
    limit included) gets the headers, and CORS preflights are answered before anything else.
    """
    docs = (app.docs_url or "", app.redoc_url or "")
    app.add_middleware(SecurityHeadersMiddleware, docs_paths=docs)
    if cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type", "Inference-Header-Content-Length"],
                           expose_headers=["Inference-Header-Content-Length", "Retry-After"], max_age=600)


#: ``dependencies=`` of the routes the key protects (``/predict``, V2 infer).
API_KEY_REQUIRED = [Security(require_api_key)]
