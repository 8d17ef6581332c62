"""Security for a public endpoint: response security headers and opt-in CORS (the optional API key is a
route dependency: ``service.deps.API_KEY_REQUIRED``; probes, metrics, metadata and the page stay open).

- ``SecurityHeadersMiddleware`` adds ``Content-Security-Policy`` (no inline script or style: the page's
  JS/CSS are files under ``/static``), ``X-Content-Type-Options: nosniff``, ``Referrer-Policy:
  no-referrer`` and ``X-Frame-Options: DENY`` to every response. Only Swagger UI (``/docs``, see
  ``service.routes.docs``) gets a relaxed policy: an inline bootstrap script and inline styles, still
  nothing from another origin (its assets are served locally).
- ``CORS_ORIGINS`` set: Starlette's ``CORSMiddleware`` for exactly those origins; unset: no CORS headers,
  so browsers keep the same-origin policy.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.datastructures import MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Policy of every response but the docs: same-origin everything, no inline script/style, no framing.
#: ``img-src blob:`` lets the page preview the chosen file (``URL.createObjectURL``).
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
#: Policy of ``/docs`` only: FastAPI's inline bootstrap script and Swagger UI's inline styles, same origin.
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; object-src 'none'; "
            "base-uri 'none'; frame-ancestors 'none'")
HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"}


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


def install_security(app: FastAPI, cors_origins: list[str], docs_paths: tuple[str, ...] = ()) -> None:
    """Add the security-headers middleware (``DOCS_CSP`` on ``docs_paths``) and, when ``cors_origins``
    is not empty, CORS for them.

    Call after the other middleware: the last added runs first, so every response (413s from the body
    limit included) gets the headers, and CORS preflights are answered before anything else.
    """
    app.add_middleware(SecurityHeadersMiddleware, docs_paths=docs_paths)
    if cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type", "Inference-Header-Content-Length",
                                          "X-Request-ID"],
                           expose_headers=["Inference-Header-Content-Length", "Retry-After", "X-Request-ID"],
                           max_age=600)
