"""Arithmetic and table of the CPU-quota benchmark (``bench.quota``): medians over interleaved rounds,
their spread, the best explicit sizing and the ratio default / best against the bar."""

from __future__ import annotations

import statistics

#: The bar: under a 1-CPU quota the default sizing is within 5 % of the best
#: explicit sizing: img/s at concurrency 16 >= 95 % of the best's, p99 at concurrency 1 <= 105 %.
WITHIN = 0.05
DEFAULT = "default"
METRICS = ("c1_p50_ms", "c1_p99_ms", "c16_img_per_s", "c16_p99_ms", "c1_cpu_ms_per_image",
           "c16_cpu_ms_per_image", "c16_throttled")


def parse_variant(text: str) -> tuple[int, int] | None:
    """``"default"`` -> None (the service sizes itself); ``"T/D"`` -> ``(TORCH_THREADS, DECODE_THREADS)``,
    e.g. ``"1/2"`` -> ``(1, 2)``. Raises ``ValueError`` for anything else or a count < 1."""
    if text == DEFAULT:
        return None
    torch, sep, decode = text.partition("/")
    try:
        pair = (int(torch), int(decode)) if sep else None
    except ValueError:
        pair = None
    if pair is None or min(pair) < 1:
        raise ValueError(f"a sizing is 'default' or TORCH_THREADS/DECODE_THREADS like 1/2, got {text!r}")
    return pair


def _spread(values: list[float]) -> dict:
    """``{"median", "min", "max", "n"}`` of the numbers present (None entries dropped)."""
    present = [v for v in values if v is not None]
    if not present:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": statistics.median(present), "min": min(present), "max": max(present), "n": len(present)}


def summarize(rows: list[dict], variants: list[str]) -> dict:
    """Per sizing, the median and range over rounds; then default vs the best explicit sizing.

    ``rows``: one per (round, sizing): ``{"variant", "round", "c1_p50_ms", "c1_p99_ms", "c16_img_per_s",
    "c16_p99_ms", "c16_cpu_ms_per_image"?, "c16_throttled"?, "errors"}``. The best explicit sizing is
    the one with the highest median img/s at c=16 (``best_throughput``), resp. the lowest median p99 at
    c=1 (``best_p99``). The bar reads **paired** ratios, as ``bench.rounds`` does: in each round,
    default / that sizing, measured seconds apart; ``default_vs_best_throughput`` is their median
    (>= 0.95 passes), ``default_vs_best_p99`` the median of the p99 ratios (<= 1.05 passes);
    ``per_round_throughput`` / ``per_round_p99`` list them, ``ratio_of_medians`` has the unpaired
    ratios for comparison. ``default_vs_best_cpu_per_image``: default median CPU ms per image at c=16
    / the lowest explicit median (information: CPU time is what a quota rations, and it moves less with
    the host's load than wall-clock numbers). A ratio is None without a ``default`` row or an explicit one.
    """
    table = {
        name: {m: _spread([r.get(m) for r in rows if r["variant"] == name]) for m in METRICS}
        for name in variants
    }
    explicit = [name for name in variants if name != DEFAULT]

    def best(metric: str, pick) -> str | None:
        have = [n for n in explicit if table[n][metric]["n"]]
        return pick(have, key=lambda n: table[n][metric]["median"], default=None)

    best_tput, best_p99 = best("c16_img_per_s", max), best("c1_p99_ms", min)
    best_cpu = best("c16_cpu_ms_per_image", min)
    per_round_tput = _paired(rows, "c16_img_per_s", best_tput)
    per_round_p99 = _paired(rows, "c1_p99_ms", best_p99)
    tput, p99 = _median(per_round_tput), _median(per_round_p99)
    errors = sum(r["errors"] for r in rows)
    return {
        "variants": table,
        "errors": errors,
        "best_throughput": best_tput,
        "best_p99": best_p99,
        "default_vs_best_throughput": tput,
        "default_vs_best_p99": p99,
        "per_round_throughput": per_round_tput,
        "per_round_p99": per_round_p99,
        "ratio_of_medians": {
            "throughput": _median_ratio(table, "c16_img_per_s", best_tput),
            "p99": _median_ratio(table, "c1_p99_ms", best_p99),
        },
        "best_cpu_per_image": best_cpu,
        "default_vs_best_cpu_per_image": _median_ratio(table, "c16_cpu_ms_per_image", best_cpu),
        "pass": {
            "throughput": tput is not None and tput >= 1 - WITHIN,
            "p99": p99 is not None and p99 <= 1 + WITHIN,
            "zero_errors": errors == 0 and bool(rows),
        },
    }


