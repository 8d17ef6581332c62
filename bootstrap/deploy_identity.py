"""The identity GitHub Actions deploys as: a user-assigned managed identity trusted through OIDC federation
(no client secret exists), with only the roles a deployment of the main program needs."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi
from pulumi_azure_native import authorization, managedidentity

from bootstrap import roles
from bootstrap.config import FEDERATION_AUDIENCE, GITHUB_ISSUER


@dataclass
class DeployIdentityArgs:
    """`subjects`: GitHub OIDC subject claims to trust; `state_container_id` / `secrets_key_id`: ARM ids
    (scopes of the data roles); `assignable_roles`: role definition GUIDs the identity may assign."""

    resource_group_name: pulumi.Input[str]
    location: pulumi.Input[str]
    identity_name: str
    subscription_id: pulumi.Input[str]
    subjects: tuple[str, ...]
    state_container_id: pulumi.Input[str]
    secrets_key_id: pulumi.Input[str]
    assignable_roles: tuple[str, ...]


def credential_name(subject: str) -> str:
    """A federated credential name for `subject`: `github-` + its part after `repo:<owner>/<repo>:`, reduced
    to letters, digits and hyphens, at most 120 characters (Entra: 3-120 characters, alphanumeric, dash,
    underscore, starting with an alphanumeric).

    `repo:o/r:ref:refs/heads/main` -> `github-ref-refs-heads-main`, `repo:o/r:pull_request` ->
    `github-pull-request`, `repo:o/r:environment:production` -> `github-environment-production`.
    """
    parts = subject.split(":", 2)
    tail = parts[2] if len(parts) == 3 else subject
    return ("github-" + re.sub(r"[^A-Za-z0-9]+", "-", tail).strip("-").lower())[:120].rstrip("-")


class DeployIdentity(pulumi.ComponentResource):
    """User-assigned managed identity + one federated identity credential per subject + role assignments.

    Roles (every assignment `principal_type=ServicePrincipal`: azure-native v3 defaults to `User`, which
    Azure rejects for a managed identity, Azure/azure-rest-api-specs#21664):
    - Contributor on the subscription: the main program creates its own resource group (and AKS its node
      resource group), which needs `resourceGroups/write` at subscription scope;
    - Role Based Access Control Administrator on the subscription, with an ABAC condition: it may create
      or delete assignments only of `assignable_roles` (AcrPull, Storage Blob Data Reader, AKS RBAC), so it
      can never grant itself or anyone Owner, Contributor or User Access Administrator;
    - Storage Blob Data Contributor on the state container only (read and write state, nothing else);
    - Key Vault Crypto User on the secrets key only (encrypt/decrypt the stacks' data keys).
    Outputs: `client_id`, `principal_id`, `tenant_id`, `credentials` (name -> subject), `assignments`.
    """

    def __init__(self, name: str, args: DeployIdentityArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aks-image-classifier:deploy_identity:DeployIdentity", name, None, opts)
        self.resource_name = name
        child = pulumi.ResourceOptions(parent=self)
        self.identity = managedidentity.UserAssignedIdentity(
            f"{name}-identity",
            resource_name_=args.identity_name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            opts=child,
        )
        self.credentials: dict[str, managedidentity.FederatedIdentityCredential] = {}
        previous: list[pulumi.Resource] = []
        for subject in args.subjects:
            cred_name = credential_name(subject)
            # Entra rejects concurrent writes of federated credentials on one identity
            # ("Too many concurrent writes", learn.microsoft.com/entra/workload-id/workload-identity-
            # federation-considerations): create them one after another.
            self.credentials[cred_name] = managedidentity.FederatedIdentityCredential(
                f"{name}-{cred_name}",
                federated_identity_credential_resource_name=cred_name,
                resource_name_=self.identity.name,
                resource_group_name=args.resource_group_name,
                issuer=GITHUB_ISSUER,
                subject=subject,
                audiences=[FEDERATION_AUDIENCE],
                opts=pulumi.ResourceOptions(parent=self, depends_on=previous[-1:]),
            )
            previous.append(self.credentials[cred_name])
        subscription_scope = pulumi.Output.concat("/subscriptions/", args.subscription_id)
        self.assignments = {
            "contributor": self._assign("contributor", args, roles.CONTRIBUTOR, subscription_scope,
                                        "GitHub deploy: create and update the main program's resources"),
            "rbac-admin": self._assign(
                "rbac-admin", args, roles.RBAC_ADMINISTRATOR, subscription_scope,
                "GitHub deploy: assign only the roles the main program assigns",
                condition=roles.assign_only_condition(args.assignable_roles),
            ),
            "state": self._assign("state", args, roles.STORAGE_BLOB_DATA_CONTRIBUTOR, args.state_container_id,
                                  "GitHub deploy: read and write Pulumi state"),
            "secrets": self._assign("secrets", args, roles.KEY_VAULT_CRYPTO_USER, args.secrets_key_id,
                                    "GitHub deploy: encrypt and decrypt stack secrets"),
        }
        self.client_id: pulumi.Output[str] = self.identity.client_id
        self.principal_id: pulumi.Output[str] = self.identity.principal_id
        self.tenant_id: pulumi.Output[str] = self.identity.tenant_id
        self.register_outputs({
            "client_id": self.client_id,
            "principal_id": self.principal_id,
            "credentials": {n: c.subject for n, c in self.credentials.items()},
            "assignments": {n: a.id for n, a in self.assignments.items()},
        })

    def _assign(self, key: str, args: DeployIdentityArgs, role_guid: str, scope: pulumi.Input[str],
                description: str, condition: str | None = None) -> authorization.RoleAssignment:
        return authorization.RoleAssignment(
            f"{self.resource_name}-{key}",
            principal_id=self.identity.principal_id,
            principal_type=authorization.PrincipalType.SERVICE_PRINCIPAL,
            role_definition_id=pulumi.Output.from_input(args.subscription_id).apply(
                lambda sub: roles.role_definition_id(sub, role_guid)
            ),
            scope=scope,
            description=description,
            condition=condition,
            condition_version="2.0" if condition else None,
            opts=pulumi.ResourceOptions(parent=self),
        )
