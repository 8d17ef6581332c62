"""docs/managed-prometheus.md's cost figures are what `tools.monitoring_cost` computes from the code."""

from __future__ import annotations

from pathlib import Path

from stacks import scrape
from tools import monitoring_cost as cost

DOC = (Path(__file__).resolve().parents[2] / "docs" / "managed-prometheus.md").read_text()
#: The (pods, requests/s) rows of the doc's table.
ROWS = ((1, 2), (3, 20), (12, 200))


def test_the_table_is_the_tools_output():
    for pods, rps in ROWS:
        assert cost.row(cost.estimate(pods, rps)) in DOC


def test_the_stated_inputs_are_the_codes():
    per_pod = cost.series_per_pod()
    assert f"one pod exports {per_pod} samples per scrape" in DOC
    assert f"scraped every {cost.scrape_seconds()} s" in DOC and scrape.SCRAPE_INTERVAL == "30s"
    per_day = per_pod * 86_400 / cost.scrape_seconds() / 1e6
    assert f"{per_day:.2f} M samples per pod per day" in DOC
    assert f"access-log line of {cost.access_log_bytes()} bytes" in DOC
    assert f"assumed {cost.ROW_OVERHEAD_BYTES} bytes" in DOC
    assert f"${cost.PRICES.prometheus_per_10m_samples:.2f} per 10 million" in DOC
    assert (
        f"${cost.PRICES.log_analytics_per_gb:.2f} per GB after {cost.PRICES.log_analytics_free_gb:g} GB"
        in DOC
    )
    mid = cost.estimate(3, 20)
    assert f"about {round(mid.log_usd / mid.prometheus_usd, -1):.0f} times" in DOC


def test_series_count_follows_the_registry():
    """The count is read from the exposition, not written down: one more route adds its series."""
    before = cost.series_per_pod()
    routes = cost.ROUTES
    try:
        cost.ROUTES = (*routes, "/version")
        assert cost.series_per_pod() > before
    finally:
        cost.ROUTES = routes


def test_cost_scales_with_pods_and_requests():
    small, large = cost.estimate(1, 2), cost.estimate(2, 4)
    assert large.samples == 2 * small.samples
    assert abs(large.log_gb - 2 * small.log_gb) <= 0.1  # both rounded to 0.1 GB
    assert small.log_usd == 0.0  # within the monthly free GB
