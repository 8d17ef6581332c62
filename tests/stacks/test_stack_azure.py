"""The azure target under Pulumi mocks, driven by the real Pulumi.dev.yaml / Pulumi.prod.yaml."""

from __future__ import annotations

import re

from pulumi.output import Unknown

from stacks.acr_pull import ACR_PULL_ROLE_ID
from tests.harness import stack_mocks as mocks
from tests.stacks.conftest import run_stack

ACR = "azure-native:containerregistry:Registry"
AKS = "azure-native:containerservice:ManagedCluster"
POOL = "azure-native:containerservice:AgentPool"
ROLE = "azure-native:authorization:RoleAssignment"
IMAGE = "docker-build:index:Image"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"


def acr_pull_role(run):
    """The AcrPull RoleAssignment (the model repository adds two more, see test_model_repository.py)."""
    (role,) = [r for r in run.of_type(ROLE) if r.parent.endswith("AcrPull::acr-pull")]
    return role


def container(run):
    (c,) = run.one(DEPLOYMENT).inputs["spec"]["template"]["spec"]["containers"]
    return c


def test_dev_declares_the_whole_stack(dev):
    types = {r.type for r in dev.resources}
    assert types == {
        "random:index/randomString:RandomString",
        ACR,
        "azure-native:operationalinsights:Workspace",
        AKS,
        POOL,
        ROLE,
        IMAGE,
        "pulumi:providers:kubernetes",
        "kubernetes:core/v1:Namespace",
        "kubernetes:core/v1:ServiceAccount",
        DEPLOYMENT,
        SERVICE,
        PDB,
        "kubernetes:networking.k8s.io/v1:NetworkPolicy",
        # managed Prometheus, alert rules, KEDA (test_prometheus.py, test_alert_rules.py, test_keda.py)
        "kubernetes:azmonitoring.coreos.com/v1:PodMonitor",
        "kubernetes:keda.sh/v1alpha1:ScaledObject",
        "kubernetes:keda.sh/v1alpha1:TriggerAuthentication",
        "azure-native:monitor:AzureMonitorWorkspace",
        "azure-native:monitor:DataCollectionEndpoint",
        "azure-native:monitor:ActionGroup",
        "azure-native:alertsmanagement:PrometheusRuleGroup",
        "aks-image-classifier:prometheus:ManagedPrometheus",
        "aks-image-classifier:alert_rules:AlertRules",
        "aks-image-classifier:keda:KedaScaling",
        "aks-image-classifier:registry:Registry",
        "aks-image-classifier:cluster:Cluster",
        "aks-image-classifier:acr_pull:AcrPull",
        "aks-image-classifier:cluster_access:ClusterAccess",
        "aks-image-classifier:image:Image",
        "aks-image-classifier:workload:Workload",
        "aks-image-classifier:model_repository:ModelRepository",
        "azure-native:storage:StorageAccount",
        "azure-native:storage:BlobServiceProperties",
        "azure-native:storage:BlobContainer",
        "azure-native:managedidentity:UserAssignedIdentity",
        "azure-native:managedidentity:FederatedIdentityCredential",
        "azure-native:monitor:DataCollectionRule",
        "azure-native:monitor:DataCollectionRuleAssociation",
        "aks-image-classifier:monitoring:ContainerInsights",
    }
    assert not any(r.protect or r.retain_on_delete for r in dev.resources), "destroy must remove everything"


def test_the_stack_adopts_its_resource_group_and_never_declares_one(dev, prod):
    """bootstrap/ creates the group; the program reads it (an invoke, nothing in state), so `pulumi destroy`
    cannot delete it and no deploy identity needs a right at subscription scope."""
    for run, name in ((dev, "aks-image-classifier-dev"), (prod, "aks-image-classifier-prod")):
        assert not run.of_type("azure-native:resources:ResourceGroup")
        assert "azure-native:resources:getResourceGroup" in run.invokes
        assert run.outputs["resource_group"] == name == run.config.resource_group_name
        groups = {r.inputs["resourceGroupName"] for r in run.resources if "resourceGroupName" in r.inputs}
        assert groups == {name}, groups


