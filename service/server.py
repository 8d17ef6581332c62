"""uvicorn with a graceful shutdown for ``python -m service``: readiness first, in-flight requests, then exit.

On the first SIGTERM (or Ctrl-C) ``engine.draining`` turns ``/readyz`` (and ``/v2/health/ready``) to
503 while every other endpoint keeps serving for ``SHUTDOWN_DELAY_S`` seconds, so load balancers that
poll readiness stop sending traffic; then uvicorn closes the listener, lets the requests in flight finish
(at most ``REQUEST_TIMEOUT_MS`` + 5 s), runs the lifespan shutdown (the batcher stops) and the process
exits with status 0. A second signal skips what is left of the delay; a third SIGINT forces the exit.

In Kubernetes the container's preStop sleep (``PRE_STOP_SLEEP_S`` in stacks/config.py) runs before the
SIGTERM while the endpoints drop the pod, so ``SHUTDOWN_DELAY_S`` defaults to 0 there and
``terminationGracePeriodSeconds`` must cover preStop + ``SHUTDOWN_DELAY_S`` + ``REQUEST_TIMEOUT_MS`` + 5 s.
"""

from __future__ import annotations

import logging
import time
from types import FrameType

import uvicorn
from fastapi import FastAPI

from service.connections import guarded_protocol
from service.inference import InferenceEngine
from service.settings import Settings

logger = logging.getLogger("service")

#: Seconds allowed beyond REQUEST_TIMEOUT_MS for a request in flight to send its answer on shutdown.
DRAIN_MARGIN_S = 5.0


class GracefulServer(uvicorn.Server):
    """``uvicorn.Server`` that sets ``engine.draining`` on the first signal and stops ``delay_s`` later."""

    def __init__(self, config: uvicorn.Config, engine: InferenceEngine, delay_s: float) -> None:
        super().__init__(config)
        self.engine = engine
        self.delay_s = delay_s
        self._exit_at: float | None = None  # time.monotonic() when the listener closes
        self._announced = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Signal handler (main thread): first signal drains, second exits now, third SIGINT forces.

        Signals are not re-raised after a graceful stop (uvicorn's default), so the exit status is 0.
        No logging here: a signal handler must not take the logging lock.
        """
        if self._exit_at is None and not self.should_exit:
            self.engine.draining = True
            self._exit_at = time.monotonic() + self.delay_s
        elif not self.should_exit:
            self.should_exit = True
        else:
            self.force_exit = True

    async def on_tick(self, counter: int) -> bool:
        """Every 0.1 s in uvicorn's main loop: close the listener once the drain delay has passed."""
        if self._exit_at is not None:
            if not self._announced:
                self._announced = True
                logger.info("shutdown requested: /readyz is 503; serving %.1f s more, then draining",
                            self.delay_s)
            if time.monotonic() >= self._exit_at:
                self.should_exit = True
        return await super().on_tick(counter)


def build_server(app: FastAPI, settings: Settings) -> GracefulServer:
    """A ``GracefulServer`` for ``app`` on ``HOST``:``PORT`` (lifespan on, bounded graceful shutdown).

    ``log_config=None``: uvicorn's loggers keep the root handler that ``service.logs.configure_logging``
    set up (same format); its access log is off, ``AccessLogMiddleware`` writes one line per request.
    The HTTP protocol is ``service.connections``' (``MAX_CONNECTIONS``, ``HEADER_TIMEOUT_S``, JSON answers).
    """
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level=settings.log_level,
                            log_config=None, access_log=False, lifespan="on", http=guarded_protocol(settings),
                            timeout_graceful_shutdown=settings.request_timeout_ms / 1000 + DRAIN_MARGIN_S)
    return GracefulServer(config, app.state.engine, settings.shutdown_delay_s)
