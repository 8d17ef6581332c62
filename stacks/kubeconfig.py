"""A kubeconfig for an Entra-integrated AKS cluster that holds no credential: kubelogin signs in.

With managed Entra integration, `listClusterUserCredential` returns a kubeconfig whose user runs
`kubelogin` in device-code mode (an interactive prompt Pulumi cannot answer); with local accounts
disabled no certificate kubeconfig exists at all (pulumi-azure-native#2399, #2579). The program keeps
only the cluster part of that kubeconfig (API server URL and CA certificate, both stable for the life of
the cluster) and writes its own user: an exec plugin `kubelogin get-token --login <mode> --server-id
6dae42f8-4368-4678-94ff-3960e28e3630` (Azure/kubelogin README; the server id is the AKS AAD server
application, the same in every tenant). The result depends only on stable inputs, so it does not change
between runs (a changed kubeconfig replaces the Kubernetes provider, pulumi-kubernetes#1148).
"""

from __future__ import annotations

import yaml

#: Application id of the "Azure Kubernetes Service AAD Server" (the token audience for every AKS cluster).
AKS_AAD_SERVER_ID = "6dae42f8-4368-4678-94ff-3960e28e3630"
EXEC_API_VERSION = "client.authentication.k8s.io/v1beta1"
USER = "kubelogin"


def kubelogin_args(mode: str, tenant_id: str) -> list[str]:
    """`kubelogin get-token` arguments for login `mode` (azurecli, workloadidentity, spn, msi, azd).

    No secret appears here: spn reads AAD_SERVICE_PRINCIPAL_CLIENT_ID/SECRET, workloadidentity reads
    AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE from the environment.
    """
    args = ["get-token", "--login", mode, "--server-id", AKS_AAD_SERVER_ID]
    if mode in ("spn", "workloadidentity"):
        args += ["--environment", "AzurePublicCloud", "--tenant-id", tenant_id]
    return args


def kubelogin_kubeconfig(credential_kubeconfig: str, mode: str, tenant_id: str) -> str:
    """YAML text: the current (else first) cluster of `credential_kubeconfig` with a kubelogin exec user.

    Raises ValueError when the kubeconfig names no cluster with a server.
    """
    document = yaml.safe_load(credential_kubeconfig) or {}
    clusters = document.get("clusters") or []
    contexts = {c.get("name"): c.get("context") or {} for c in document.get("contexts") or []}
    wanted = contexts.get(document.get("current-context"), {}).get("cluster")
    entry = next((c for c in clusters if c.get("name") == wanted), clusters[0] if clusters else None)
    cluster = (entry or {}).get("cluster") or {}
    if not cluster.get("server"):
        raise ValueError("the AKS credential kubeconfig names no cluster with a server")
    name = entry["name"]
    kept = {k: cluster[k] for k in ("server", "certificate-authority-data") if k in cluster}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": kept}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": USER}}],
        "current-context": name,
        "users": [
            {
                "name": USER,
                "user": {
                    "exec": {
                        "apiVersion": EXEC_API_VERSION,
                        "command": "kubelogin",
                        "args": kubelogin_args(mode, tenant_id),
                        "interactiveMode": "Never",
                        "provideClusterInfo": False,
                        "installHint": "kubelogin is required: https://azure.github.io/kubelogin/install.html",
                    }
                },
            }
        ],
    }
    return yaml.safe_dump(config, sort_keys=False)
