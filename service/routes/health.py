"""Probes and metadata: ``/healthz`` (liveness), ``/readyz`` (readiness), ``/version``, ``/metrics``."""

from __future__ import annotations

import platform

import torch
import torchvision
from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service import __version__
from service.deps import EngineDep
from service.errors import NotReady

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    """200 while the event loop runs (the model need not be loaded)."""
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: model loaded and warmed",
            responses={503: {"description": "Model not loaded yet, or shutting down."}})
async def readyz(engine: EngineDep) -> dict[str, str]:
    """200 once the model is loaded and warmed up and the batcher runs; 503 before and during shutdown."""
    check_ready(engine)
    return {"status": "ready", "model": engine.classifier.name, "version": engine.classifier.version}


def check_ready(engine: EngineDep) -> None:
    """Raise ``NotReady`` (503) while draining (after SIGTERM) or before the model is loaded."""
    if engine.draining:
        raise NotReady("shutting down")
    if not engine.ready:
        raise NotReady("model is not loaded yet")


@router.get("/version", summary="Service, model and library versions")
async def version(engine: EngineDep) -> dict[str, object]:
    """The service version, the model's name/version/format/classes, and the runtime's versions."""
    classifier = engine.classifier
    return {
        "service": __version__,
        "model": classifier.name,
        "version": classifier.version,
        "format": classifier.source_format or None,
        "num_classes": classifier.num_classes if classifier.ready else None,
        "input_shape": [-1, 3, classifier.crop_size, classifier.crop_size],
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
    }


@router.get("/metrics", summary="Prometheus metrics (text format)", response_class=Response)
async def metrics(request: Request) -> Response:
    """All series of this app's registry in the Prometheus text exposition format (read-only: gauges
    such as the queue depth are read from the running service at scrape time)."""
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
