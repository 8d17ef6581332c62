"""Closed-loop HTTP load with locust (headless, library API), one concurrency level after another.

Run as its own process (``python -m bench.loadgen ...``): locust needs gevent's monkey-patching, which
must not leak into the process that runs the model alone and manages the servers. The parent
(``bench.runner``) passes the target and reads back one JSON document.

Each of ``--users`` locust users posts one JPEG (raw body, ``Content-Type: image/jpeg``, or a multipart
form field ``file``), waits for the answer and posts the next (no think time), so the concurrency is the
number of requests in flight. Before the first level the server is warmed up unrecorded for
``--server-warmup`` seconds at concurrency 16 (or the highest level, if lower), so every batch shape it
will see has run once (TorchScript profiles and optimises on the first calls of a shape). Each level
then runs ``--warmup`` seconds unrecorded (queues fill, batches form) and ``--duration`` s recorded.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import socket  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import ClassVar  # noqa: E402

import gevent  # noqa: E402
from geventhttpclient.connectionpool import ConnectionPool  # noqa: E402
from locust import FastHttpUser, constant, events, task  # noqa: E402
from locust.env import Environment  # noqa: E402

from bench.payloads import encode, percentile  # noqa: E402

#: Per-request limit (s): a request slower than this counts as an error rather than hanging the run.
REQUEST_TIMEOUT_S = 60.0


def _no_delay(_pool: ConnectionPool, sock) -> None:
    """Set ``TCP_NODELAY`` on each new connection, as curl, httpx and browsers do. geventhttpclient (under
    locust's ``FastHttpUser``) leaves Nagle's algorithm on and sends a request's headers and body in
    separate writes, so the body's last segment waits for the server's delayed ACK: about 40 ms (Linux's
    minimum delayed-ACK time) added to every request (RFC 896 with RFC 1122's delayed ACK), which would be
    counted as the server's latency."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


ConnectionPool.after_connect = _no_delay


class Target:
    """What the users post: ``path``, the encoded bodies and their headers, and how to check an answer."""

    path = "/predict"
    bodies: ClassVar[list[tuple[bytes, dict[str, str]]]] = []
    expect_key: str | None = "predictions"
    cycle = itertools.count()


class ImageUser(FastHttpUser):
    """A client that posts the photos round-robin, back to back."""

    wait_time = constant(0)
    network_timeout = REQUEST_TIMEOUT_S
    connection_timeout = REQUEST_TIMEOUT_S

    @task
    def predict(self) -> None:
        body, headers = Target.bodies[next(Target.cycle) % len(Target.bodies)]
        with self.client.post(
            Target.path, data=body, headers=headers, name="predict", catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {(response.text or '')[:200]}")
                return
            try:
                answer = response.json()
            except ValueError:
                response.failure("answer is not JSON")
                return
            if Target.expect_key and (not isinstance(answer, dict) or not answer.get(Target.expect_key)):
                response.failure(f"answer has no {Target.expect_key!r}: {str(answer)[:200]}")


class Recorder:
    """Collects ``(response_time_ms, error)`` of every finished request while ``recording`` is set."""

    def __init__(self) -> None:
        self.recording = False
        self.latencies_ms: list[float] = []
        self.errors: list[str] = []

    def on_request(self, response_time, exception=None, **_kwargs) -> None:
        if not self.recording:
            return
        if exception is None:
            self.latencies_ms.append(float(response_time))
        else:
            self.errors.append(str(exception)[:300])


def run_level(env: Environment, recorder: Recorder, users: int, warmup: float, duration: float) -> dict:
    """Run ``users`` concurrent users: ``warmup`` s unrecorded, then ``duration`` s recorded; return stats."""
    runner = env.runner
    recorder.latencies_ms, recorder.errors = [], []
    recorder.recording = False
    runner.start(users, spawn_rate=users, wait=False)
    # Errors during warm-up count too: "zero errors at every level" means every request.
    recorder.recording = True
    gevent.sleep(warmup)
    warm_errors = list(recorder.errors)
    recorder.latencies_ms, recorder.errors = [], []
    started = time.perf_counter()
    gevent.sleep(duration)
    elapsed = time.perf_counter() - started
    recorder.recording = False
    latencies, errors = list(recorder.latencies_ms), warm_errors + recorder.errors
    runner.stop()
    return {
        "concurrency": users,
        "seconds": round(elapsed, 3),
        "requests": len(latencies),
        "img_per_s": len(latencies) / elapsed if elapsed > 0 else None,
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "errors": len(errors),
        "error_samples": sorted(set(errors))[:5],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="closed-loop locust load at several concurrency levels")
    parser.add_argument("--host", required=True, help="base URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--path", default="/predict")
    parser.add_argument("--photos", type=Path, nargs="+", required=True, help="JPEG files to post")
    parser.add_argument("--upload", choices=("raw", "multipart"), default="raw")
    parser.add_argument("--expect-key", default="predictions", help="JSON key a good answer has ('' = any)")
    parser.add_argument("--levels", type=int, nargs="+", required=True)
    parser.add_argument("--warmup", type=float, default=3.0, help="unrecorded seconds per level")
    parser.add_argument("--duration", type=float, default=20.0, help="recorded seconds per level")
    parser.add_argument("--server-warmup", type=float, default=10.0, help="unrecorded seconds before all")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    args = parser.parse_args(argv)
    if not args.host.startswith(("http://127.0.0.1", "http://localhost")):
        parser.error("the benchmark only targets 127.0.0.1 / localhost")
    logging.basicConfig(level=logging.WARNING)

    Target.path = args.path
    Target.expect_key = args.expect_key or None
    Target.bodies = [encode(p.read_bytes(), args.upload, p.name) for p in args.photos]
    recorder = Recorder()
    events.request.add_listener(recorder.on_request)
    env = Environment(user_classes=[ImageUser], host=args.host, events=events)
    env.create_local_runner()
    try:
        if args.server_warmup > 0:
            warm = run_level(env, recorder, min(16, max(args.levels)), args.server_warmup, 0.0)
            if warm["errors"]:
                logging.warning("errors during server warm-up: %s", warm["error_samples"])
        levels = [run_level(env, recorder, n, args.warmup, args.duration) for n in args.levels]
    finally:
        env.runner.quit()
    args.out.write_text(json.dumps({"levels": levels}, indent=2))


if __name__ == "__main__":
    main()
