"""The advisory policy on AKS API server access (checkov CKV_AZURE_6's rule), on props and the real stacks."""

from __future__ import annotations

import pytest
from pulumi_policy import EnforcementLevel

from policy import rules
from tests.policy.test_rules import policy, validate
from tests.stacks.conftest import run_stack

NAME = "aks-api-server-authorized-ranges"


@pytest.mark.parametrize(
    ("props", "warned"),
    [
        ({}, True),
        ({"apiServerAccessProfile": {}}, True),
        ({"apiServerAccessProfile": {"authorizedIPRanges": []}}, True),
        ({"apiServerAccessProfile": {"authorizedIPRanges": ["203.0.113.0/24"]}}, False),
        ({"apiServerAccessProfile": {"enablePrivateCluster": True}}, False),
    ],
)
def test_public_api_server_is_warned_about(props, warned):
    found = validate(NAME, rules.AKS, props)
    assert bool(found) is warned, found
    if warned:
        assert "aks-image-classifier:apiServerAuthorizedIpRanges" in found[0]


def test_it_warns_without_blocking():
    assert policy(NAME).enforcement_level == EnforcementLevel.ADVISORY


@pytest.mark.parametrize(("stack", "warned"), [("dev", True), ("prod", False)])
def test_real_stacks(stack, warned):
    (aks,) = [r for r in run_stack(stack).resources if r.type == rules.AKS]
    assert bool(validate(NAME, rules.AKS, {**aks.inputs, **aks.state})) is warned
