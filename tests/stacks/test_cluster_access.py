"""Entra-only cluster access: managed Entra integration with Azure RBAC, local accounts per stack, the
deployer's Kubernetes role from the program, and a kubeconfig that signs in through kubelogin."""

from __future__ import annotations

import pytest
import yaml

from stacks.cluster_access import AKS_RBAC_CLUSTER_ADMIN_ROLE_ID
from stacks.kubeconfig import AKS_AAD_SERVER_ID, kubelogin_args, kubelogin_kubeconfig
from tests.harness import stack_mocks as mocks
from tests.stacks.conftest import run_stack

AKS = "azure-native:containerservice:ManagedCluster"
ROLE = "azure-native:authorization:RoleAssignment"
PROVIDER = "pulumi:providers:kubernetes"
#: Fields of a kubeconfig user that carry a credential (kubernetes.io "Organizing Cluster Access Using
#: kubeconfig Files"; client-go clientcmd api AuthInfo).
CREDENTIAL_FIELDS = {"client-certificate-data", "client-key-data", "token", "password", "client-certificate"}


def deployer_role(run):
    (role,) = [r for r in run.of_type(ROLE) if r.name.startswith("cluster-access")]
    return role


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


def test_deployer_gets_aks_rbac_cluster_admin_on_the_cluster(prod):
    role = deployer_role(prod).inputs
    # Built-in role GUIDs are the same in every tenant (Azure built-in roles, Containers).
    assert AKS_RBAC_CLUSTER_ADMIN_ROLE_ID == "b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b"
    assert role["roleDefinitionId"].endswith(f"/roleDefinitions/{AKS_RBAC_CLUSTER_ADMIN_ROLE_ID}")
    assert role["principalId"] == mocks.DEPLOYER_OBJECT_ID
    assert role["scope"] == prod.one(AKS).id
    assert "/providers/Microsoft.ContainerService/managedClusters/" in role["scope"]
    # azure-native v3 defaults principalType to User; a CI service principal must say so
    # (Azure answers UnmatchedPrincipalType otherwise, Azure/azure-rest-api-specs#21664).
    assert role["principalType"] == "User"
    ci = run_stack("prod", deployerPrincipalType="ServicePrincipal")
    assert deployer_role(ci).inputs["principalType"] == "ServicePrincipal"


def test_kubernetes_provider_waits_for_the_role_and_signs_in_with_kubelogin(prod):
    provider = prod.one(PROVIDER)
    assert deployer_role(prod).urn in provider.dependencies
    assert mocks.is_secret(provider.raw_inputs["kubeconfig"])
    config = yaml.safe_load(provider.inputs["kubeconfig"])
    (user,) = config["users"]
    exec_ = user["user"]["exec"]
    assert exec_["command"] == "kubelogin"
    assert exec_["args"] == ["get-token", "--login", "azurecli", "--server-id", AKS_AAD_SERVER_ID]
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