def test_children_hang_off_their_components(dev):
    components = {r.urn: r.type for r in dev.resources if r.type.startswith("aks-image-classifier:")}
    expected_parent = {
        ACR: "registry",
        AKS: "cluster",
        POOL: "cluster",
        IMAGE: "image",
        DEPLOYMENT: "workload",
        SERVICE: "workload",
        "kubernetes:keda.sh/v1alpha1:ScaledObject": "keda",
        "azure-native:monitor:AzureMonitorWorkspace": "prometheus",
        "azure-native:monitor:ActionGroup": "alert_rules",
        PDB: "workload",
    }
    for type_, module in expected_parent.items():
        assert components[dev.one(type_).parent].split(":")[1] == module, type_
    roles = {r.name: components[r.parent].split(":")[1] for r in dev.of_type(ROLE)}
    assert roles["acr-pull-assignment"] == "acr_pull"
    assert {module for name, module in roles.items() if name.startswith("cluster-access-")} == {
        "cluster_access"
    }


def test_registry_has_no_admin_user_no_anonymous_pull_and_a_valid_unique_name(dev, prod):
    acr = dev.one(ACR).inputs
    assert acr["adminUserEnabled"] is False
    assert acr["anonymousPullEnabled"] is False
    assert acr["sku"] == {"name": "Basic"}
    assert prod.one(ACR).inputs["sku"] == {"name": "Premium"}
    names = {acr["registryName"], prod.one(ACR).inputs["registryName"]}
    assert all(re.fullmatch(r"[a-z0-9]{5,50}", n) for n in names) and len(names) == 2, names
    assert (
        run_stack("dev", registryName="myFixedRegistry1").one(ACR).inputs["registryName"]
        == "myFixedRegistry1"
    )


def test_cluster_identity_network_monitoring_and_upgrades(dev):
    aks = dev.one(AKS).inputs
    assert aks["identity"] == {"type": "SystemAssigned"}
    assert aks["enableRBAC"] is True
    assert "kubernetesVersion" not in aks  # unset: AKS picks its default for new clusters
    (system,) = aks["agentPoolProfiles"]
    assert system["mode"] == "System" and system["count"] == 1 and system["vmSize"] == "Standard_D2ds_v5"
    net = aks["networkProfile"]
    assert (net["networkPlugin"], net["networkPluginMode"], net["networkPolicy"]) == (
        "azure",
        "overlay",
        "azure",
    )
    assert aks["oidcIssuerProfile"] == {"enabled": True}
    assert aks["securityProfile"]["workloadIdentity"] == {"enabled": True}
    workspace = dev.one("azure-native:operationalinsights:Workspace")
    oms = aks["addonProfiles"]["omsagent"]
    assert oms["enabled"] is True
    assert oms["config"]["logAnalyticsWorkspaceResourceID"].endswith(f"/workspaces/{workspace.name}")
    assert aks["autoUpgradeProfile"]["upgradeChannel"] == "patch"
    assert aks["sku"]["tier"] == "Free"


def test_workload_pool_is_a_separate_autoscaled_agent_pool(dev, prod):
    pool = dev.one(POOL).inputs
    assert pool["resourceName"] == dev.one(AKS).state["name"]
    assert pool["mode"] == "User" and pool["vmSize"] == "Standard_D4ds_v6"
    assert (pool["enableAutoScaling"], pool["minCount"], pool["maxCount"]) == (True, 1, 3)
    prod_pool = prod.one(POOL).inputs
    assert (prod_pool["minCount"], prod_pool["maxCount"]) == (3, 12)
    assert prod_pool["availabilityZones"] == ["1", "2", "3"]
    assert prod.one(AKS).inputs["agentPoolProfiles"][0]["availabilityZones"] == ["1", "2", "3"]
    assert prod.one(AKS).inputs["sku"]["tier"] == "Standard"


def test_acr_pull_goes_to_the_kubelet_identity_on_the_registry(dev):
    role = acr_pull_role(dev).inputs
    assert role["roleDefinitionId"] == (
        f"/subscriptions/{mocks.SUBSCRIPTION_ID}/providers/Microsoft.Authorization/roleDefinitions/{ACR_PULL_ROLE_ID}"
    )
    assert ACR_PULL_ROLE_ID == "7f951dda-4ed3-4680-a7ca-43fe172d538d"
    assert role["principalId"] == mocks.KUBELET_OBJECT_ID != mocks.CONTROL_PLANE_PRINCIPAL_ID
    assert role["principalType"] == "ServicePrincipal"
    assert role["scope"] == dev.one(ACR).id
    assert "/providers/Microsoft.ContainerRegistry/registries/" in role["scope"]


