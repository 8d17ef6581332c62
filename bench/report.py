"""Turn a run's raw results into the bar's ratios, one printed table and a JSON file."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

#: The bar: at concurrency 16, service >= 0.85 x model alone and >= 1.5 x TorchServe; at
#: concurrency 1, p99 <= 1.5 x the model's single-image time + 10 ms.
RATIO_CONCURRENCY = 16
MIN_VS_MODEL, MIN_VS_TORCHSERVE = 0.85, 1.5
P99_FACTOR, P99_SLACK_MS = 1.5, 10.0
#: Issue 20's latency target, reported beside the bar (not part of it): at concurrency 1, p50 <= 15 ms. It
#: cannot be met where the model alone's single image takes most of it (docs/performance.md).
P50_C1_TARGET_MS = 15.0


def hardware() -> dict:
    """CPU model name (``/proc/cpuinfo``, as ``lscpu`` shows it), logical CPUs usable, memory (GiB), load."""
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import psutil

    return {
        "cpu": model,
        "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "load_avg_1m_at_start": round(os.getloadavg()[0], 2),
    }


def ratio_concurrency(levels: list[int]) -> int:
    """Where the ratios are taken: concurrency 16, or the highest level run when 16 is not among them."""
    return RATIO_CONCURRENCY if RATIO_CONCURRENCY in levels else max(levels)


def _level(result: dict, concurrency: int) -> dict | None:
    return next((lv for lv in result.get("levels", []) if lv["concurrency"] == concurrency), None)


def _ratios(result: dict) -> list[float]:
    return [row["ratio"] for row in result.get("paired", {}).get("rounds", [])]


def _efficiency(result: dict) -> float | None:
    return result.get("paired", {}).get("efficiency")  # None: no rounds, or they failed ({"error": ...})


def summarize(results: dict, levels: list[int]) -> dict:
    """The bar's ratios and verdicts; a ratio is None where a side has no number.

    Ratios are taken at concurrency 16, or at the highest level run when 16 is not among ``levels``.
    Sequential ratios divide numbers taken minutes apart; paired ones (``bench.rounds``) divide numbers
    taken seconds apart: service / model alone = the service's median efficiency over its rounds,
    service / TorchServe = the ratio of the two efficiencies. The bar reads the paired ratio where
    there is one (``basis``), the sequential one otherwise. Errors in the rounds count too.
    """
    at = ratio_concurrency(levels)
    service, torchserve = _level(results["service"], at), _level(results["torchserve"], at)
    alone = results["model_alone"]
    ceiling, single = alone.get("ceiling_img_per_s"), alone.get("single_image_ms")
    sequential = {
        "service_vs_model_alone": service["img_per_s"] / ceiling if service and ceiling else None,
        "service_vs_torchserve": (
            service["img_per_s"] / torchserve["img_per_s"]
            if service and torchserve and torchserve["img_per_s"]
            else None
        ),
    }
    efficiency, ts_efficiency = _efficiency(results["service"]), _efficiency(results["torchserve"])
    paired = {
        "service_vs_model_alone": efficiency,
        "service_vs_torchserve": efficiency / ts_efficiency
        if efficiency is not None and ts_efficiency
        else None,
    }
    basis = {key: "sequential" if paired[key] is None else "paired" for key in paired}
    vs_model, vs_ts = (sequential[key] if paired[key] is None else paired[key] for key in paired)
    one = _level(results["service"], 1)
    p99_bound = P99_FACTOR * single + P99_SLACK_MS if single else None
    errors = sum(lv["errors"] for lv in results["service"].get("levels", []))
    errors += results["service"].get("paired", {}).get("errors", 0)
    return {
        "ratio_concurrency": at,
        "service_vs_model_alone": vs_model,
        "service_vs_torchserve": vs_ts,
        "basis": basis,
        "sequential": sequential,
        "paired": paired,
        "paired_rounds": {key: _ratios(results[key]) for key in ("service", "torchserve")},
        "p99_c1_ms": one["p99_ms"] if one else None,
        "p99_c1_bound_ms": p99_bound,
        "p50_c1_ms": one["p50_ms"] if one else None,
        "single_image_ms": single,
        "p50_c1_target_met": bool(one and one["p50_ms"] is not None and one["p50_ms"] <= P50_C1_TARGET_MS),
        "service_errors": errors if "levels" in results["service"] else None,
        "dtype": alone.get("dtype"),
        "top1_agreement_vs_float32": alone.get("top1_agreement_vs_float32"),
        "pass": {
            "vs_model_alone": vs_model is not None and vs_model >= MIN_VS_MODEL,
            "vs_torchserve": vs_ts is not None and vs_ts >= MIN_VS_TORCHSERVE,
            "p99_c1": bool(one and p99_bound and one["p99_ms"] is not None and one["p99_ms"] <= p99_bound),
            "zero_errors": errors == 0 and "levels" in results["service"],
        },
    }


def _fmt(value, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def table(results: dict) -> str:
    """A Markdown table: model alone per batch size, then each server per concurrency level."""
    rows = [
        "| target | concurrency / batch | img/s | p50 ms | p99 ms | errors | RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    alone = results["model_alone"]
    if "error" in alone:
        rows.append(f"| model alone | – | {alone['error'][:80]} | | | | |")
    for timing in alone.get("batches", []):
        per_image = timing["ms_per_batch"] / timing["batch_size"]
        rows.append(
            f"| model alone | batch {timing['batch_size']} | {_fmt(timing['img_per_s'])} "
            f"| {_fmt(per_image)} /img | – | – | – |"
        )
    for key, name in (("service", "service"), ("torchserve", "TorchServe")):
        result = results[key]
        why = result.get("skipped") or result.get("error")
        if why:
            first = why.strip().splitlines()[0][:100]
            rows.append(f"| {name} | – | not run: {first} | | | | |")
            continue
        for lv in result["levels"]:
            rows.append(
                f"| {name} | c={lv['concurrency']} | {_fmt(lv['img_per_s'])} | {_fmt(lv['p50_ms'])} "
                f"| {_fmt(lv['p99_ms'])} | {lv['errors']} | {_fmt(result['rss_mib'], 0)} |"
            )
    return "\n".join(rows + _paired_table(results))


def _paired_table(results: dict) -> list[str]:
    """A second table, one row per paired round: model alone and server img/s seconds apart."""
    rows = []
    for key, name in (("service", "service"), ("torchserve", "TorchServe")):
        paired = results[key].get("paired")
        if paired and "error" in paired:
            rows.append(
                f"| {name} | – | not run: {paired['error'].strip().splitlines()[0][:100]} | | | | | |"
            )
        for i, row in enumerate(paired.get("rounds", []) if paired else [], 1):
            rows.append(
                f"| {name} | {i} | c={paired['concurrency']} | {_fmt(row['server_img_per_s'])} "
                f"| batch {paired['batch_size']} | {_fmt(row['model_alone_img_per_s'])} "
                f"| {_fmt(row['ratio'], 3)} | {row['errors']} |"
            )
    if not rows:
        return []
    head = [
        "",
        "| paired round | # | concurrency | img/s | model alone | img/s | server / model alone | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    return head + rows


def verdicts(summary: dict) -> str:
    """The ratios against the bar, one line each (``ok`` / ``BELOW BAR``)."""

    def mark(ok: bool) -> str:
        return "ok" if ok else "BELOW BAR"

    at, ok = summary["ratio_concurrency"], summary["pass"]

    def basis(key: str) -> str:  # the paired ratio carries the sequential one alongside
        if summary["basis"][key] != "paired":
            return ""
        rounds, sequential = len(summary["paired_rounds"]["service"]), summary["sequential"][key]
        return f"; paired, median of {rounds} rounds; sequential {_fmt(sequential, 3)}"

    agreement = summary.get("top1_agreement_vs_float32")
    extra = []
    if agreement:
        extra.append(
            f"{summary['dtype']} vs float32 on {agreement['photos']} photos: top-1 agrees on "
            f"{agreement['agree']} ({agreement['distinct_float32_classes']} distinct float32 classes), "
            f"top-5 overlap {agreement['top5_overlap']:.2f}, "
            f"max |dp| {agreement['max_abs_probability_difference']:.4f}"
        )
    return "\n".join(
        [
            f"c={at}: service / model alone = {_fmt(summary['service_vs_model_alone'], 3)} "
            f"(bar >= {MIN_VS_MODEL}{basis('service_vs_model_alone')}) {mark(ok['vs_model_alone'])}",
            f"c={at}: service / TorchServe = {_fmt(summary['service_vs_torchserve'], 3)} "
            f"(bar >= {MIN_VS_TORCHSERVE}{basis('service_vs_torchserve')}) {mark(ok['vs_torchserve'])}",
            f"c=1: service p99 = {_fmt(summary['p99_c1_ms'])} ms (bar <= {P99_FACTOR} x single image + "
            f"{P99_SLACK_MS:.0f} = {_fmt(summary['p99_c1_bound_ms'])} ms) {mark(ok['p99_c1'])}",
            f"service errors at all levels: {summary['service_errors']} {mark(ok['zero_errors'])}",
            f"c=1: service p50 = {_fmt(summary.get('p50_c1_ms'))} ms (target <= {P50_C1_TARGET_MS:.0f} ms; "
            f"the model alone's single image {_fmt(summary.get('single_image_ms'))} ms) "
            f"{'ok' if summary.get('p50_c1_target_met') else 'ABOVE TARGET'}",
            *extra,
        ]
    )


def write_json(document: dict, out: Path | None, results_dir: Path) -> Path:
    """Write ``document`` to ``out``, or to ``<results_dir>/<timestamp>.json`` and ``latest.json``."""
    text = json.dumps(document, indent=2)
    if out is None:
        results_dir.mkdir(parents=True, exist_ok=True)
        out = results_dir / f"{document['meta']['started'].replace(':', '')}.json"
        (results_dir / "latest.json").write_text(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return out
