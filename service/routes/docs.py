"""``GET /docs``: Swagger UI for ``/openapi.json``, its assets served from the pinned ``swagger-ui-bundle-v2``
package (``/docs/assets``), so the page works without internet access (an air-gapped cluster included).

FastAPI's built-in ``/docs`` and ``/redoc`` load their scripts from a CDN; ``create_app`` turns them off
and calls ``install_docs`` when ``DOCS_ENABLED`` is true (the default). ReDoc has no offline package
here and is not served.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

DOCS_URL = "/docs"
ASSETS = f"{DOCS_URL}/assets"


def install_docs(app: FastAPI) -> None:
    """Serve Swagger UI at ``/docs`` and its JS/CSS at ``/docs/assets`` (no request leaves the server)."""

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url, title=f"{app.title} - API docs",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js", swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png")

    app.mount(ASSETS, StaticFiles(directory=swagger_ui_path), name="docs-assets")
