"""``python -m bench.quota`` (or ``python -m bench --cpu-quota 1.0``): the service under a CPU quota,
as in a pod with a CPU limit, with its default thread sizing against explicit ones.

Each sizing (``default``: the service sizes itself; ``T/D``: ``TORCH_THREADS=T DECODE_THREADS=D``)
gets its own service process in its own cgroup with the quota (``bench.cgroup``), all started once.
Then, round after round, each server in turn takes closed-loop load at concurrency 1 (p50/p99 ms)
and 16 (img/s); the order rotates every round, so a drift of the shared host's speed hits every
sizing alike. The table shows medians over rounds with their range; the verdict compares the default
with the best explicit sizing (``bench.quota_report``). Exit status: 0 numbers produced, 1 a server or
the load failed, 4 no writable CPU cgroup here (not root, or no cgroup filesystem): skipped.
``--report FILE`` prints the table and verdicts of a saved run again.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from bench import assets, quota_report, report
from bench.cgroup import CGROUP_ROOT, CgroupUnavailable, QuotaGroup, find_cpu_root
from bench.runner import RunConfig, run_load
from bench.servers import ServerError, run_service, tree_cpu_s, wait_idle

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE = REPO_ROOT / "build" / "bench"
RESULTS = Path(__file__).resolve().parent / "results"
SKIPPED = 4  #: exit status when no writable CPU cgroup exists
#: 2/2 is what the service chose before it read the quota (affinity 2 on a 2-CPU host).
VARIANTS = ["default", "1/1", "1/2", "2/2", "2/4"]
#: (full, quick): model, rounds, recorded s per level, warm-up s per level, server warm-up s, sizings.
#: Answers come in batches (up to MAX_BATCH_SIZE 8 at once), so a window's img/s moves in steps of
#: 8 / duration: 12 s at ~10 img/s is ~15 batches, a step of ~7 %; the median over rounds smooths it.
SHAPE = {
    "arch": ("resnet50", "resnet18"), "rounds": (3, 1), "duration": (12.0, 2.0), "warmup": (2.0, 1.0),
    "server_warmup": (8.0, 2.0), "variants": (VARIANTS, ["default", "2/2"]),
}  # fmt: skip


@dataclass
class Server:
    """A running service under test: its URL, its metrics URL, log file, quota group and process id."""

    base: str
    metrics_url: str
    log: Path
    group: Path
    pid: int


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
    p.add_argument("--duration", type=float, help="recorded seconds per level per round (default 12)")
    p.add_argument("--warmup", type=float, help="unrecorded seconds before each level (default 2)")
    p.add_argument("--server-warmup", type=float, help="unrecorded s at c=16 before the rounds (default 8)")
    p.add_argument("--service-module", default="service", help="module run as `python -m <module>`")
    p.add_argument("--cgroup-root", type=Path, default=CGROUP_ROOT, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help="JSON file (default bench/results/quota-<timestamp>.json)")
    p.add_argument("--report", type=Path, metavar="JSON", help="print the table of a saved run and exit")
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


def _row(name: str, number: int, one: dict, many: dict) -> dict:
    """One table row's numbers from the c=1 and c=16 levels of ``measure``."""
    return {
        "variant": name, "round": number, "c1_p50_ms": one["p50_ms"], "c1_p99_ms": one["p99_ms"],
        "c16_img_per_s": many["img_per_s"], "c16_p99_ms": many["p99_ms"],
        "c1_cpu_ms_per_image": one["cpu_ms_per_image"], "c16_cpu_ms_per_image": many["cpu_ms_per_image"],
        "c16_throttled": many["throttled"], "errors": one["errors"] + many["errors"],
    }  # fmt: skip


def _start(stack: contextlib.ExitStack, args: argparse.Namespace, cpu_root, config: RunConfig,
           workdir: Path) -> dict[str, Server]:
    """One service per sizing, each started inside its own quota group (both closed by ``stack``):
    ``{name: Server}``. Raises ``ServerError`` if one is not in its group."""
    servers = {}
    for name in args.variants:
        slug = _slug(name)
        group = stack.enter_context(QuotaGroup(cpu_root, args.cpu_quota, slug))
        (workdir / slug).mkdir()
        base, proc = stack.enter_context(run_service(
            args.service_module, config.model_file, config.labels_file, workdir / slug, _env(name),
            prefix=group.prefix,
        ))  # fmt: skip
        if proc.pid not in group.pids():
            raise ServerError(f"{name}: the service (pid {proc.pid}) is not in {group.path}")
        servers[name] = Server(base, proc.metrics_url, workdir / slug / "service.log", group.path, proc.pid)
    return servers


