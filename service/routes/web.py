"""``GET /``: the upload page (plain HTML/CSS/JS under ``service/static``, no CDN)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

router = APIRouter(tags=["web"])


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    """The upload page: pick or drop a photo, see it and its top-k labels with score bars."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")


def mount_static(app: FastAPI) -> None:
    """Serve ``service/static`` at ``/static``."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
