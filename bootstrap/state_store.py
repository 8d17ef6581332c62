"""Blob storage for Pulumi state: Entra-only (shared keys off), versioned, with soft delete."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import storage


@dataclass
class StateStoreArgs:
    """`account_name`: the storage account name (3-24 lowercase alphanumerics, globally unique);
    `sku`: a `storage.SkuName` value; `retention_days`: soft delete of blobs, versions and the container."""

    resource_group_name: pulumi.Input[str]
    location: pulumi.Input[str]
    account_name: pulumi.Input[str]
    sku: str
    container_name: str
    retention_days: int


class StateStore(pulumi.ComponentResource):
    """The storage account and container that hold the stacks' state (`pulumi login azblob://...`).

    Shared-key access is off, so no account key or SAS can read the state: the Pulumi CLI signs in with
    Entra (`azblob://<container>?storage_account=<account>` uses the Azure CLI / default credential
    chain, pulumi/pulumi#10900) and needs Storage Blob Data Contributor on the container. Versioning and
    soft delete keep every earlier state file restorable for `retention_days` (state rollback). The
    account is `protect`ed: losing it loses track of every deployed resource.
    Outputs: `account_name`, `container_name`, `container_id` (ARM id, the role assignment scope).
    """

    def __init__(self, name: str, args: StateStoreArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aks-image-classifier:state_store:StateStore", name, None, opts)
        self.account = storage.StorageAccount(
            f"{name}-account",
            account_name=args.account_name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            kind=storage.Kind.STORAGE_V2,
            sku=storage.SkuArgs(name=args.sku),
            allow_shared_key_access=False,
            default_to_o_auth_authentication=True,
            allow_blob_public_access=False,
            allow_cross_tenant_replication=False,
            enable_https_traffic_only=True,
            minimum_tls_version=storage.MinimumTlsVersion.TLS1_2,
            # GitHub-hosted runners have no fixed addresses; Entra RBAC, not the network, guards the data.
            public_network_access=storage.PublicNetworkAccess.ENABLED,
            opts=pulumi.ResourceOptions(parent=self, protect=True),
        )
        child = pulumi.ResourceOptions(parent=self)
        retention = storage.DeleteRetentionPolicyArgs(enabled=True, days=args.retention_days)
        self.blob_service = storage.BlobServiceProperties(
            f"{name}-blob-service",
            account_name=self.account.name,
            resource_group_name=args.resource_group_name,
            blob_services_name="default",
            is_versioning_enabled=True,
            delete_retention_policy=retention,
            container_delete_retention_policy=retention,
            opts=child,
        )
        self.container = storage.BlobContainer(
            f"{name}-container",
            account_name=self.account.name,
            resource_group_name=args.resource_group_name,
            container_name=args.container_name,
            public_access=storage.PublicAccess.NONE,
            opts=child,
        )
        self.account_name: pulumi.Output[str] = self.account.name
        self.container_name: pulumi.Output[str] = self.container.name
        self.container_id: pulumi.Output[str] = self.container.id
        self.register_outputs(
            {"account_name": self.account_name, "container_name": self.container_name,
             "container_id": self.container_id}
        )
