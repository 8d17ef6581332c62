"""The deploy docs (README "Deploying to Azure (Pulumi)", docs/deploy.md) agree with the stack files."""

from __future__ import annotations

import re

import pytest

from tests.harness.stack_mocks import stack_file_config
from tests.stacks.conftest import ROOT

#: vCPUs per VM size, Azure "Dsv5 series" specifications (learn.microsoft.com, sizes/general-purpose/dsv5).
VCPUS = {f"Standard_D{n}{d}s_v5": n for n in (2, 4, 8) for d in ("", "d")}  # Dsv5 / Ddsv5: n vCPUs
P = "aks-image-classifier:"


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start : end if end != -1 else None]


def _quota_rows() -> dict[str, tuple[int, int]]:
    doc = (ROOT / "docs" / "deploy.md").read_text()
    rows = re.findall(r"^\| (\w+) \| .*? \| .*? \| (\d+) \| (\d+) \|$", doc, flags=re.M)
    return {stack: (int(low), int(high)) for stack, low, high in rows}


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_documented_vcpu_quota_follows_from_the_stack_file(stack):
    """vCPUs = system nodes × vCPUs(system size) + workload nodes × vCPUs(workload size), at the autoscaler's
    minimum and maximum; the README repeats the same numbers."""
    config = stack_file_config(stack, ROOT)
    system = int(config[P + "systemNodeCount"]) * VCPUS[config[P + "systemNodeVmSize"]]
    per_node = VCPUS[config[P + "nodeVmSize"]]
    expected = (
        system + int(config[P + "nodeMinCount"]) * per_node,
        system + int(config[P + "nodeMaxCount"]) * per_node,
    )
    assert _quota_rows()[stack] == expected
    readme = " ".join(_section((ROOT / "README.md").read_text(), "## Deploying to Azure (Pulumi)").split())
    assert f"**{stack} {expected[0]} vCPUs at minimum scale, {expected[1]} at maximum**" in readme


def test_readme_deploy_section_covers_what_a_first_deployment_needs():
    readme = _section((ROOT / "README.md").read_text(), "## Deploying to Azure (Pulumi)")
    for namespace in (
        "Microsoft.ContainerService",
        "Microsoft.ContainerRegistry",
        "Microsoft.OperationalInsights",
        "Microsoft.Insights",
    ):
        assert namespace in readme, namespace
    assert "az provider register" in readme
    assert "az aks get-versions -l <region>" in readme
    assert "buildOnPreview" in readme and "builds the image" in readme
    assert "https://download.pytorch.org/whl/cpu" in readme and "weights" in readme
    assert "PULUMI_K8S_DELETE_UNREACHABLE=true pulumi destroy" in readme
    assert "20 minutes" in readme and "AcrPull" in readme
    assert "(cd policy && pulumi install)" in readme
    assert "list-price estimate" in readme


def test_cost_estimate_is_dated_sourced_and_labelled_as_an_estimate():
    doc = _section((ROOT / "docs" / "deploy.md").read_text(), "## Monthly cost estimate per stack")
    assert "List-price estimates" in doc
    assert re.search(r"\*\*\d{4}-\d{2}-\d{2}\*\*", doc), "the prices need their date"
    assert "azure.microsoft.com/pricing" in doc