def served_images(metrics_url: str) -> float:
    """Answers ``/predict`` gave with 200 so far: the service's ``http_requests_total`` (Prometheus)."""
    with urllib.request.urlopen(metrics_url, timeout=30) as response:
        text = response.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text) if family.name == "http_requests"
        for sample in family.samples
        if sample.name == "http_requests_total" and sample.labels.get("route") == "/predict"
        and sample.labels.get("status") == "200"
    )  # fmt: skip


def _throttle(group: Path) -> tuple[int, int]:
    """``(nr_periods, nr_throttled)`` of a group's ``cpu.stat`` (both cgroup versions have them)."""
    stat = dict(line.split() for line in (group / "cpu.stat").read_text().splitlines() if line.strip())
    return int(stat.get("nr_periods", 0)), int(stat.get("nr_throttled", 0))


def measure(args: argparse.Namespace, config: RunConfig, server: Server, workdir: Path, tag: str,
            concurrency: int, warmups: tuple[float, float]) -> dict:
    """One level against one server: the load generator's numbers, plus what the server spent on it,
    read around the whole call (warm-up included, until the server is idle again): ``cpu_ms_per_image``
    (the server's process tree, psutil) and ``throttled`` (share of CFS periods that hit the quota)."""
    base, pid, metrics_url = server.base, server.pid, server.metrics_url
    cpu, served, (periods, throttled) = tree_cpu_s(pid), served_images(metrics_url), _throttle(server.group)
    (level,) = run_load(base, "/predict", config, workdir, tag, "predictions", [concurrency], warmups,
                        args.duration)  # fmt: skip
    wait_idle(pid)  # requests the load generator left in flight finish (and count) before the readings
    images = served_images(metrics_url) - served
    periods_now, throttled_now = _throttle(server.group)
    level["cpu_ms_per_image"] = 1000 * (tree_cpu_s(pid) - cpu) / images if images else None
    periods_now -= periods
    level["throttled"] = (throttled_now - throttled) / periods_now if periods_now > 0 else 0.0
    return level


def _rounds(args: argparse.Namespace, config: RunConfig, servers: dict, workdir: Path) -> list[dict]:
    """An unrecorded warm-up of every server (``args.server_warmup`` s at c=16, then c=1: the model's
    first calls of each batch shape are slow), then ``args.rounds`` rounds of c=1 then c=16 per
    sizing; in round r the sizings run in the order rotated by r - 1. One ``_row`` per round and sizing."""
    for name in args.variants:
        run_load(servers[name].base, "/predict", config, workdir, f"{_slug(name)}-warm-up", "predictions",
                 [16, 1], (args.server_warmup, args.warmup), 0.5)  # fmt: skip
        wait_idle(servers[name].pid)
    rows = []
    for number in range(1, args.rounds + 1):
        shift = (number - 1) % len(args.variants)
        for name in args.variants[shift:] + args.variants[:shift]:
            tag = f"{_slug(name)}-{number}"
            one = measure(args, config, servers[name], workdir, f"{tag}-c1", 1, (0.0, args.warmup))
            many = measure(args, config, servers[name], workdir, f"{tag}-c16", 16, (0.0, args.warmup))
            rows.append(_row(name, number, one, many))
            print(f"round {number} {name}: {rows[-1]}", file=sys.stderr, flush=True)
    return rows


def _slug(name: str) -> str:
    return name.replace("/", "-")


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
        sizing = {name: _sizing(name, server.log) for name, server in servers.items()}
    groups = {name: str(server.group) for name, server in servers.items()}
    return {"rows": rows, "sizing": sizing, "groups": groups}


def _header(meta: dict) -> str:
    """The line above the table: model, quota, cgroup, CPU model, load at start and end, rounds."""
    config, hw = meta["config"], meta["hardware"]
    return (f"\n{config['model_file'] or config['arch']} under a {config['cpu_quota']:g}-CPU quota (cgroup "
            f"{meta['cgroup']}) on {hw['cpu']}, {hw['cpus']} CPUs; load {hw['load_avg_1m_at_start']} at "
            f"start, {meta['load_avg_1m_at_end']} at end; {config['rounds']} interleaved rounds of "
            f"{config['duration']:g} s per level\n")


def main(argv: list[str] | None = None) -> int:
    """Run the quota benchmark; print the table and verdicts; return 0, 1 or ``SKIPPED`` (4)."""
    args = parse_args(argv)
    if args.report:
        document = json.loads(args.report.read_text())
        summary = quota_report.summarize(document["rows"], document["meta"]["config"]["variants"])
        print(_header(document["meta"]))
        print(quota_report.table(summary, document["sizing"]) + "\n\n" + quota_report.verdicts(summary))
        return 0
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
    print(_header(meta))
    print(quota_report.table(summary, results["sizing"]))
    print()
    print(quota_report.verdicts(summary))
    print(f"\nwall {meta['wall_s']} s; JSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