def _paired(rows: list[dict], metric: str, other: str | None) -> list[float | None]:
    """Per round (in order), ``default`` / ``other`` for ``metric``; None where a side is missing."""
    ratios = []
    for number in sorted({r["round"] for r in rows}):
        here = {r["variant"]: r.get(metric) for r in rows if r["round"] == number}
        ratios.append(_ratio(here.get(DEFAULT), here.get(other)))
    return ratios


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _median_ratio(table: dict, metric: str, other: str | None) -> float | None:
    default = table.get(DEFAULT)
    return _ratio(default and default[metric]["median"], other and table[other][metric]["median"])


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return numerator / denominator if numerator is not None and denominator else None


def _fmt(spread: dict, digits: int = 1) -> str:
    """``"204.1 (198.0–230.5)"``: median and range; ``–`` when there is no number."""
    if spread["median"] is None:
        return "–"
    if spread["n"] == 1:
        return f"{spread['median']:.{digits}f}"
    return f"{spread['median']:.{digits}f} ({spread['min']:.{digits}f}–{spread['max']:.{digits}f})"


def table(summary: dict, sizing: dict[str, str]) -> str:
    """A Markdown table, one row per sizing: threads used, c=1 p50/p99 ms, c=16 img/s and p99 ms,
    each the median over rounds with the range in brackets. ``sizing[name]`` says what each ran with
    (the service's own start-up line for ``default``). CPU ms/img: the server's CPU time per image
    answered; throttled: share of CFS periods in which the group used up its quota."""
    rows = [
        "| sizing | torch / decode threads | c=1 p50 ms | c=1 p99 ms | c=16 img/s | c=16 p99 ms "
        "| c=16 CPU ms/img | c=16 throttled |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, spread in summary["variants"].items():
        rows.append(
            f"| {name} | {sizing.get(name, '?')} | {_fmt(spread['c1_p50_ms'])} | {_fmt(spread['c1_p99_ms'])} "
            f"| {_fmt(spread['c16_img_per_s'], 2)} | {_fmt(spread['c16_p99_ms'])} "
            f"| {_fmt(spread['c16_cpu_ms_per_image'])} | {_fmt(spread['c16_throttled'], 2)} |"
        )
    return "\n".join(rows)


def verdicts(summary: dict) -> str:
    """Default vs the best explicit sizing, one line per metric, ``ok`` / ``BELOW BAR``."""

    def num(value: float | None) -> str:
        return "–" if value is None else f"{value:.3f}"

    ok, medians = summary["pass"], summary["ratio_of_medians"]
    tput_rounds = ", ".join(num(r) for r in summary["per_round_throughput"])
    p99_rounds = ", ".join(num(r) for r in summary["per_round_p99"])
    return "\n".join([
        f"c=16 img/s: default / best explicit ({summary['best_throughput']}) = "
        f"{num(summary['default_vs_best_throughput'])} (bar >= {1 - WITHIN:.2f}; median of paired rounds: "
        f"{tput_rounds}; ratio of medians {num(medians['throughput'])}) "
        f"{'ok' if ok['throughput'] else 'BELOW BAR'}",
        f"c=1 p99: default / best explicit ({summary['best_p99']}) = {num(summary['default_vs_best_p99'])} "
        f"(bar <= {1 + WITHIN:.2f}; median of paired rounds: {p99_rounds}; ratio of medians "
        f"{num(medians['p99'])}) {'ok' if ok['p99'] else 'BELOW BAR'}",
        f"c=16 CPU ms per image: default / best explicit ({summary['best_cpu_per_image']}) = "
        f"{num(summary['default_vs_best_cpu_per_image'])} (information: less host noise)",
        f"errors: {summary['errors']} {'ok' if ok['zero_errors'] else 'BELOW BAR'}",
    ])  # fmt: skip
