"""``create_app()``: the FastAPI application. Importing this module loads no model; the lifespan does.

The request path, one module per step: ``routes/`` (HTTP) -> ``decode`` (bytes -> RGB image) ->
``preprocess`` (pixels, then a normalised batch) -> ``batching`` (concurrent requests share a forward
pass) -> ``model`` (``ImageClassifier.predict``) -> ``postprocess`` (top-k, labels); ``inference``
(``InferenceEngine``) runs one request through them. Around it: ``deps`` (FastAPI dependencies),
``errors`` (domain errors -> JSON), ``logs`` (request id, access log), ``metrics``, ``limits``,
``security``, ``settings``; ``server`` (uvicorn, graceful shutdown) and ``__main__`` start it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service import __version__
from service.cpus import sizing_line
from service.errors import ModelLoadError, install_error_handlers
from service.inference import InferenceEngine
from service.limits import BodyLimitMiddleware
from service.logs import AccessLogMiddleware
from service.memory import BodyBudget, peak_rss, plan, plan_line
from service.metrics import Metrics
from service.model import ImageClassifier
from service.routes import health, predict, v2, web
from service.routes.docs import DOCS_URL, install_docs
from service.security import install_security
from service.settings import Settings
from service.url_fetch import UrlFetcher

logger = logging.getLogger("service")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load and warm the model before serving (``ModelLoadError`` aborts start-up), then size the
    memory budget of request bodies from what the process holds (``service.memory``); stop cleanly after."""
    engine: InferenceEngine = app.state.engine
    logger.info(sizing_line(app.state.settings))
    try:
        await engine.start()
    except ModelLoadError as exc:
        app.state.startup_error = exc
        logger.error("model load failed: %s", exc)
        raise
    memory = plan(app.state.settings, engine.classifier.crop_size, engine.batcher.max_batch_size, peak_rss())
    app.state.body_budget.capacity = memory.bodies
    (logger.info if memory.sufficient else logger.warning)(plan_line(memory))
    try:
        yield
    finally:
        await engine.stop()


def create_app(settings: Settings | None = None, classifier: ImageClassifier | None = None) -> FastAPI:
    """Build the app for ``settings`` (default: read from the environment).

    ``classifier`` injects a custom (e.g. already loaded) ``ImageClassifier``; by default one is built
    from ``settings`` and loaded by the lifespan.
    """
    settings = settings or Settings()
    classifier = classifier or ImageClassifier(settings)
    metrics = Metrics(model=classifier.name, version=classifier.version)
    app = FastAPI(
        title="aks-image-classifier",
        version=__version__,
        description="Upload an image, get its top-k labels from a PyTorch model. JSON API, Open Inference "
                    "Protocol (KServe V2) under /v2, Prometheus metrics, probes.",
        lifespan=lifespan, docs_url=None, redoc_url=None,  # FastAPI's load from a CDN: see install_docs
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.engine = InferenceEngine(settings, metrics, classifier)
    app.state.url_fetcher = UrlFetcher.from_settings(settings) if settings.image_url_fetch else None
    app.state.body_budget = budget = BodyBudget()  # sized by the lifespan once the model is loaded
    metrics.body_bytes.set_function(lambda: budget.reserved)
    metrics.body_budget.set_function(lambda: budget.capacity or 0)
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes, budget=budget,
                       body_timeout_s=settings.body_timeout_s, min_rate=settings.min_upload_bytes_per_s)
    app.add_middleware(AccessLogMiddleware, metrics=metrics, log_probes=settings.access_log_probes)
    install_security(app, settings.cors_origins, docs_paths=(DOCS_URL,) if settings.docs_enabled else ())
    for module in (web, predict, health, v2):
        app.include_router(module.router)
    web.mount_static(app)
    if settings.docs_enabled:
        install_docs(app)
    v2.register_openapi_schemas(app)
    return app
