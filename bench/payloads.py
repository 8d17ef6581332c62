"""What the load generator sends and how it summarises latencies (no gevent: safe to import anywhere)."""

from __future__ import annotations

#: multipart/form-data boundary (RFC 7578); any string absent from the photos' bytes would do.
BOUNDARY = "bench-boundary-7e3f"


def encode(photo: bytes, upload: str, name: str) -> tuple[bytes, dict[str, str]]:
    """Return ``(body, headers)`` for one JPEG: ``raw`` (an image/jpeg body) or ``multipart`` (``file``)."""
    if upload == "raw":
        return photo, {"Content-Type": "image/jpeg"}
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    return head + photo + f"\r\n--{BOUNDARY}--\r\n".encode(), {
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"
    }


def percentile(values: list[float], q: float) -> float | None:
    """``q``-th percentile (0-100) of ``values``, linear interpolation (numpy's default); None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
