"""``python -m bench.quota`` (or ``python -m bench --cpu-quota 1.0``): the service under a CPU quota,
as in a pod with a CPU limit, with its default thread sizing against explicit ones.

Each sizing (``default``: the service sizes itself; ``T/D``: ``TORCH_THREADS=T DECODE_THREADS=D``)
gets its own service process in its own cgroup with the quota (``bench.cgroup``), all started once.
Then, round after round, each server in turn takes closed-loop load at concurrency 1 (p50/p99 ms)
and 16 (img/s); the order rotates every round, so a drift of the shared host's speed hits every
sizing alike. The table shows medians over rounds with their range; the verdict compares the default
with the best explicit sizing (``bench.quota_report``). Exit status: 0 numbers produced, 1 a server or
the load failed, 4 no writable CPU cgroup here (not root, or no cgroup filesystem): skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import tempfile
import time
from pathlib import Path

from bench import assets, quota_report, report
from bench.cgroup import CGROUP_ROOT, CgroupUnavailable, QuotaGroup, find_cpu_root
from bench.runner import RunConfig, run_load
from bench.servers import ServerError, run_service

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE = REPO_ROOT / "build" / "bench"
RESULTS = Path(__file__).resolve().parent / "results"
SKIPPED = 4  #: exit status when no writable CPU cgroup exists
#: 2/2 is what the service chose before it read the quota (affinity 2 on a 2-CPU host).
VARIANTS = ["default", "1/1", "1/2", "2/2", "2/4"]
#: (full, quick): model, rounds, recorded s per level, warm-up s per level, server warm-up s, sizings.
SHAPE = {
    "arch": ("resnet50", "resnet18"), "rounds": (3, 1), "duration": (10.0, 2.0), "warmup": (2.0, 1.0),
    "server_warmup": (8.0, 2.0), "variants": (VARIANTS, ["default", "2/2"]),
}  # fmt: skip
#: The service's start-up line (``service.cpus.sizing_line``).
SIZING_LINE = re.compile(
    r"CPU sizing: (?P<cpus>\d+) effective CPUs .*; "
    r"torch threads (?P<torch>\d+) .*decode threads (?P<decode>\d+)"
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.quota", description=__doc__.split("\n\n")[0])
    p.add_argument("--cpu-quota", type=float, default=1.0, help="CPUs per 100 ms period (default 1.0)")
    p.add_argument("--quick", action="store_true", help="seconds-long form (resnet18, 1 round, 2 sizings)")
    p.add_argument("--arch", help="torchvision architecture (default resnet50)")
    p.add_argument("--model-file", type=Path, help="TorchScript file instead of --arch")
    p.add_argument("--variants", nargs="+", help=f"sizings: default or T/D (default {' '.join(VARIANTS)})")
    p.add_argument("--rounds", type=int, help="interleaved rounds (default 3)")
    p.add_argument("--duration", type=float, help="recorded seconds per level per round (default 10)")
    p.add_argument("--warmup", type=float, help="unrecorded seconds before each level (default 2)")
    p.add_argument("--server-warmup", type=float, help="unrecorded s at c=16 before round 1 (default 8)")
    p.add_argument("--service-module", default="service", help="module run as `python -m <module>`")
    p.add_argument("--cgroup-root", type=Path, default=CGROUP_ROOT, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help="JSON file (default bench/results/quota-<timestamp>.json)")
    args = p.parse_args(argv)
    for key, pair in SHAPE.items():
        if getattr(args, key) is None:
            setattr(args, key, pair[args.quick])
    try:
        for name in args.variants:
            quota_report.parse_variant(name)
    except ValueError as error:
        p.error(str(error))
    if len(set(args.variants)) != len(args.variants):
        p.error("--variants: each sizing once")
    if not args.cpu_quota > 0 or args.rounds < 1 or args.duration <= 0:
        p.error("--cpu-quota and --duration must be > 0, --rounds >= 1")
    return args


def _env(name: str) -> dict[str, str]:
    pair = quota_report.parse_variant(name)
    return {} if pair is None else {"TORCH_THREADS": str(pair[0]), "DECODE_THREADS": str(pair[1])}


def _sizing(name: str, log: Path) -> str:
    """What a server runs with: ``T / D`` for an explicit sizing; for ``default`` its own log line."""
    pair = quota_report.parse_variant(name)
    if pair is not None:
        return f"{pair[0]} / {pair[1]}"
    match = SIZING_LINE.search(log.read_text(errors="replace")) if log.exists() else None
    if not match:
        return "? (no 'CPU sizing' line in the service log)"
    return f"{match['torch']} / {match['decode']} (own choice for {match['cpus']} CPUs)"


def _row(name: str, number: int, levels: list[dict]) -> dict:
    one, many = (next(lv for lv in levels if lv["concurrency"] == c) for c in (1, 16))
    return {
        "variant": name, "round": number, "c1_p50_ms": one["p50_ms"], "c1_p99_ms": one["p99_ms"],
        "c16_img_per_s": many["img_per_s"], "c16_p99_ms": many["p99_ms"],
        "errors": one["errors"] + many["errors"],
    }  # fmt: skip


def _start(stack: contextlib.ExitStack, args: argparse.Namespace, cpu_root, config: RunConfig,
           workdir: Path) -> dict[str, tuple[str, Path, str]]:
    """One service per sizing, each started inside its own quota group (both closed by ``stack``):
    ``{name: (base_url, log file, cgroup path)}``. Raises ``ServerError`` if one is not in its group."""
    servers = {}
    for name in args.variants:
        slug = name.replace("/", "-")
        group = stack.enter_context(QuotaGroup(cpu_root, args.cpu_quota, slug))
        (workdir / slug).mkdir()
        base, proc = stack.enter_context(run_service(
            args.service_module, config.model_file, config.labels_file, workdir / slug, _env(name),
            prefix=group.prefix,
        ))  # fmt: skip
        if proc.pid not in group.pids():
            raise ServerError(f"{name}: the service (pid {proc.pid}) is not in {group.path}")
        servers[name] = (base, workdir / slug / "service.log", str(group.path))
    return servers


def _rounds(args: argparse.Namespace, config: RunConfig, servers: dict, workdir: Path) -> list[dict]:
    """``args.rounds`` rounds; in round r the sizings run in the order rotated by r - 1."""
    rows = []
    for number in range(1, args.rounds + 1):
        shift = (number - 1) % len(args.variants)
        for name in args.variants[shift:] + args.variants[:shift]:
            warm = (args.server_warmup if number == 1 else 0.0, args.warmup)
            tag = f"{name.replace('/', '-')}-{number}"
            levels = run_load(servers[name][0], "/predict", config, workdir, tag, "predictions", [1, 16],
                              warm, args.duration)  # fmt: skip
            rows.append(_row(name, number, levels))
            print(f"round {number} {name}: {rows[-1]}", file=sys.stderr, flush=True)
    return rows


def run(args: argparse.Namespace, cpu_root, workdir: Path) -> dict:
    """Start one server per sizing in its quota group, run the rounds, stop the servers and remove the
    groups; return ``{"rows", "sizing", "groups"}``."""
    photos = assets.write_photos(CACHE / "photos")
    if args.model_file:
        model_file, labels_file = args.model_file.resolve(), assets.labels_for(args.model_file, CACHE)
    else:
        model_file, labels_file = assets.ensure_model(args.arch, CACHE / "models")
    config = RunConfig(
        model_file=model_file, labels_file=labels_file, photos=photos, levels=[1, 16],
        duration_s=args.duration, warmup_s=args.warmup, server_warmup_s=args.server_warmup,
        model_seconds_per_batch=0.0, batch_size=0, delay_ms=0.0, service_module=args.service_module,
    )  # fmt: skip
    for name in ("TORCH_THREADS", "DECODE_THREADS"):  # "default" must mean the service's own choice
        os.environ.pop(name, None)
    with contextlib.ExitStack() as stack:
        servers = _start(stack, args, cpu_root, config, workdir)
        rows = _rounds(args, config, servers, workdir)
        sizing = {name: _sizing(name, log) for name, (_, log, _) in servers.items()}
    groups = {name: group for name, (_, _, group) in servers.items()}
    return {"rows": rows, "sizing": sizing, "groups": groups}


def main(argv: list[str] | None = None) -> int:
    """Run the quota benchmark; print the table and verdicts; return 0, 1 or ``SKIPPED`` (4)."""
    args = parse_args(argv)
    try:
        cpu_root = find_cpu_root(args.cgroup_root)
    except CgroupUnavailable as error:
        print(f"skipped: {error}", file=sys.stderr)
        return SKIPPED
    started = time.time()
    meta = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        "hardware": report.hardware(),
        "cgroup": f"{cpu_root.version} {cpu_root.path}",
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    try:
        with tempfile.TemporaryDirectory(prefix="bench-quota-") as tmp:
            results = run(args, cpu_root, Path(tmp))
    except (ServerError, RuntimeError, OSError) as error:
        print(f"error: {type(error).__name__}: {error}"[-3000:], file=sys.stderr)
        return 1
    summary = quota_report.summarize(results["rows"], args.variants)
    meta["wall_s"] = round(time.time() - started, 1)
    meta["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2)
    document = {"meta": meta, **results, "summary": summary}
    out = args.out or RESULTS / f"quota-{meta['started'].replace(':', '')}.json"
    report.write_json(document, out, RESULTS)
    hw = meta["hardware"]
    print(f"\n{args.model_file or args.arch} under a {args.cpu_quota:g}-CPU quota (cgroup {meta['cgroup']}) "
          f"on {hw['cpu']}, {hw['cpus']} CPUs; load {hw['load_avg_1m_at_start']} at start, "
          f"{meta['load_avg_1m_at_end']} at end; {args.rounds} interleaved rounds of {args.duration:g} s "
          f"per level\n")  # fmt: skip
    print(quota_report.table(summary, results["sizing"]))
    print()
    print(quota_report.verdicts(summary))
    print(f"\nwall {meta['wall_s']} s; JSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