def test_image_is_built_for_amd64_pushed_with_an_entra_token_and_run_exactly(dev):
    image = dev.one(IMAGE).inputs
    login_server = dev.outputs["registry"]
    assert login_server == dev.one(ACR).state["loginServer"]
    assert image["platforms"] == ["linux/amd64"]
    assert image["push"] is True
    assert image["context"] == {"location": "service"} and image["dockerfile"] == {
        "location": "service/Dockerfile"
    }
    assert image["tags"] == [f"{login_server}/aks-image-classifier/classifier:dev"]
    (registry,) = image["registries"]
    assert registry["address"] == login_server
    assert registry["username"] == "00000000-0000-0000-0000-000000000000"
    assert registry["password"] == mocks.ACR_REFRESH_TOKEN
    assert mocks.is_secret(dev.one(IMAGE).raw_inputs["registries"]), "the registry token must be a secret"
    assert "azure-native:authorization:getClientToken" in dev.invokes
    ref = dev.outputs["image"]
    assert re.fullmatch(
        rf"{re.escape(login_server)}/aks-image-classifier/classifier:dev@sha256:[0-9a-f]{{64}}", ref
    )
    assert container(dev)["image"] == ref
    assert container(dev)["imagePullPolicy"] == "Always"


def test_preview_without_build_asks_for_no_token():
    """`buildOnPreview: false`: the preview's registry password stays unknown, so no ARM token is requested
    (a CI preview needs no registry rights); the Image's other inputs are those of an update."""
    run = run_stack("dev", preview=True, buildOnPreview="false")
    image = run.one(IMAGE).inputs
    assert image["push"] is True and image["buildOnPreview"] is False
    (registry,) = image["registries"]
    assert isinstance(registry["password"], Unknown)
    assert "azure-native:authorization:getClientToken" not in run.invokes


def test_workload_waits_for_acr_pull_and_uses_the_cluster_provider(dev):
    role = acr_pull_role(dev)
    assert role.urn in dev.one(DEPLOYMENT).dependencies
    provider = dev.one("pulumi:providers:kubernetes")
    assert "deleteUnreachable" not in provider.inputs
    assert mocks.is_secret(provider.raw_inputs["kubeconfig"])
    # The credential kubeconfig converted to kubelogin (stacks.kubeconfig, test_cluster_access.py).
    assert provider.inputs["kubeconfig"] == dev.outputs["kubeconfig"]
    assert mocks.KUBE_SERVER in provider.inputs["kubeconfig"]
    for r in dev.resources:
        if r.type.startswith("kubernetes:"):
            assert r.provider.startswith(provider.urn), (r.type, r.provider)


def test_outputs_and_kubeconfig_secret(dev):
    assert dev.outputs["endpoint"] == f"http://{mocks.LOAD_BALANCER_IP}/"
    assert dev.outputs["cluster_name"] == dev.one(AKS).state["name"]
    assert dev.outputs["resource_group"] == "aks-image-classifier-dev"
    assert mocks.KUBE_SERVER in dev.outputs["kubeconfig"]
    assert "kubeconfig" in dev.secret_outputs
    assert {"endpoint", "image", "registry"}.isdisjoint(dev.secret_outputs)


def test_image_bakes_the_weights_of_the_architecture_the_deployment_serves():
    run = run_stack("dev", modelArch="mobilenet_v3_large")
    env = {e["name"]: e.get("value") for e in container(run)["env"]}
    assert env["MODEL_ARCH"] == "mobilenet_v3_large"
    build_args = run.one(IMAGE).inputs["buildArgs"]
    assert build_args == {"MODEL_ARCH": "mobilenet_v3_large", "MODEL_TARGET_CPU": "amx"}


def test_image_compiles_the_baked_model_for_the_workload_pools_cpu():
    """The Dockerfile quantizes and gates the baked model for MODEL_TARGET_CPU, so it must name the nodes'
    CPU, not the builder's (a GitHub runner's EPYC Milan has no VNNI: it would plan float32 only)."""
    tiers = {size: run_stack("dev", nodeVmSize=size).one(IMAGE).inputs["buildArgs"].get("MODEL_TARGET_CPU")
             for size in ("Standard_D4ds_v6", "Standard_D8ds_v5", "Standard_D4ads_v6", "Standard_D4ads_v5")}
    assert tiers == {"Standard_D4ds_v6": "amx", "Standard_D8ds_v5": "avx512_vnni",
                     "Standard_D4ads_v6": "avx512_vnni", "Standard_D4ads_v5": "avx2"}
    assert run_stack("prod").one(IMAGE).inputs["buildArgs"]["MODEL_TARGET_CPU"] == "amx"
