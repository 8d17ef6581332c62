"""``CALIBRATION_URI``: calibration and held-out images under a Blob prefix, fetched into ``MODEL_CACHE_DIR``.

The prefix URL has the forms of ``MODEL_URI``
(``https://<account>.blob.core.windows.net/<container>/<prefix>/``, or an emulator's path-style URL)
and is read with the same clients, credential, retries, cache layout and errors
(``service.model_repository``): the blobs under it whose names end in an image suffix
(``service.calibration.SUFFIXES``) are listed, sorted by name, and the first of them are downloaded, at
most ``CALIBRATION_MAX_FILES`` (never more than the ``2 x CALIBRATION_IMAGES`` the two sets use) and no
more bytes than ``CALIBRATION_MAX_BYTES``. ``service.calibration`` then deals them as it deals a folder.

Failures raise ``model_repository`` errors, exit statuses as for ``MODEL_URI``: 4 the container is not found
or fewer than 2 images are under the prefix (``TooFewImages``), 5 access denied (listing needs the same
Storage Blob Data Reader role), 7 unreachable after the retries.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from azure.core.exceptions import AzureError

from service.calibration import SUFFIXES
from service.model_repository import (
    FETCH_CONCURRENCY,
    BlobNotFound,
    container_client,
    download,
    quiet_sdk_logs,
    translate,
)
from service.settings import Settings

logger = logging.getLogger("service")

#: End of a not-found line for ``CALIBRATION_URI``.
HINT = "check CALIBRATION_URI, or upload the images under that prefix"


class TooFewImages(BlobNotFound):
    """Fewer than 2 image blobs under the prefix (within the caps): one per set is the least (exit 4)."""


def within_caps(blobs: list[tuple[str, int]], max_files: int, max_bytes: int) -> list[tuple[str, int]]:
    """The leading ``(name, size)`` entries of ``blobs`` (sorted) that fit ``max_files`` files and
    ``max_bytes`` bytes; the first one that would pass either cap ends the list."""
    chosen, total = [], 0
    for name, size in blobs:
        if len(chosen) == max_files or total + size > max_bytes:
            break
        chosen.append((name, size))
        total += size
    return chosen


def fetch_images(settings: Settings, limit: int) -> list[Path]:
    """Download the images under ``CALIBRATION_URI`` (at most ``limit`` and the settings' caps) into the
    cache; return their local paths in name order.

    Raises ``TooFewImages``, ``BlobNotFound``, ``AccessDenied`` or ``RepositoryUnreachable`` (one line).
    """
    url = settings.calibration_uri
    assert url is not None
    quiet_sdk_logs(settings)
    started = time.perf_counter()
    container, prefix = container_client(url, settings)
    with container:
        try:
            listed = container.list_blobs(name_starts_with=prefix)
            blobs = sorted((blob.name, blob.size or 0) for blob in listed
                           if PurePosixPath(blob.name).suffix.lower() in SUFFIXES)
        except AzureError as exc:
            raise translate(exc, url, settings, HINT) from None
        max_files, max_bytes = settings.calibration_max_files, settings.calibration_max_bytes
        chosen = within_caps(blobs, min(limit, max_files), max_bytes)
        if len(chosen) < 2:
            raise TooFewImages(
                f"{url}: fewer than 2 images under the prefix ({len(blobs)} image blob(s) found, "
                f"{len(chosen)} within CALIBRATION_MAX_FILES={max_files} / "
                f"CALIBRATION_MAX_BYTES={max_bytes}; suffixes {', '.join(sorted(SUFFIXES))})")

        def fetch(name: str) -> Path:
            blob_url = f"{container.url}/{quote(name, safe='~/')}"
            return download(container.get_blob_client(name), blob_url, settings, hint=HINT).path

        with ThreadPoolExecutor(FETCH_CONCURRENCY) as pool:
            paths = list(pool.map(fetch, [name for name, _ in chosen]))
    logger.info("calibration images fetched: %d of the %d under %s (%d bytes, %.2f s)", len(paths),
                len(blobs), url, sum(size for _, size in chosen), time.perf_counter() - started)
    return paths
