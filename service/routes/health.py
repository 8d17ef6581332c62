"""Probes and metadata: ``/healthz`` (liveness), ``/readyz`` (readiness), ``/version``.

``/metrics`` is not here: ``service.metrics.serve_metrics`` serves it on ``METRICS_PORT``."""

from __future__ import annotations

import platform

import torch
import torchvision
from fastapi import APIRouter

from service import __version__
from service.deps import EngineDep
from service.errors import NotReady

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    """200 while the event loop runs (the model need not be loaded)."""
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: model loaded and warmed, batcher and inference thread working",
            responses={503: {"description": "Model not loaded yet, shutting down, the batcher stopped or "
                                            "the inference thread stalled (the body says which)."}})
async def readyz(engine: EngineDep) -> dict[str, str]:
    """200 once the model is loaded and warmed up and the batcher runs; 503 before, during shutdown,
    and while the batcher cannot answer (``InferenceEngine.failure``)."""
    check_ready(engine)
    return {"status": "ready", "model": engine.classifier.name, "version": engine.classifier.version}


def check_ready(engine: EngineDep) -> None:
    """Raise ``NotReady`` (503) while draining (after SIGTERM), before the model is loaded, and while
    the batcher's collector has stopped or the inference thread has stalled (``engine.failure``)."""
    if engine.draining:
        raise NotReady("shutting down")
    if (failure := engine.failure) is not None:
        raise NotReady(failure)
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

