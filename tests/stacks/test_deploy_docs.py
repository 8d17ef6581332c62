"""The README's "Deploying to Azure (Pulumi)" section covers a first deployment (quota and cost figures:
tests/test_readme.py)."""

from __future__ import annotations

import re

from tests.stacks.conftest import ROOT

P = "aks-image-classifier:"


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start : end if end != -1 else None]


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
