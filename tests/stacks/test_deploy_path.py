"""What a real `pulumi preview` / `up` / `refresh` does with the program, beyond what mocks check.

Each test names the rule of the real tool it models (Pulumi engine, a provider's source, an Azure doc).
"""

from __future__ import annotations

import ast
import enum
import inspect
from pathlib import Path
from typing import Any

import pulumi_azure_native
import pytest
from pulumi.output import Unknown
from pulumi_azure_native import containerregistry, containerservice, monitor, operationalinsights

from stacks.cluster import WORKLOAD_NODE_SELECTOR
from stacks.config import DRAIN_MARGIN_S, cpu_millicores
from stacks.local_image import load_command
from tests.harness.stack_mocks import MockRun
from tests.stacks.conftest import ROOT, run_stack

AKS = "azure-native:containerservice:ManagedCluster"
POOL = "azure-native:containerservice:AgentPool"
IMAGE = "docker-build:index:Image"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
COMMAND = "command:local:Command"
STACKS = ("dev", "prod", "local")


def _known_differences(preview: Any, update: Any, path: str = "") -> list[str]:
    """Paths where two input trees differ, skipping every value that is unknown in the preview."""
    if isinstance(preview, Unknown) or isinstance(update, Unknown):
        return []
    if isinstance(preview, dict) and isinstance(update, dict):
        return [
            d
            for key in sorted(set(preview) | set(update))
            for d in _known_differences(preview.get(key), update.get(key), f"{path}.{key}")
        ]
    if isinstance(preview, list) and isinstance(update, list) and len(preview) == len(update):
        pairs = enumerate(zip(preview, update, strict=True))
        return [d for i, (p, u) in pairs for d in _known_differences(p, u, f"{path}[{i}]")]
    return [] if preview == update else [f"{path}: preview {preview!r} != update {update!r}"]


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("build_on_preview", ["true", "false"])
def test_preview_and_update_give_every_resource_the_same_known_inputs(stack, build_on_preview):
    """The engine diffs the inputs a preview registers against the last update's (pulumi/pulumi step
    generator); any known input that depends on `is_dry_run()` shows as a change in every preview of an
    unchanged stack, so `pulumi preview --expect-no-changes` could never pass. Values unknown in the preview
    are exempt: docker-build's Diff ignores a registry password (provider `image.go` Diff)."""
    preview = run_stack(stack, preview=True, buildOnPreview=build_on_preview)
    update = run_stack(stack, buildOnPreview=build_on_preview)
    previewed = {r.urn: r for r in preview.resources}
    updated = {r.urn: r for r in update.resources}
    assert sorted(previewed) == sorted(updated)
    differences = {
        urn.rsplit("::", 1)[-1]: diff
        for urn, p in previewed.items()
        if (diff := _known_differences(p.inputs, updated[urn].inputs))
    }
    assert not differences, differences
    image = preview.one(IMAGE).inputs
    assert image["buildOnPreview"] is (build_on_preview == "true")


def test_image_pushes_only_on_update_by_the_provider_not_by_a_dry_run_gate():
    """docker-build never exports during a preview (provider `image.go` Create: a dry run returns before any
    registry export), so `push` is simply true for the registry image; the preview that builds needs a known
    registry password, because the provider skips a preview build when any input is unknown
    (`registryKeeper`, `buildable`)."""
    preview = run_stack("dev", preview=True)
    image = preview.one(IMAGE).inputs
    assert image["push"] is True
    (registry,) = image["registries"]
    assert not isinstance(registry["password"], Unknown)
    assert "azure-native:authorization:getClientToken" in preview.invokes


def _reset(old: dict, new: dict, paths: list[str]) -> dict:
    """Pulumi's ignoreChanges for top-level keys: the new inputs take the old value (pulumi/pulumi
    `PropertyPath.Reset`). Reset never adds or removes array elements, so a path with an index into a list
    whose length changed is an error there; the program only uses top-level keys, asserted here."""
    assert all("[" not in p and "." not in p for p in paths), paths
    result = dict(new)
    for path in paths:
        if path in old:
            result[path] = old[path]
        else:
            result.pop(path, None)
    return result


