"""``GET /``: the upload page (plain HTML/CSS/JS under ``service/static``, no CDN)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from service.deps import SettingsDep

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

router = APIRouter(tags=["web"])


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    """The upload page: pick or drop a photo, see it and its top-k labels with score bars."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")


@router.get("/ui/config", include_in_schema=False)
async def ui_config(settings: SettingsDep) -> dict[str, bool]:
    """What the page offers: ``url_input`` is ``IMAGE_URL_FETCH`` (the URL field is shown only then)."""
    return {"url_input": settings.image_url_fetch}


def mount_static(app: FastAPI) -> None:
    """Serve ``service/static`` at ``/static``."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
