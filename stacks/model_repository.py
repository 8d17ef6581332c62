"""Model repository: a private Blob container of model versions, read by the pods with workload identity."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pulumi
import pulumi_random as random
from pulumi_azure_native import authorization, managedidentity, storage

from stacks.checkov_skips import skip_arm_checks
from stacks.grantee import Grantee
from stacks.roles import STORAGE_BLOB_DATA_CONTRIBUTOR as BLOB_DATA_CONTRIBUTOR_ROLE_ID
from stacks.roles import STORAGE_BLOB_DATA_READER as BLOB_DATA_READER_ROLE_ID
from stacks.roles import role_definition_id

CONTAINER = "models"
#: Audience of the Kubernetes service account token Entra ID accepts for a federated credential
#: (AKS workload identity docs; azure-workload-identity webhook's default audience).
TOKEN_EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"
SOFT_DELETE_DAYS = 7  # blobs and containers deleted by mistake can be restored for a week


def storage_account_prefix(project: str, stack: str) -> str:
    """Letters and digits of `<project><stack>`, cut to 18 so a 6-character suffix fits 24: storage account
    names are 3-24 lower-case letters and digits, globally unique (`<name>.blob.core.windows.net`)."""
    return re.sub(r"[^a-z0-9]", "", f"{project}{stack}".lower())[:18]


def federation_subject(namespace: str, service_account: str) -> str:
    """`system:serviceaccount:<namespace>:<name>`: the `sub` claim of the pod's service account token."""
    return f"system:serviceaccount:{namespace}:{service_account}"


@dataclass
class ModelRepositoryArgs:
    """Inputs for `ModelRepository`.

    Who reads: `reader_principal_id`, an existing identity's principal (the Container App's), or None to
    declare an identity here. `oidc_issuer_url` (the cluster's, `Cluster.oidc_issuer_url`), `namespace` and
    `service_account` (the workload's: the federation subject): AKS only, federate that identity with the
    Kubernetes service account; None declares no federated credential. `publishers`: who publishes models
    (`modelPublishers`, plus the deployer on `grantDeployer`). `sku`: storage account SKU name, e.g.
    `Standard_LRS`. `reader_description`: the reader role assignment's.
    """

    resource_group_name: pulumi.Input[str]
    location: pulumi.Input[str]
    sku: str
    name_prefix: str
    subscription_id: pulumi.Input[str]
    publishers: list[Grantee] = field(default_factory=list)
    oidc_issuer_url: pulumi.Input[str] | None = None
    namespace: str | None = None
    service_account: str | None = None
    reader_principal_id: pulumi.Input[str] | None = None
    reader_description: str = "classifier pods read model versions (workload identity)"


