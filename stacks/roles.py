"""Built-in Azure role definition GUIDs, for the main program (`stacks/`) and the bootstrap (`bootstrap/`).

GUIDs are the same in every tenant: learn.microsoft.com/azure/role-based-access-control/built-in-roles
(General: Contributor, Reader; Privileged: Role Based Access Control Administrator; Storage; Containers;
Security: Key Vault Crypto User). This module imports nothing, so either program can use it.
"""

from __future__ import annotations

CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
RBAC_ADMINISTRATOR = "f58310d9-a9f6-439a-9e8d-f62e7b41a168"  # Role Based Access Control Administrator
#: Storage Blob Data Contributor: read, write and delete blobs (the deployer publishes models).
STORAGE_BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
#: Storage Blob Data Reader: read and list blobs (the workload).
STORAGE_BLOB_DATA_READER = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"
KEY_VAULT_CRYPTO_USER = "12338af0-0e69-4776-bea7-57ae8d297424"
#: AcrPull: pull images from a container registry (the kubelet identity).
ACR_PULL = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
#: Monitoring Data Reader: read data in an Azure Monitor workspace (KEDA's Prometheus queries). The GUID
#: Azure's managed Prometheus onboarding templates grant Grafana (Azure/prometheus-collector
#: `AddonArmTemplate/FullAzureMonitorMetricsProfile.json`, `AddonTerraformTemplate/main.tf`).
MONITORING_DATA_READER = "b0d8363b-8ddd-447d-831f-62ca05bff136"
#: Azure Kubernetes Service RBAC Cluster Admin: every Kubernetes action in every namespace.
AKS_RBAC_CLUSTER_ADMIN = "b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b"
AKS_RBAC_ADMIN = "3498e952-d568-435e-9b2c-8d77e338d7f7"
AKS_RBAC_WRITER = "a7ffa36f-339b-4b5c-8bdf-e2c188b2c0eb"
AKS_RBAC_READER = "7f6c6a51-bcf8-42ba-9220-52d62157d7db"


def role_definition_id(subscription_id: str, role_guid: str) -> str:
    """ARM id of a built-in role at subscription scope:
    `/subscriptions/<sub>/providers/Microsoft.Authorization/roleDefinitions/<guid>`."""
    return f"/subscriptions/{subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{role_guid}"