def _after_refresh(run: MockRun) -> tuple[dict, dict]:
    """State inputs of the cluster and the workload pool after AKS has auto-upgraded both to 1.35.2, the
    autoscaler has scaled the pool to its maximum, and a `refresh` has read the cluster back with the
    separate AgentPool in its `agentPoolProfiles` (pulumi-azure-native#2719, #4264)."""
    cluster = dict(run.one(AKS).inputs)
    pool = dict(run.one(POOL).inputs)
    system = {**cluster["agentPoolProfiles"][0], "orchestratorVersion": "1.35.2"}
    workload = {"name": pool["agentPoolName"], "count": pool["maxCount"], "orchestratorVersion": "1.35.2"}
    cluster.update(kubernetesVersion="1.35.2", agentPoolProfiles=[system, workload])
    pool.update(count=pool["maxCount"], orchestratorVersion="1.35.2")
    return cluster, pool


@pytest.mark.parametrize("channel", ["patch", "stable", "rapid"])
def test_refresh_then_up_sends_back_no_downgrade_no_pool_count_no_pool_list(channel):
    """After auto-upgrade, autoscaling and a refresh, the inputs `up` would send equal what Azure has: no
    downgrade request (AKS refuses one), no count reset under the autoscaler, no pool-list PUT."""
    run = run_stack("dev", kubernetesVersion="1.34", upgradeChannel=channel)
    cluster, pool = run.one(AKS), run.one(POOL)
    assert cluster.inputs["kubernetesVersion"] == "1.34" and pool.inputs["orchestratorVersion"] == "1.34"
    old_cluster, old_pool = _after_refresh(run)
    sent_cluster = _reset(old_cluster, cluster.inputs, cluster.ignore_changes)
    sent_pool = _reset(old_pool, pool.inputs, pool.ignore_changes)
    for key in ("kubernetesVersion", "agentPoolProfiles"):
        assert sent_cluster[key] == old_cluster[key], key
    for key in ("count", "orchestratorVersion"):
        assert sent_pool[key] == old_pool[key], key
    assert sorted(cluster.ignore_changes) == ["agentPoolProfiles", "kubernetesVersion"]
    assert sorted(pool.ignore_changes) == ["count", "orchestratorVersion"]


@pytest.mark.parametrize("channel", ["none", "node-image"])
def test_a_pinned_version_is_still_applied_when_no_channel_moves_it(channel):
    """`none` and `node-image` never change the Kubernetes version (AKS auto-upgrade docs), so a version
    bump in the config must reach Azure: only the autoscaler's count and the refreshed pool list are
    ignored."""
    run = run_stack("dev", kubernetesVersion="1.34", upgradeChannel=channel)
    assert run.one(AKS).ignore_changes == ["agentPoolProfiles"]
    assert run.one(POOL).ignore_changes == ["count"]


@pytest.mark.parametrize("stack", ["dev", "local"])
def test_kubernetes_providers_never_delete_unreachable(stack):
    """`deleteUnreachable` drops every object from state whenever the cluster is unreachable during a refresh
    (pulumi-kubernetes provider Read/Delete, PR #2489); a destroy after the cluster is gone uses
    `PULUMI_K8S_DELETE_UNREACHABLE=true` once instead (README)."""
    provider = run_stack(stack).one("pulumi:providers:kubernetes")
    assert "deleteUnreachable" not in provider.inputs


@pytest.mark.parametrize("stack", STACKS)
def test_first_rollout_waits_long_enough_for_acr_pull(stack):
    """pulumi-kubernetes waits 10 minutes for a Deployment by default; AcrPull can take minutes to reach the
    kubelet identity (Azure RBAC troubleshooting: up to 10 minutes), on top of a node scale-out and the
    model load, so create and update wait 20 minutes."""
    deployment = run_stack(stack).one(DEPLOYMENT)
    assert deployment.custom_timeouts["create"] == deployment.custom_timeouts["update"] == "20m"


def _sdk_enum_values(module) -> set[str]:
    return {
        member.value
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, enum.Enum) and issubclass(cls, str)
        for member in cls
    }


AZURE_MODULES = {
    "containerservice": containerservice,
    "containerregistry": containerregistry,
    "operationalinsights": operationalinsights,
    "monitor": monitor,
}


