"""Entra-only cluster access: managed Entra integration with Azure RBAC, local accounts per stack, the
deployer's Kubernetes role from the program, and a kubeconfig that signs in through kubelogin."""

from __future__ import annotations

import pytest
import yaml

from stacks.cluster_access import AKS_RBAC_CLUSTER_ADMIN_ROLE_ID
from stacks.config import ConfigError
from stacks.kubeconfig import AKS_AAD_SERVER_ID, kubelogin_args, kubelogin_kubeconfig
from tests.harness import stack_mocks as mocks
from tests.stacks.conftest import run_stack

AKS = "azure-native:containerservice:ManagedCluster"
ROLE = "azure-native:authorization:RoleAssignment"
PROVIDER = "pulumi:providers:kubernetes"
#: Fields of a kubeconfig user that carry a credential (kubernetes.io "Organizing Cluster Access Using
#: kubeconfig Files"; client-go clientcmd api AuthInfo).
CREDENTIAL_FIELDS = {"client-certificate-data", "client-key-data", "token", "password", "client-certificate"}


def admin_roles(run) -> dict[str, object]:
    """`{principalId: registration}` of the cluster-admin assignments (ClusterAccess's children)."""
    return {r.inputs["principalId"]: r for r in run.of_type(ROLE) if r.name.startswith("cluster-access-")}


def test_every_azure_stack_uses_managed_entra_with_azure_rbac(dev, prod):
    for run in (dev, prod):
        aks = run.one(AKS).inputs
        assert aks["aadProfile"] == {"managed": True, "enableAzureRBAC": True, "tenantID": mocks.TENANT_ID}
        assert aks["enableRBAC"] is True


def test_prod_disables_local_accounts_and_dev_keeps_them_as_its_config_says(dev, prod):
    assert prod.one(AKS).inputs["disableLocalAccounts"] is True
    assert prod.config.security.local_accounts is False
    assert dev.one(AKS).inputs["disableLocalAccounts"] is False  # Pulumi.dev.yaml: localAccounts: true
    assert run_stack("dev", localAccounts="false").one(AKS).inputs["disableLocalAccounts"] is True


def test_configured_admins_get_aks_rbac_cluster_admin_on_the_cluster(prod):
    roles = admin_roles(prod)
    # Pulumi.prod.yaml: the prod deploy identity and the operators' group, each with its principal type.
    assert {oid: r.inputs["principalType"] for oid, r in roles.items()} == {
        "00000000-0000-4000-8000-00000000f001": "ServicePrincipal",
        "00000000-0000-4000-8000-00000000a001": "Group",
    }
    for role in roles.values():
        # Built-in role GUIDs are the same in every tenant (Azure built-in roles, Containers).
        assert AKS_RBAC_CLUSTER_ADMIN_ROLE_ID == "b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b"
        assert role.inputs["roleDefinitionId"].endswith(f"/roleDefinitions/{AKS_RBAC_CLUSTER_ADMIN_ROLE_ID}")
        assert role.inputs["scope"] == prod.one(AKS).id
        assert "/providers/Microsoft.ContainerService/managedClusters/" in role.inputs["scope"]


def test_no_assignment_depends_on_who_runs_up(dev, prod):
    """The same stack file gives the same assignments whoever runs it: the caller's object id (what
    `getClientConfig` returns) appears in none of them, and their names follow the configured ids, so
    reordering `clusterAdmins` replaces nothing."""
    for run in (dev, prod):
        assert all(r.inputs["principalId"] != mocks.DEPLOYER_OBJECT_ID for r in run.of_type(ROLE))
    names = {r.name for r in admin_roles(prod).values()}
    assert names == {
        "cluster-access-00000000-0000-4000-8000-00000000f001",
        "cluster-access-00000000-0000-4000-8000-00000000a001",
    }
    reordered = run_stack(
        "prod",
        clusterAdmins=[
            "Group:00000000-0000-4000-8000-00000000a001",
            "ServicePrincipal:00000000-0000-4000-8000-00000000f001",
        ],
    )
    assert {r.name: r.inputs for r in admin_roles(reordered).values()} == {
        r.name: r.inputs for r in admin_roles(prod).values()
    }


def test_the_deployer_is_an_admin_only_on_the_explicit_opt_in(dev):
    # azure-native v3 defaults principalType to User; a managed identity must say ServicePrincipal (Azure
    # answers UnmatchedPrincipalType otherwise, Azure/azure-rest-api-specs#21664), so the type is declared.
    opted = run_stack("dev", grantDeployer="true", deployerPrincipalType="ServicePrincipal")
    roles = admin_roles(opted)
    assert roles[mocks.DEPLOYER_OBJECT_ID].inputs["principalType"] == "ServicePrincipal"
    assert roles[mocks.DEPLOYER_OBJECT_ID].name == "cluster-access-deployer"
    assert set(roles) == set(admin_roles(dev)) | {mocks.DEPLOYER_OBJECT_ID}


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ("Group", "<type>:<object id>"),
        ("Team:00000000-0000-4000-8000-00000000a001", "User, ServicePrincipal, Group"),
        ("Group:not-a-guid", "GUID"),
        ("group:00000000-0000-4000-8000-00000000a001", "<type>:<object id>"),
    ],
)
def test_a_bad_principal_entry_names_the_key(entry, words):
    with pytest.raises(ConfigError, match=r"^aks-image-classifier:clusterAdmins .*") as error:
        run_stack("prod", clusterAdmins=[entry])
    assert words in str(error.value)


