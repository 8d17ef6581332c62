"""``python -m service``: serve the app with uvicorn on ``HOST``:``PORT`` and its Prometheus metrics on
``HOST``:``METRICS_PORT`` (one process).

``python -m service --prefetch`` only resolves and downloads the configured model (used by the
Dockerfile at build time so images carry their weights), then exits. ``python -m service --compile OUT``
compiles it into an OpenVINO archive at ``OUT`` (``service.archive``: conversion, int8 calibration and the
accuracy gate, planned for ``MODEL_TARGET_CPU``), prints the report's summary and exits; the Dockerfile's
build stage runs it for baked models so pods load the archive.
Configuration or model-load errors exit with status 2 / 3 and one clear line on stderr; fetching
``MODEL_URI`` (``service.model_repository``) exits 4 not found, 5 access denied, 6 digest mismatch,
7 unreachable; a metrics port that cannot be bound exits 8; an explicit ``MODEL_DTYPE`` that fails the
accuracy gate (``service.precision_gate``) exits 9.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from pydantic import ValidationError

from service.errors import ModelLoadError
from service.logs import configure_logging
from service.settings import Settings, describe_error

logger = logging.getLogger("service")

#: Exit status when ``METRICS_PORT`` cannot be bound (2: settings, 3: model load, 4-7: MODEL_URI fetch).
METRICS_PORT_FAILED = 8


class _StartupFailureFilter(logging.Filter):
    """Drop uvicorn's traceback of a ``ModelLoadError`` (any subclass: its ``app.state.startup_error``): the
    lifespan already logged one clear line."""

    def __init__(self, state) -> None:
        super().__init__()
        self.state = state

    def filter(self, record: logging.LogRecord) -> bool:
        error = getattr(self.state, "startup_error", None)
        return error is None or "Traceback" not in record.getMessage()


def main(argv: list[str] | None = None) -> int:
    """Parse args, read settings, then serve (or prefetch). Returns the process exit status."""
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__.split("\n\n")[0])
    once = parser.add_mutually_exclusive_group()
    once.add_argument("--prefetch", action="store_true",
                      help="download/verify the configured model into the torch cache and exit")
    once.add_argument("--compile", type=Path, metavar="OUT",
                      help="compile the configured model into the OpenVINO archive OUT and exit")
    args = parser.parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"error: {describe_error(exc)}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    if settings.model_uri:  # download and verify before anything listens: ready means the fetched model
        from service.model_repository import ModelFetchError, fetch_model

        try:
            settings = fetch_model(settings)
        except ModelFetchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return exc.exit_status
    if args.prefetch:
        return _prefetch(settings)
    if args.compile:
        from service.archive import compile_and_print

        return compile_and_print(settings, args.compile)

    from service.app import create_app
    from service.metrics import serve_metrics
    from service.server import build_server

    app = create_app(settings)
    logging.getLogger("uvicorn.error").addFilter(_StartupFailureFilter(app.state))
    try:  # before the model loads: a scrape sees model_ready 0 while it does
        metrics_server = serve_metrics(app.state.metrics.registry, settings.host, settings.metrics_port)
    except OSError as exc:
        print(f"error: cannot serve metrics on {settings.host}:{settings.metrics_port} (METRICS_PORT): {exc}",
              file=sys.stderr)
        return METRICS_PORT_FAILED
    server = build_server(app, settings)  # SIGTERM: /readyz 503, SHUTDOWN_DELAY_S, drain, exit 0
    try:
        server.run()
    except SystemExit:  # uvicorn exits with its own status 3 when the lifespan fails: report the cause's
        if server.started:
            raise
    finally:
        metrics_server.shutdown()
        metrics_server.server_close()
    if not server.started:
        error = getattr(app.state, "startup_error", None)
        if error is None:  # else the lifespan logged it already
            print("error: start-up failed (see the log above)", file=sys.stderr)
        return getattr(error, "exit_status", 3)
    return 0


def _prefetch(settings: Settings) -> int:
    from service.loaders import load_file, load_torchvision

    try:
        if settings.model_path:
            loaded = load_file(settings.model_path, settings.model_arch)
        else:
            loaded = load_torchvision(settings.model_arch, settings.model_weights)
    except ModelLoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    logger.info("model available: %s (%s)", settings.resolved_model_name, loaded.source_format)
    return 0


if __name__ == "__main__":
    sys.exit(main())