class ModelRepository(pulumi.ComponentResource):
    """A storage account that only Entra identities can use (shared keys off, no public blobs, HTTPS and TLS
    1.2), blob versioning and soft delete on, a private `models` container; the reader (a user-assigned
    identity declared here, on AKS federated with the workload's Kubernetes service account; or the Container
    App's own identity) gets Storage Blob Data Reader on the container; the configured publishers get Storage
    Blob Data Contributor on the container.

    Outputs: `account_name`, `blob_endpoint` (`https://<account>.blob.core.windows.net/`),
    `container_url` (`<blob_endpoint>models`), `container_id` (ARM id, the role scope),
    `identity_client_id` (the service account annotation; None with `reader_principal_id`),
    `identity_principal_id` (the reader's), `reader_assignment` and `federated_credential` (None without
    `oidc_issuer_url`; for `depends_on`: no pod before it can read).
    """

    def __init__(self, name: str, args: ModelRepositoryArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aks-image-classifier:model_repository:ModelRepository", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        suffix = random.RandomString(
            f"{name}-suffix", length=6, special=False, upper=False, numeric=True, opts=child
        )
        self.account = storage.StorageAccount(
            f"{name}-account",
            account_name=suffix.result.apply(lambda s: f"{args.name_prefix}{s}"),
            resource_group_name=args.resource_group_name,
            location=args.location,
            kind=storage.Kind.STORAGE_V2,
            sku=storage.SkuArgs(name=args.sku),
            access_tier=storage.AccessTier.HOT,
            allow_shared_key_access=False,  # Entra ID only: no account keys, no SAS signed with them
            allow_blob_public_access=False,
            enable_https_traffic_only=True,
            minimum_tls_version=storage.MinimumTlsVersion.TLS1_2,
            default_to_o_auth_authentication=True,
            allow_cross_tenant_replication=False,
            # Trusted Azure services (e.g. Defender, backup) may pass; the account stays reachable from the
            # cluster's nodes over its public endpoint (no private endpoint in this project, see the skip).
            network_rule_set=storage.NetworkRuleSetArgs(
                bypass=storage.Bypass.AZURE_SERVICES, default_action=storage.DefaultAction.ALLOW
            ),
            opts=child,
        )
        skip_arm_checks(
            self.account,
            {
                "CKV_AZURE_35": "the service (pods or container app) reads models over the public endpoint "
                "(no private endpoint in this project); access still needs Entra ID + Storage Blob Data "
                "Reader, shared keys and anonymous access are off",
                "CKV_AZURE_206": f"{args.sku}: models are republishable artefacts kept with versioning and "
                "soft delete; geo-replication is a modelStorageSku choice, not a default",
            },
        )
        retention = storage.DeleteRetentionPolicyArgs(enabled=True, days=SOFT_DELETE_DAYS)
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
            container_name=CONTAINER,
            public_access=storage.PublicAccess.NONE,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.blob_service]),
        )
        self.identity = None
        self.federated_credential = None
        reader = args.reader_principal_id
        if reader is None:
            self.identity = managedidentity.UserAssignedIdentity(
                f"{name}-identity",
                resource_group_name=args.resource_group_name,
                location=args.location,
                opts=child,
            )
            reader = self.identity.principal_id
        if args.oidc_issuer_url is not None:
            if self.identity is None or args.namespace is None or args.service_account is None:
                raise ValueError("a federated credential needs the repository's own identity and a subject")
            self.federated_credential = managedidentity.FederatedIdentityCredential(
                f"{name}-federation",
                resource_group_name=args.resource_group_name,
                resource_name_=self.identity.name,
                issuer=args.oidc_issuer_url,
                subject=federation_subject(args.namespace, args.service_account),
                audiences=[TOKEN_EXCHANGE_AUDIENCE],
                opts=child,
            )
        self.reader_assignment = authorization.RoleAssignment(
            f"{name}-reader",
            principal_id=reader,
            # A managed identity: azure-native v3 defaults to User, which Azure rejects with
            # UnmatchedPrincipalType (Azure/azure-rest-api-specs#21664).
            principal_type=authorization.PrincipalType.SERVICE_PRINCIPAL,
            role_definition_id=pulumi.Output.from_input(args.subscription_id).apply(
                lambda sub: role_definition_id(sub, BLOB_DATA_READER_ROLE_ID)
            ),
            scope=self.container.id,
            description=args.reader_description,
            opts=child,
        )
        contributor = pulumi.Output.from_input(args.subscription_id).apply(
            lambda sub: role_definition_id(sub, BLOB_DATA_CONTRIBUTOR_ROLE_ID)
        )
        self.publisher_assignments = [
            authorization.RoleAssignment(
                f"{name}-publisher-{publisher.key}",
                principal_id=publisher.object_id,
                principal_type=publisher.principal_type,
                role_definition_id=contributor,
                scope=self.container.id,
                description="publishes model versions (tools.publish_model; config modelPublishers)",
                opts=child,
            )
            for publisher in args.publishers
        ]
        self.account_name: pulumi.Output[str] = self.account.name
        self.blob_endpoint: pulumi.Output[str] = self.account.primary_endpoints.apply(lambda e: e.blob)
        self.container_url: pulumi.Output[str] = self.blob_endpoint.apply(
            lambda endpoint: f"{endpoint.rstrip('/')}/{CONTAINER}"
        )
        self.container_id: pulumi.Output[str] = self.container.id
        self.identity_client_id = self.identity.client_id if self.identity is not None else None
        self.identity_principal_id = pulumi.Output.from_input(reader)
        outputs = {
            "account_name": self.account_name,
            "blob_endpoint": self.blob_endpoint,
            "container_url": self.container_url,
            "container_id": self.container_id,
            "identity_principal_id": self.identity_principal_id,
        }
        if self.identity_client_id is not None:
            outputs["identity_client_id"] = self.identity_client_id
        self.register_outputs(outputs)
