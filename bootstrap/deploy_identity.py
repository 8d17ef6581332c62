"""An identity GitHub Actions logs in as: a user-assigned managed identity trusted through OIDC federation for
one subject claim (no client secret exists), with the grants of its trust level (`bootstrap.access`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi
from pulumi_azure_native import authorization, managedidentity

from bootstrap import roles
from bootstrap.access import Grant
from bootstrap.config import FEDERATION_AUDIENCE, GITHUB_ISSUER


@dataclass
class DeployIdentityArgs:
    """`subject`: the one GitHub OIDC subject claim this identity trusts; `grants`: its role assignments
    (`bootstrap.access.matrix`); `decrypt_role_id`: ARM id of the custom decrypt role (a grant whose
    `role` is None)."""

    resource_group_name: pulumi.Input[str]
    location: pulumi.Input[str]
    identity_name: str
    subscription_id: pulumi.Input[str]
    subject: str
    grants: list[Grant]
    decrypt_role_id: pulumi.Input[str]


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
    """User-assigned managed identity + one federated identity credential (one subject: one trust level) +
    the role assignments of its grants.

    Every assignment says `principal_type=ServicePrincipal`: azure-native v3 defaults to `User`, which Azure
    rejects for a managed identity (Azure/azure-rest-api-specs#21664). Outputs: `client_id`, `principal_id`,
    `tenant_id`, `credential` (the subject), `assignments` (grant key -> assignment id).
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
        self.credential = managedidentity.FederatedIdentityCredential(
            f"{name}-{credential_name(args.subject)}",
            federated_identity_credential_resource_name=credential_name(args.subject),
            resource_name_=self.identity.name,
            resource_group_name=args.resource_group_name,
            issuer=GITHUB_ISSUER,
            subject=args.subject,
            audiences=[FEDERATION_AUDIENCE],
            opts=child,
        )
        self.assignments = {g.key: self._assign(g, args) for g in args.grants}
        self.client_id: pulumi.Output[str] = self.identity.client_id
        self.principal_id: pulumi.Output[str] = self.identity.principal_id
        self.tenant_id: pulumi.Output[str] = self.identity.tenant_id
        self.register_outputs({
            "client_id": self.client_id,
            "principal_id": self.principal_id,
            "credential": self.credential.subject,
            "assignments": {k: a.id for k, a in self.assignments.items()},
        })

    def _assign(self, grant: Grant, args: DeployIdentityArgs) -> authorization.RoleAssignment:
        role_id = args.decrypt_role_id if grant.role is None else pulumi.Output.from_input(
            args.subscription_id).apply(lambda sub: roles.role_definition_id(sub, grant.role))
        return authorization.RoleAssignment(
            f"{self.resource_name}-{grant.key}",
            principal_id=self.identity.principal_id,
            principal_type=authorization.PrincipalType.SERVICE_PRINCIPAL,
            role_definition_id=role_id,
            scope=grant.scope,
            description=f"GitHub {self.resource_name}: {grant.why}",
            condition=grant.condition,
            condition_version="2.0" if grant.condition else None,
            opts=pulumi.ResourceOptions(parent=self),
        )