def test_stacks_pass_sdk_enums_not_string_literals_to_azure_arguments():
    """Wherever an azure-native argument has an SDK enum, the program passes the enum member (a typo is
    then an AttributeError at import, not an Azure 400): no string literal equal to an enum value of the
    module appears as a keyword argument of that module's classes in stacks/*.py."""
    values = {name: _sdk_enum_values(module) for name, module in AZURE_MODULES.items()}
    literals = []
    for path in sorted((ROOT / "stacks").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            base = node.func.value
            if not (isinstance(base, ast.Name) and base.id in values):
                continue
            for keyword in node.keywords:
                value = keyword.value
                if (
                    isinstance(value, ast.Constant)
                    and isinstance(value.value, str)
                    and value.value in values[base.id]
                ):
                    literals.append(f"{path.name}:{node.lineno} {keyword.arg}={value.value!r}")
    assert not literals, literals


def test_enum_values_reach_azure_unchanged(dev, prod):
    """The values the provider receives are the SDK enums' (mocks see the wire values)."""
    cs = containerservice
    aks, pool = dev.one(AKS).inputs, dev.one(POOL).inputs
    (system,) = aks["agentPoolProfiles"]
    assert (system["mode"], pool["mode"]) == (cs.AgentPoolMode.SYSTEM.value, cs.AgentPoolMode.USER.value)
    for p in (system, pool):
        assert p["osType"] == cs.OSType.LINUX.value and p["osSKU"] == cs.OSSKU.AZURE_LINUX.value
        assert p["type"] == cs.AgentPoolType.VIRTUAL_MACHINE_SCALE_SETS.value
    net = aks["networkProfile"]
    assert net["networkPluginMode"] == cs.NetworkPluginMode.OVERLAY.value
    assert net["loadBalancerSku"] == cs.LoadBalancerSku.STANDARD.value
    assert aks["sku"] == {
        "name": cs.ManagedClusterSKUName.BASE.value,
        "tier": cs.ManagedClusterSKUTier.FREE.value,
    }
    assert aks["autoUpgradeProfile"] == {
        "upgradeChannel": cs.UpgradeChannel.PATCH.value,
        "nodeOSUpgradeChannel": cs.NodeOSUpgradeChannel.NODE_IMAGE.value,
    }
    assert prod.one("azure-native:containerregistry:Registry").inputs["sku"] == {
        "name": containerregistry.SkuName.PREMIUM.value
    }
    assert dev.one("azure-native:operationalinsights:Workspace").inputs["sku"] == {
        "name": operationalinsights.WorkspaceSkuNameEnum.PER_GB2018.value
    }
    assert pulumi_azure_native  # the enums above are the installed SDK's (3.29)


@pytest.mark.parametrize("stack", STACKS)
def test_cpu_limit_equals_request_so_the_hpa_target_is_a_share_of_the_pod(stack):
    """HPA utilisation is a percentage of the container's CPU request (Kubernetes "Horizontal Pod
    Autoscaling", resource metrics). With request = limit, `targetCpuUtilization` 70 % means 70 % of what one
    pod can use (not a third of it, as with 1 CPU requested and 2 allowed). The pod sets no TORCH_THREADS:
    the service sizes its threads from that limit, its CFS quota, rounding a fraction down
    (service/cpus.py; rounding 1.5 CPUs up measured 2.5x the CPU per image, docs/cpu-quota.md)."""
    run = run_stack(stack)
    (container,) = run.one(DEPLOYMENT).inputs["spec"]["template"]["spec"]["containers"]
    requests, limits = container["resources"]["requests"], container["resources"]["limits"]
    assert cpu_millicores(limits["cpu"]) == cpu_millicores(requests["cpu"])
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert "TORCH_THREADS" not in env and "DECODE_THREADS" not in env


@pytest.mark.parametrize(
    ("cluster", "context", "command"),
    [
        ("kind", "", "kind load docker-image aks-image-classifier/classifier:local --name kind"),
        ("kind", "kind-dev", "kind load docker-image aks-image-classifier/classifier:local --name dev"),
        ("minikube", "", "minikube image load aks-image-classifier/classifier:local --profile minikube"),
        ("minikube", "ml", "minikube image load aks-image-classifier/classifier:local --profile ml"),
    ],
)
def test_local_image_is_loaded_into_kind_or_minikube_before_the_deployment(cluster, context, command):
    """The tag exists only in the host's engine; kind and minikube nodes have their own containerd store, so
    without `kind load docker-image` / `minikube image load` the pods end in ErrImagePull (kind "Loading an
    image into your cluster", minikube "Pushing images"). A new digest loads again."""
    run = run_stack("local", localCluster=cluster, kubeContext=context)
    load = run.one(COMMAND)
    assert load.inputs["create"] == command
    assert load.inputs["triggers"] == [run.one(IMAGE).state["digest"]]
    assert load.urn in run.one(DEPLOYMENT).dependencies


def test_docker_desktop_needs_no_load_step():
    """Docker Desktop's Kubernetes runs on the engine the image is built into."""
    run = run_stack("local", localCluster="docker-desktop")
    assert not run.of_type(COMMAND)
    assert load_command("docker-desktop", "docker-desktop", "x:local") is None
    with pytest.raises(ValueError, match="k3d"):
        load_command("k3d", "k3d", "x:local")


def test_local_builds_for_the_host_platform_and_azure_for_amd64(dev, local):
    """docker-build builds for the host's platform when `platforms` is unset (its docs), which is what a
    local cluster runs; AKS nodes are linux/amd64 (pulumi-docker#847 for Apple Silicon)."""
    assert "platforms" not in local.one(IMAGE).inputs
    assert dev.one(IMAGE).inputs["platforms"] == ["linux/amd64"]


def test_workload_pods_select_the_workload_pool(dev, local):
    """The workload pool's name changes with its shape (stacks.node_pools), so the pods select a node label
    every version of the pool carries (AKS applies `nodeLabels` to the pool's nodes) rather than AKS's
    `kubernetes.azure.com/agentpool: <name>`; the local target has no such label and selects nothing."""
    (dev_pool,) = [r for r in dev.of_type(POOL)]
    assert dev_pool.inputs["nodeLabels"] == {"aks-image-classifier/pool": "workload"}
    pod = dev.one(DEPLOYMENT).inputs["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == dev_pool.inputs["nodeLabels"] == WORKLOAD_NODE_SELECTOR
    assert "nodeSelector" not in local.one(DEPLOYMENT).inputs["spec"]["template"]["spec"]


def test_the_drain_margin_is_the_same_in_the_stack_and_the_service():
    """stacks/config.py sizes terminationGracePeriodSeconds with DRAIN_MARGIN_S; the service's uvicorn
    graceful-shutdown margin has its own copy: both must agree or Kubernetes kills a draining pod."""
    found = {}
    for path in sorted((ROOT / "service").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "DRAIN_MARGIN_S" for t in node.targets
            ):
                found[str(path.relative_to(ROOT))] = ast.literal_eval(node.value)
    assert found, "service/ no longer defines DRAIN_MARGIN_S: tie it to the stack's another way"
    assert all(value == DRAIN_MARGIN_S for value in found.values()), (found, DRAIN_MARGIN_S)


def test_policy_pack_has_its_own_virtualenv_and_requirements():
    """`pulumi preview --policy-pack policy` runs the pack with the interpreter of the virtualenv named in
    `policy/PulumiPolicy.yaml` (Pulumi "Policy pack project file", runtime options); `pulumi install` in
    `policy/` creates it from `policy/requirements.txt` (pulumi/pulumi#16438). The project's `.venv` has no
    pulumi-policy (requirements.txt is the program's), so the pack must not point there."""
    import yaml

    spec = yaml.safe_load((ROOT / "policy" / "PulumiPolicy.yaml").read_text())
    options = spec["runtime"]["options"]
    venv = (ROOT / "policy" / options["virtualenv"]).resolve()
    assert venv.is_relative_to((ROOT / "policy").resolve()), venv
    assert options.get("toolchain", "pip") == "pip"
    pins = {
        line.split("==")[0]: line
        for line in (ROOT / "policy" / "requirements.txt").read_text().splitlines()
        if "==" in line
    }
    dev_pins = (ROOT / "requirements-dev.txt").read_text().splitlines()
    assert pins["pulumi-policy"] in dev_pins and pins["pulumi"] in (ROOT / "requirements.txt").read_text()
    assert "pulumi-policy" not in (ROOT / "requirements.txt").read_text()
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert f"policy/{options['virtualenv']}/" in ignored


def test_pulumi_command_is_a_pinned_program_dependency():
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    assert any(line.startswith("pulumi-command==") for line in lines)
    assert Path(ROOT / "stacks" / "local_image.py").read_text().count("pulumi_command") == 1
