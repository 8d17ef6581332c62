"""``python -m bench``: the model alone vs this service vs TorchServe, one table and one JSON file.

``python -m bench --quick`` is the seconds-long version CI runs (small model, short levels).
``python -m bench --cpu-quota 1.0 [...]`` runs ``bench.quota``: the service under a CPU quota.
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
    "rounds": (3, 1),
    "round_duration": (10.0, 2.0),
}
#: Per paired round (full, quick): seconds of the model alone, then unrecorded seconds of load.
ROUND_MODEL_SECONDS, ROUND_WARMUP_S = (5.0, 0.5), (2.0, 0.5)


def _service_default(name: str, fallback: float) -> float:
    """The service's setting ``name`` as the benchmarked server will see it: the environment variable
    (upper-case name), else ``service.settings.Settings``' default, else ``fallback``."""
    value = os.environ.get(name.upper())
    if value:
        return float(value) if "." in value else int(value)
    try:
        from service.settings import Settings

        default = Settings.model_fields[name].get_default(call_default_factory=True)
        return default if default is not None else fallback
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
        "--rounds", type=int,
        help="paired rounds per server after its levels: model alone, then the server at c=16, seconds "
        "apart; the bar reads their median (default 3; 0: sequential ratios only)",
    )  # fmt: skip
    p.add_argument("--round-duration", type=float, help="recorded seconds of load per round (default 10)")
    p.add_argument(
        "--batch-size", type=int,
        help="MAX_BATCH_SIZE for the service, TorchServe's batchSize and the model alone's largest batch "
        "(default: the service's setting)",
    )  # fmt: skip
    p.add_argument(
        "--batch-delay-ms", type=float,
        help="MAX_BATCH_DELAY_MS for the service and TorchServe's maxBatchDelay (default: the service's)",
    )  # fmt: skip
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="a service setting for this run, e.g. --set MODEL_DTYPE=bfloat16 (the service and the "
        "model alone both read it); repeatable",
    )  # fmt: skip
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
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            p.error(f"--set expects KEY=VALUE, got {item!r}")
        os.environ[key.upper()] = value
    if args.batch_size is not None:
        os.environ["MAX_BATCH_SIZE"] = str(args.batch_size)
    if args.batch_delay_ms is not None:
        os.environ["MAX_BATCH_DELAY_MS"] = str(args.batch_delay_ms)
    args.batch_size = int(_service_default("max_batch_size", 16))
    args.batch_delay_ms = _service_default("max_batch_delay_ms", 5)
    if args.batch_size < 1 or any(level < 1 for level in args.levels):
        p.error("--batch-size and --levels must be >= 1")
    if args.rounds < 0:
        p.error("--rounds must be >= 0")
    if args.round_duration <= 0:
        p.error("--round-duration must be > 0 seconds")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the table and verdicts; return 0 if every target produced numbers.

    ``--cpu-quota CPUS ...`` hands all arguments to ``bench.quota`` (the service under a CPU quota)."""
    argv = sys.argv[1:] if argv is None else argv
    if any(arg.split("=")[0] == "--cpu-quota" for arg in argv):
        from bench import quota

        return quota.main(argv)
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
        batch_size=args.batch_size, delay_ms=args.batch_delay_ms, service_module=args.service_module,
        upload=args.upload,
        skip_torchserve=args.skip_torchserve, torchserve_workers=args.torchserve_workers,
        rounds=args.rounds, round_duration_s=args.round_duration,
        round_model_seconds=ROUND_MODEL_SECONDS[args.quick], round_warmup_s=ROUND_WARMUP_S[args.quick],
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
    hw, alone = meta["hardware"], results["model_alone"]
    model = meta["arch"] or model_file.name
    knobs = [
        f"batch <= {args.batch_size}",
        f"delay {args.batch_delay_ms} ms",
        f"{alone.get('threads')} threads",
        str(alone.get("dtype")),
        f"channels_last={alone.get('channels_last')}",
    ]
    print(f"\n{model} on {hw['cpu']}, {hw['cpus']} CPUs (load {hw['load_avg_1m_at_start']} at start)")
    print(", ".join(knobs) + "\n")
    print(report.table(results))
    if results["service"].get("stages"):
        print("\nservice per stage (whole run): " + ", ".join(
            f"{key} {value}" for key, value in results["service"]["stages"].items()))
    print()
    print(report.verdicts(summary))
    print(f"\nwall {meta['wall_s']} s; JSON: {path}")
    produced = "levels" in results["service"] and "error" not in results["model_alone"]
    return 0 if produced and "error" not in results["torchserve"] else 1


if __name__ == "__main__":
    sys.exit(main())
