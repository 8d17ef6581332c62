"""docs/container-apps.md states figures that come from code and config: each is derived here and its text
asserted, so the page changes when the code does."""

from __future__ import annotations

import re

import yaml

from stacks import container_app, pod_spec, revisions
from stacks.config import containerapps
from tests.harness.stack_mocks import stack_file_config
from tests.stacks.conftest import ROOT

DOC = " ".join((ROOT / "docs" / "container-apps.md").read_text().split())
DEFAULTS = {
    k: v.get("default") for k, v in yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"].items()
}


def test_probe_table_follows_the_code():
    s, pods = container_app.STARTUP, pod_spec.STARTUP
    window = container_app.STARTUP_INITIAL_DELAY_S + s.budget_s
    assert (
        f"after {container_app.STARTUP_INITIAL_DELAY_S} s, every {s.period_s} s, {s.failures} failures: "
        f"**restarted only if not answering after {window} s**"
    ) in DOC
    assert f"every {pods.period_s} s, {pods.failures} failures ({pods.budget_s} s)" in DOC
    live, ready = pod_spec.LIVENESS, pod_spec.READINESS
    assert f"every {live.period_s} s, timeout {live.timeout_s} s, {live.failures} failures | the same" in DOC
    assert (
        f"every {ready.period_s} s, timeout {ready.timeout_s} s, {ready.failures} failures | the same" in DOC
    )
    assert f"The {s.period_s} s period adds at most {s.period_s} s" in DOC


def test_revision_name_figures_follow_the_code():
    assert f"the suffix is {revisions.SUFFIX_LENGTH} characters" in DOC
    assert f"any app name of up to {revisions.MAX_APP_NAME} fits" in DOC
    assert f"at most {revisions.MAX_REVISION_NAME} characters with the app name" in DOC
    assert (
        f"`<appName>--r<{revisions.DIGEST_HEX} hex of the image digest>-<{revisions.TEMPLATE_HEX} hex" in DOC
    )


def test_allocations_and_defaults_follow_the_config():
    assert (
        f"0.25 to {containerapps.CONSUMPTION_ONLY_MAX_CPU} in steps of {containerapps.CPU_STEP} with memory "
        f"exactly twice that in GiB"
    ) in DOC
    assert (
        f"up to {containerapps.CONSUMPTION_PROFILE_MAX_CPU} / `8Gi` on the Consumption workload profile"
        in DOC
    )
    for key in ("containerAppMinReplicas", "containerAppConcurrency", "canaryPercent"):
        assert re.search(rf"`{key}`[^|]* \| `{DEFAULTS[key]}`", DOC), key


def test_cost_per_replica_hour_follows_the_stated_prices_and_the_stack_file():
    prices = re.search(
        r"\$([0-9.]+) per vCPU-second and \$([0-9.]+) per GiB-second while active", DOC
    ).groups()
    config = stack_file_config("aca", ROOT)
    cpu = float(config["aks-image-classifier:cpuLimit"])
    gib = float(config["aks-image-classifier:memoryLimit"].removesuffix("Gi"))
    per_hour = 3600 * (cpu * float(prices[0]) + gib * float(prices[1]))
    assert f"**${per_hour:.3f} per replica-hour** ({cpu:g} vCPU + {gib:g} GiB active)" in DOC
    assert f"≈ ${per_hour * 730:.0f} per replica-month" in DOC
    free_hours = min(180_000 / cpu, 360_000 / gib) / 3600
    assert f"the first {free_hours:.0f} replica-hours a month are free" in DOC
    assert re.search(r"\*\*\d{4}-\d{2}-\d{2}\*\*, not re-read live", DOC)
