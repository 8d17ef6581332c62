"""Kubernetes access for the identity running `pulumi up`: an Azure RBAC role on the cluster scope."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import authorization

# "Azure Kubernetes Service RBAC Cluster Admin": the narrower "RBAC Admin" and "RBAC Writer" roles cannot
# create namespaces, and the program creates one, plus cert-manager's and Traefik's cluster-scoped objects
# (CRDs, ClusterRoles, webhooks) when TLS is on.
from stacks.roles import AKS_RBAC_CLUSTER_ADMIN as AKS_RBAC_CLUSTER_ADMIN_ROLE_ID
from stacks.roles import role_definition_id


@dataclass
class ClusterAccessArgs:
    """`principal_id`: the deployer's Entra object id; `principal_type`: User | Group | ServicePrincipal
    (Azure rejects a mismatch with `UnmatchedPrincipalType`); `cluster_id`: the AKS ARM id (scope)."""

    principal_id: pulumi.Input[str]
    principal_type: str
    cluster_id: pulumi.Input[str]
    subscription_id: pulumi.Input[str]


class ClusterAccess(pulumi.ComponentResource):
    """Grants the deployer Kubernetes cluster-admin through Azure RBAC (no local account, no certificate).

    Output: `assignment` (the `RoleAssignment`: the Kubernetes provider depends on it).
    """

    def __init__(self, name: str, args: ClusterAccessArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aks-image-classifier:cluster_access:ClusterAccess", name, None, opts)
        self.assignment = authorization.RoleAssignment(
            f"{name}-assignment",
            principal_id=args.principal_id,
            principal_type=authorization.PrincipalType(args.principal_type),
            role_definition_id=pulumi.Output.from_input(args.subscription_id).apply(
                lambda sub: role_definition_id(sub, AKS_RBAC_CLUSTER_ADMIN_ROLE_ID)
            ),
            scope=args.cluster_id,
            description="the identity running `pulumi up` manages the cluster's Kubernetes objects",
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"assignment_id": self.assignment.id})
