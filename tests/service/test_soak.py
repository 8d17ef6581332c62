"""Soak: thousands of requests, good and bad images mixed, against the real server (``python -m service``
on 127.0.0.1): zero 5xx, every answer the expected one, and RSS growth after warm-up within a bound.

Small in CI (``SOAK_REQUESTS``, default 3000); larger by setting it, e.g. ``SOAK_REQUESTS=20000``.
Bounded in time too (``SOAK_SECONDS``, default 240): the test stops by itself and checks what it sent.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil
import pytest
from PIL import Image

from tests.service.conftest import encode
from tests.service.test_shutdown import ServiceProcess

REQUESTS = int(os.environ.get("SOAK_REQUESTS", "3000"))
SECONDS = float(os.environ.get("SOAK_SECONDS", "240"))
WARM_UP = min(300, REQUESTS // 5)  # requests before the first RSS sample (allocator pools, caches)
CONCURRENCY = 8
#: Allowed RSS growth between the sample after warm-up and the one at the end (MiB). A leak of one
#: decoded 96x64 photo (18 KiB) or one input tensor (48 KiB) per request would exceed it at 3000 requests.
RSS_GROWTH_MIB = 48


@pytest.fixture(scope="module")
def workload(photos) -> list[tuple[str, str, dict, bytes, int]]:
    """(name, path, headers, body, expected status): good photos in 4 formats and a catalogue of bad input."""
    small = {name: Image.fromarray(array).resize((96, 64)) for name, array in photos.items()}
    cases = []
    for image, fmt in itertools.product(small.values(), ["JPEG", "PNG", "WEBP", "GIF"]):
        data = encode(image, fmt)
        cases.append((f"good-{fmt}", "/predict?top_k=3", {"Content-Type": f"image/{fmt.lower()}"}, data, 200))
    jpeg = encode(small["chelsea"], "JPEG")
    v2_good = json.dumps({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                                      "data": [base64.b64encode(jpeg).decode()]}]}).encode()
    cases += [
        ("v2-good", "/v2/models/small/infer", {"Content-Type": "application/json"}, v2_good, 200),
        ("truncated", "/predict", {"Content-Type": "image/jpeg"}, jpeg[: len(jpeg) // 2], 400),
        ("header-only", "/predict", {"Content-Type": "image/jpeg"}, jpeg[:40], 400),
        ("noise", "/predict", {"Content-Type": "image/png"}, os.urandom(3000), 415),
        ("empty", "/predict", {"Content-Type": "image/png"}, b"", 400),
        ("text", "/predict", {"Content-Type": "text/plain"}, b"hello", 415),
        ("top-k", "/predict?top_k=5000", {"Content-Type": "image/jpeg"}, jpeg, 422),
        ("v2-bad-b64", "/v2/models/small/infer", {"Content-Type": "application/json"},
         b'{"inputs":[{"name":"image","datatype":"BYTES","shape":[1],"data":["%%%"]}]}', 400),
        ("v2-bad-json", "/v2/models/small/infer", {"Content-Type": "application/json"}, b'{"inputs": [', 400),
        ("v2-unknown", "/v2/models/nope/infer", {"Content-Type": "application/json"}, v2_good, 404),
    ]
    return cases


def _worker(url: str, jobs, deadline: float) -> tuple[Counter, list[str]]:
    statuses: Counter = Counter()
    wrong: list[str] = []
    with httpx.Client(base_url=url, timeout=60) as client:
        for name, path, headers, body, expected in jobs:
            if time.monotonic() > deadline:
                break
            status = client.post(path, content=body, headers=headers).status_code
            statuses[status] += 1
            if status != expected:
                wrong.append(f"{name}: {status} (expected {expected})")
    return statuses, wrong


def _run(url: str, cases, n: int, deadline: float) -> tuple[Counter, list[str]]:
    jobs = list(itertools.islice(itertools.cycle(cases), n))
    shards = [jobs[i::CONCURRENCY] for i in range(CONCURRENCY)]
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        results = list(pool.map(lambda shard: _worker(url, shard, deadline), shards))
    return sum((r[0] for r in results), Counter()), [w for r in results for w in r[1]]


@pytest.mark.slow  # a soak: thousands of requests against a real server
def test_soak_mixed_good_and_bad_images_no_5xx_bounded_rss(model_files, labels_file, workload, tmp_path):
    env = {"MODEL_PATH": str(model_files("torchscript")), "MODEL_LABELS": str(labels_file),
           "MODEL_NAME": "small", "RESIZE_SIZE": "64", "CROP_SIZE": "64", "MAX_BATCH_SIZE": "8",
           "MAX_BATCH_DELAY_MS": "2", "TORCH_THREADS": "1", "DECODE_THREADS": "1", "LOG_LEVEL": "warning"}
    with ServiceProcess(env, tmp_path / "service.log") as service:
        process = psutil.Process(service.proc.pid)
        deadline = time.monotonic() + SECONDS
        started = time.monotonic()
        warm, wrong_warm = _run(service.url, workload, WARM_UP, deadline)
        rss_before = process.memory_info().rss / 2**20
        main, wrong = _run(service.url, workload, REQUESTS - WARM_UP, deadline)
        rss_after = process.memory_info().rss / 2**20
        took = time.monotonic() - started
        metrics = httpx.get(service.metrics_url).text

    total = warm + main
    sent = sum(total.values())
    errors = {status: count for status, count in sorted(total.items()) if status >= 400}
    print(f"\nsoak: {sent} requests in {took:.1f} s ({sent / took:.0f} req/s, {CONCURRENCY} clients), "
          f"statuses {dict(sorted(total.items()))}, errors by status {errors}, "
          f"RSS after warm-up ({WARM_UP} requests) {rss_before:.1f} MiB, at the end {rss_after:.1f} MiB "
          f"(growth {rss_after - rss_before:+.1f} MiB, bound {RSS_GROWTH_MIB} MiB)")
    assert sent >= min(REQUESTS, 500), "the soak ran out of time before sending enough requests"
    assert not [s for s in total if s >= 500], total
    assert wrong_warm + wrong == []
    assert total[200] > 0 and len(errors) >= 4  # both kinds were really sent
    assert rss_after - rss_before < RSS_GROWTH_MIB
    assert 'http_requests_total{method="POST",route="/predict",status="500"}' not in metrics
