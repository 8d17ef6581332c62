"""tools/serving_cost.py: the cost per million images per VM size, from measured img/s per vCPU and the
prices of docs/deploy.md's table, and the docs that show it (docs/performance.md's tables, the README)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.stack_mocks import stack_file_config
from tools import serving_cost
from tools.serving_cost import (
    AMX,
    FAMILY_CPU,
    KUBE_RESERVED_MILLICORES,
    THROUGHPUT,
    UNMEASURED,
    allocatable_vcpus,
    markdown,
    rows,
    size_family,
    summary,
    vm_prices,
)

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = (ROOT / "docs" / "deploy.md").read_text()
PERFORMANCE = (ROOT / "docs" / "performance.md").read_text()
README = (ROOT / "README.md").read_text()
P = "aks-image-classifier:"


def flat(text: str) -> str:
    return " ".join(text.split())


def _doc_tables() -> str:
    start = PERFORMANCE.index("<!-- serving-cost:")
    body = PERFORMANCE[PERFORMANCE.index("\n", start) + 1 : PERFORMANCE.index("<!-- /serving-cost -->")]
    return body.strip()


def test_performance_doc_shows_exactly_what_the_tool_prints(capsys):
    serving_cost.main(["--markdown"])
    printed = capsys.readouterr().out.strip()
    assert printed == markdown(vm_prices(DEPLOY))
    assert _doc_tables() == printed


def test_readme_gives_the_tools_summary():
    assert summary(vm_prices(DEPLOY)) in flat(README)


def test_the_tool_reads_the_deploy_docs_price_table_and_nothing_else(tmp_path, capsys):
    """The default price file is docs/deploy.md; another table gives other costs, in proportion."""
    assert serving_cost.DEPLOY_DOC == ROOT / "docs" / "deploy.md"
    doubled = DEPLOY.replace("| $0.249 / $0.498 per hour |", "| $0.498 / $0.996 per hour |")
    assert doubled != DEPLOY, "the Ddsv6 price row of docs/deploy.md"
    (tmp_path / "deploy.md").write_text(doubled)
    serving_cost.main(["--deploy-doc", str(tmp_path / "deploy.md")])
    printed = capsys.readouterr().out
    before = {r.size: r.service_cost for r in rows(vm_prices(DEPLOY))}
    after = {r.size: r.service_cost for r in rows(vm_prices(doubled))}
    for size in ("Standard_D4ds_v6", "Standard_D8ds_v6"):
        assert after[size] == pytest.approx(2 * before[size])
        assert f"{size} ${after[size]:.3f}" in printed


def test_every_priced_size_has_a_row_with_its_price():
    prices = vm_prices(DEPLOY)
    assert {r.size: r.price for r in rows(prices)} == prices
    assert prices["Standard_D4ds_v6"] * 2 == pytest.approx(prices["Standard_D8ds_v6"])


def test_cost_is_the_price_over_the_images_an_hour_of_the_allocatable_cpus():
    measured = [r for r in rows(vm_prices(DEPLOY)) if r.throughput is not None]
    assert measured, "at least one priced size of a measured CPU class"
    for r in measured:
        _, vcpus = size_family(r.size)
        assert r.allocatable == pytest.approx(vcpus - KUBE_RESERVED_MILLICORES[vcpus] / 1000)
        images_an_hour = r.throughput.service_c16 / r.throughput.vcpus * r.allocatable * 3600
        assert r.service_cost * images_an_hour / 1e6 == pytest.approx(r.price)
        # The model alone is faster than the service, so it is the cheaper bound.
        assert r.model_alone_cost < r.service_cost


def test_sizes_of_an_unmeasured_family_get_no_figure():
    unmeasured = [r for r in rows(vm_prices(DEPLOY)) if size_family(r.size)[0] in UNMEASURED]
    assert unmeasured, "the Ddsv5 sizes of the price table"
    for r in unmeasured:
        assert r.throughput is None and r.service_cost is None and r.model_alone_cost is None
        assert f"| {r.size} | ${r.price:.3f} | {UNMEASURED[size_family(r.size)[0]]} |" in _doc_tables()


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_workload_pools_size_has_amx_and_every_stack_size_is_classified(stack):
    config = stack_file_config(stack, ROOT)
    family, _ = size_family(config[P + "nodeVmSize"])
    assert FAMILY_CPU.get(family) == AMX, (stack, family)
    system_family, _ = size_family(config[P + "systemNodeVmSize"])
    assert system_family in FAMILY_CPU or system_family in UNMEASURED


def test_every_measurement_is_dated_and_says_how_it_was_taken():
    for cls, t in THROUGHPUT.items():
        assert t.vcpus > 0 and t.model_alone > t.service_c16 > 0, cls
        assert t.status in ("measured", "estimated"), cls
        assert len(t.date) == 10 and t.date[4] == t.date[7] == "-", cls
        assert t.command.startswith("python -m bench"), cls
    assert set(FAMILY_CPU.values()) <= set(THROUGHPUT)


def test_size_names_and_kube_reserved_cpu():
    assert size_family("Standard_D4ds_v6") == ("Ddsv6", 4)
    assert size_family("Standard_D16ads_v5") == ("Dadsv5", 16)
    with pytest.raises(ValueError, match="VM size"):
        size_family("D4ds_v6")
    assert allocatable_vcpus(8) == pytest.approx(7.82)
    with pytest.raises(KeyError):
        allocatable_vcpus(3)  # not a row of AKS's table


def test_price_rows_that_do_not_parse_are_errors():
    with pytest.raises(ValueError, match="2 sizes, 1 prices"):
        vm_prices("<!-- price-table -->\n| Standard_D2ds_v5 / D4ds_v5 | $0.113 per hour |\n")
    with pytest.raises(ValueError, match="no `"):
        vm_prices("<!-- price-table -->\n| item | unit price used |\n")
    prices = vm_prices("<!-- price-table -->\n| Standard_D2ds_v5 / D4ds_v5 | $0.1 / $0.2 per hour |\n")
    assert prices == {"Standard_D2ds_v5": 0.1, "Standard_D4ds_v5": 0.2}
