"""Smoke-test a running classifier: wait until it is ready, classify one real photo, check the answer.

    python tools/smoke_test.py --url http://127.0.0.1:8080 --image skimage:chelsea \
        --expect tabby --expect "tiger cat" --expect "Egyptian cat"

What the container workflow (.github/workflows/container.yml) runs against the freshly built image, and
what tests/delivery/test_smoke_test.py runs against `python -m service` (as `make serve` starts it).

1. Polls `GET /readyz` until it answers 200 (the model is loaded and warmed) or `--timeout` seconds pass.
2. `POST /predict` with the photo as multipart field `file`.
3. Checks the answer's shape: `{"model": str, "version": str, "predictions": [{"label": str,
   "index": int >= 0, "score": 0..1}, ...]}`, scores descending and summing to at most 1; with
   `--expect` (repeatable), the top-1 label must be one of the expected labels.

`--image` is a file path, or `skimage:<name>` for one of scikit-image's bundled photos (`chelsea`, the cat;
`coffee`; `astronaut`; `rocket`), encoded as JPEG (quality 95). Only the standard library is needed
for a file path; `skimage:` needs scikit-image and Pillow.

Exit status: 0 all checks passed; 1 an answer was wrong (HTTP error, bad shape, unexpected label);
2 not ready within `--timeout` seconds, or an unreadable image.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

#: Seconds between two readiness polls; each poll itself times out after this many seconds too.
POLL_INTERVAL_S = 1.0


class SmokeFailure(Exception):
    """A check failed; `status` is the exit status (1 wrong answer, 2 not ready / no image)."""

    def __init__(self, message: str, status: int = 1):
        super().__init__(message)
        self.status = status


def load_image(spec: str) -> tuple[str, bytes, str]:
    """`(filename, bytes, content type)` of `spec`: a path, or `skimage:<name>` encoded as JPEG (quality 95).

    Raises SmokeFailure(status 2) if the file or photo does not exist.
    """
    if spec.startswith("skimage:"):
        name = spec.removeprefix("skimage:")
        try:
            from PIL import Image
            from skimage import data
        except ImportError as exc:
            raise SmokeFailure(f"--image {spec}: needs scikit-image and Pillow ({exc})", 2) from None
        loader = getattr(data, name, None)
        if loader is None or not callable(loader):
            raise SmokeFailure(f"--image {spec}: scikit-image has no photo {name!r}", 2)
        buffer = io.BytesIO()
        Image.fromarray(loader()).convert("RGB").save(buffer, "JPEG", quality=95)
        return f"{name}.jpg", buffer.getvalue(), "image/jpeg"
    path = Path(spec)
    if not path.is_file():
        raise SmokeFailure(f"--image {spec}: no such file", 2)
    suffix = path.suffix.lower().lstrip(".")
    kinds = {"jpg": "jpeg", "jpeg": "jpeg", "png": "png", "webp": "webp", "gif": "gif", "bmp": "bmp"}
    kind = kinds.get(suffix)
    return path.name, path.read_bytes(), f"image/{kind}" if kind else "application/octet-stream"


def wait_ready(url: str, timeout_s: float) -> float:
    """Poll `GET <url>/readyz` until 200; return the seconds waited. Raises SmokeFailure(status 2) after
    `timeout_s` seconds (connection refused and 503 both mean "not yet")."""
    start = time.monotonic()
    last = "no answer"
    while True:
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=POLL_INTERVAL_S) as response:
                if response.status == 200:
                    return time.monotonic() - start
                last = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(getattr(exc, "reason", exc))
        if time.monotonic() - start >= timeout_s:
            raise SmokeFailure(f"{url}/readyz not ready within {timeout_s:g} s (last: {last})", 2)
        time.sleep(POLL_INTERVAL_S)


def predict(url: str, filename: str, body: bytes, content_type: str, timeout_s: float = 60) -> dict[str, Any]:
    """`POST <url>/predict` with the image as multipart field `file`; the decoded JSON answer.
    Raises SmokeFailure(status 1) on an HTTP error or a body that is not JSON."""
    boundary = uuid.uuid4().hex
    payload = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode() + body + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(
        f"{url}/predict", data=payload, method="POST",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            text = response.read()
    except urllib.error.HTTPError as exc:
        raise SmokeFailure(f"POST {url}/predict: HTTP {exc.code}: {exc.read()[:500]!r}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise SmokeFailure(f"POST {url}/predict: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise SmokeFailure(f"POST {url}/predict: not JSON: {text[:200]!r}") from None


def check_answer(answer: Any, expect: list[str]) -> dict[str, Any]:
    """Check the `/predict` answer's shape (see the module docstring) and, if `expect` is not empty, that
    the top-1 label is one of `expect`. Returns the top-1 prediction; raises SmokeFailure(status 1)."""
    if not isinstance(answer, dict) or not isinstance(answer.get("model"), str) \
            or not isinstance(answer.get("version"), str):
        raise SmokeFailure(f"answer lacks model/version strings: {answer!r:.300}")
    predictions = answer.get("predictions")
    if not isinstance(predictions, list) or not predictions:
        raise SmokeFailure(f"answer has no predictions list: {answer!r:.300}")
    for p in predictions:
        if not (isinstance(p, dict) and isinstance(p.get("label"), str) and isinstance(p.get("index"), int)
                and p["index"] >= 0 and isinstance(p.get("score"), int | float) and 0 <= p["score"] <= 1):
            raise SmokeFailure(f"malformed prediction {p!r:.200} (want label, index >= 0, score 0..1)")
    scores = [p["score"] for p in predictions]
    if scores != sorted(scores, reverse=True):
        raise SmokeFailure(f"scores are not in descending order: {scores}")
    if sum(scores) > 1 + 1e-4:
        raise SmokeFailure(f"scores sum to {sum(scores):.4f} > 1 (not softmax probabilities)")
    top = predictions[0]
    if expect and top["label"] not in expect:
        raise SmokeFailure(f"top-1 is {top['label']!r} ({top['score']:.3f}), expected one of {expect}")
    return top


def run(argv: list[str] | None = None) -> int:
    """The command line (see the module docstring); returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="service base URL")
    parser.add_argument("--image", default="skimage:chelsea", help="photo path or skimage:<name>")
    parser.add_argument("--expect", action="append", default=[],
                        help="acceptable top-1 label (repeatable); none: check the shape only")
    parser.add_argument("--timeout", type=float, default=300,
                        help="seconds to wait for /readyz (default 300)")
    args = parser.parse_args(argv)
    url = args.url.rstrip("/")
    try:
        image = load_image(args.image)
        waited = wait_ready(url, args.timeout)
        print(f"ready after {waited:.1f} s")
        started = time.monotonic()
        answer = predict(url, *image)
        elapsed_ms = (time.monotonic() - started) * 1000
        top = check_answer(answer, args.expect)
    except SmokeFailure as failure:
        print(f"smoke test failed: {failure}", file=sys.stderr)
        return failure.status
    print(f"{answer['model']} v{answer['version']}: {args.image} -> {top['label']!r} "
          f"(index {top['index']}, score {top['score']:.3f}) in {elapsed_ms:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(run())