def test_an_azure_stack_needs_an_admin_or_the_opt_in():
    with pytest.raises(ConfigError, match=r"^aks-image-classifier:clusterAdmins must list at least one"):
        run_stack("dev", clusterAdmins=[])
    assert admin_roles(run_stack("dev", clusterAdmins=[], grantDeployer="true"))
    with pytest.raises(ConfigError, match="twice"):
        run_stack("dev", modelPublishers=["Group:00000000-0000-4000-8000-00000000a001"] * 2)


def test_kubernetes_provider_waits_for_the_role_and_signs_in_with_kubelogin(prod):
    provider = prod.one(PROVIDER)
    assert {r.urn for r in admin_roles(prod).values()} <= set(provider.dependencies)
    assert mocks.is_secret(provider.raw_inputs["kubeconfig"])
    config = yaml.safe_load(provider.inputs["kubeconfig"])
    (user,) = config["users"]
    exec_ = user["user"]["exec"]
    assert exec_["command"] == "kubelogin"
    # Pulumi.prod.yaml says workloadidentity: the deploy workflow's token file (docs/delivery.md).
    assert exec_["args"] == ["get-token", "--login", "workloadidentity", "--server-id", AKS_AAD_SERVER_ID,
                             "--environment", "AzurePublicCloud", "--tenant-id", mocks.TENANT_ID]
    (cluster,) = config["clusters"]
    assert cluster["cluster"] == {"server": mocks.KUBE_SERVER, "certificate-authority-data": mocks.KUBE_CA}


def test_exported_kubeconfig_carries_no_credential(dev, prod):
    for run in (dev, prod):
        config = yaml.safe_load(run.outputs["kubeconfig"])
        for user in config["users"]:
            assert CREDENTIAL_FIELDS.isdisjoint(user["user"]), user
            assert "devicecode" not in user["user"]["exec"]["args"]
        assert "kubeconfig" in run.secret_outputs  # server and CA are still not for public logs


def test_kubeconfig_is_the_same_on_every_run(prod):
    # A changed kubeconfig replaces the Kubernetes provider and everything on it (pulumi-kubernetes#1148).
    assert run_stack("prod").outputs["kubeconfig"] == prod.outputs["kubeconfig"]


def test_ci_login_modes_take_their_secrets_from_the_environment():
    assert kubelogin_args("workloadidentity", "t") == [
        "get-token",
        "--login",
        "workloadidentity",
        "--server-id",
        AKS_AAD_SERVER_ID,
        "--environment",
        "AzurePublicCloud",
        "--tenant-id",
        "t",
    ]
    assert kubelogin_args("azurecli", "t") == [
        "get-token",
        "--login",
        "azurecli",
        "--server-id",
        AKS_AAD_SERVER_ID,
    ]
    run = run_stack("prod", kubeloginMode="spn")
    exec_ = yaml.safe_load(run.outputs["kubeconfig"])["users"][0]["user"]["exec"]
    assert exec_["args"][:3] == ["get-token", "--login", "spn"] and mocks.TENANT_ID in exec_["args"]


def test_conversion_keeps_the_current_cluster_and_drops_a_certificate_user():
    certificate_kubeconfig = yaml.safe_dump(
        {
            "clusters": [
                {"name": "other", "cluster": {"server": "https://other"}},
                {"name": "aks", "cluster": {"server": "https://aks", "certificate-authority-data": "Q0E="}},
            ],
            "contexts": [{"name": "aks", "context": {"cluster": "aks", "user": "admin"}}],
            "current-context": "aks",
            "users": [{"name": "admin", "user": {"client-certificate-data": "Y2VydA==", "token": "t0k"}}],
        }
    )
    converted = kubelogin_kubeconfig(certificate_kubeconfig, "azurecli", "tenant")
    assert "Y2VydA==" not in converted and "t0k" not in converted
    config = yaml.safe_load(converted)
    assert config["clusters"] == [
        {"name": "aks", "cluster": {"server": "https://aks", "certificate-authority-data": "Q0E="}}
    ]
    assert config["contexts"][0]["context"] == {"cluster": "aks", "user": "kubelogin"}


def test_conversion_refuses_a_kubeconfig_without_a_cluster():
    with pytest.raises(ValueError, match="no cluster"):
        kubelogin_kubeconfig("apiVersion: v1\nclusters: []\n", "azurecli", "t")
