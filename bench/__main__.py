"""``python -m bench``: the model alone vs this service vs TorchServe, one table and one JSON file.

``python -m bench --quick`` is the seconds-long version CI runs (small model, short levels).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from bench import assets, report, runner

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE = REPO_ROOT / "build" / "bench"
RESULTS = Path(__file__).resolve().parent / "results"

#: (full, quick) defaults. Full: ResNet-50 as the issue asks, 4 levels of 3 s warm-up + 20 s recorded.
DEFAULTS = {
    "arch": ("resnet50", "resnet18"),
    "levels": ([1, 4, 16, 64], [1, 16]),
    "duration": (20.0, 3.0),
    "warmup": (3.0, 1.0),
    "server_warmup": (10.0, 2.0),
    "model_seconds": (3.0, 0.5),
}


def _service_default(name: str, fallback: int) -> int:
    """The service's setting ``name`` as the benchmarked server will see it: the environment variable
    (upper-case name), else ``service.settings.Settings``' default, else ``fallback``."""
    value = os.environ.get(name.upper())
    if value:
        return int(float(value))
    try:
        from service.settings import Settings

        default = Settings.model_fields[name].get_default(call_default_factory=True)
        return int(default) if default is not None else fallback
    except (ImportError, KeyError, TypeError, ValueError):
        return fallback


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="seconds-long run for CI (resnet18, c=1 and 16)")
    p.add_argument("--arch", help="torchvision architecture for a seeded random model (default resnet50)")
    p.add_argument("--model-file", type=Path, help="TorchScript file to serve instead of --arch")
    p.add_argument("--levels", type=int, nargs="+", help="concurrency levels (default 1 4 16 64)")
    p.add_argument("--duration", type=float, help="recorded seconds per level (default 20)")
    p.add_argument("--warmup", type=float, help="unrecorded seconds before each level (default 3)")
    p.add_argument("--server-warmup", type=float, help="unrecorded seconds at c=16 before all levels (10)")
    p.add_argument(
        "--model-seconds", type=float, help="seconds per batch size for the model alone (default 3)"
    )
    p.add_argument(
        "--batch-size", type=int, default=_service_default("max_batch_size", 16),
        help="the service's MAX_BATCH_SIZE (model alone: powers of two up to it; TorchServe's batchSize)",
    )  # fmt: skip
    p.add_argument(
        "--batch-delay-ms", type=int, default=_service_default("max_batch_delay_ms", 5),
        help="the service's MAX_BATCH_DELAY_MS (TorchServe's maxBatchDelay)",
    )  # fmt: skip
    p.add_argument(
        "--threads", type=int, default=_service_default("torch_threads", len(os.sched_getaffinity(0))),
        help="intra-op threads for the model alone (the service's TORCH_THREADS; default: all CPUs)",
    )  # fmt: skip
    p.add_argument(
        "--dtype", default=os.environ.get("MODEL_DTYPE", "float32"), choices=("float32", "bfloat16")
    )
    p.add_argument("--channels-last", action="store_true", help="model alone in channels_last memory format")
    p.add_argument("--skip-torchserve", action="store_true", help="leave TorchServe out (its row says so)")
    p.add_argument("--torchserve-workers", type=int, default=1, help="TorchServe backend workers (default 1)")
    p.add_argument("--service-module", default="service", help="module run as `python -m <module>`")
    p.add_argument("--upload", choices=("raw", "multipart"), default="raw", help="how photos reach /predict")
    p.add_argument(
        "--out", type=Path, help="JSON file (default bench/results/<timestamp>.json + latest.json)"
    )
    args = p.parse_args(argv)
    mode = 1 if args.quick else 0
    for key, pair in DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, pair[mode])
    if args.batch_size < 1 or any(level < 1 for level in args.levels):
        p.error("--batch-size and --levels must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the table and verdicts; return 0 if every target produced numbers."""
    args = parse_args(argv)
    started = time.time()
    CACHE.mkdir(parents=True, exist_ok=True)
    photos = assets.write_photos(CACHE / "photos")
    if args.model_file:
        model_file, labels_file = args.model_file.resolve(), assets.labels_for(args.model_file, CACHE)
    else:
        model_file, labels_file = assets.ensure_model(args.arch, CACHE / "models")
    config = runner.RunConfig(
        model_file=model_file, labels_file=labels_file, photos=photos, levels=args.levels,
        duration_s=args.duration, warmup_s=args.warmup, server_warmup_s=args.server_warmup,
        model_seconds_per_batch=args.model_seconds,
        threads=args.threads, batch_size=args.batch_size, delay_ms=args.batch_delay_ms, dtype=args.dtype,
        channels_last=args.channels_last, service_module=args.service_module, upload=args.upload,
        skip_torchserve=args.skip_torchserve, torchserve_workers=args.torchserve_workers,
    )  # fmt: skip
    meta = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        "model_file": str(model_file),
        "arch": None if args.model_file else args.arch,
        "quick": args.quick,
        "hardware": report.hardware(),
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    results = runner.run(config)
    summary = report.summarize(results, args.levels)
    meta["wall_s"] = round(time.time() - started, 1)
    document = {"meta": meta, **results, "summary": summary}
    path = report.write_json(document, args.out, RESULTS)
    hw = meta["hardware"]
    print(
        f"\n{meta['arch'] or model_file.name}: {hw['cpu']}, {hw['cpus']} CPUs, "
        f"batch <= {args.batch_size}, delay {args.batch_delay_ms} ms, {args.threads} threads\n"
    )
    print(report.table(results))
    print()
    print(report.verdicts(summary))
    print(f"\nwall {meta['wall_s']} s; JSON: {path}")
    produced = "levels" in results["service"] and "error" not in results["model_alone"]
    return 0 if produced and "error" not in results["torchserve"] else 1


if __name__ == "__main__":
    sys.exit(main())
