"""Kubernetes access as data: AKS RBAC Cluster Admin on the cluster for each configured principal."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import authorization

from stacks.grantee import Grantee

# "Azure Kubernetes Service RBAC Cluster Admin": the narrower "RBAC Admin" and "RBAC Writer" roles cannot
# create namespaces, and the program creates one, plus cert-manager's and Traefik's cluster-scoped objects
# (CRDs, ClusterRoles, webhooks) when TLS is on.
from stacks.roles import AKS_RBAC_CLUSTER_ADMIN as AKS_RBAC_CLUSTER_ADMIN_ROLE_ID
from stacks.roles import role_definition_id


@dataclass
class ClusterAccessArgs:
    """`admins`: who gets the role (from `clusterAdmins`, plus the deployer on `grantDeployer`);
    `cluster_id`: the AKS ARM id (the scope)."""

    admins: list[Grantee]
    cluster_id: pulumi.Input[str]
    subscription_id: pulumi.Input[str]


class ClusterAccess(pulumi.ComponentResource):
    """Grants each admin Kubernetes cluster-admin through Azure RBAC (no local account, no certificate).
    Each assignment is named after its principal's object id, so reordering the list changes nothing and
    removing an entry deletes only that assignment.

    Output: `assignments` (the `RoleAssignment`s: the Kubernetes provider depends on them).
    """

    def __init__(self, name: str, args: ClusterAccessArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aks-image-classifier:cluster_access:ClusterAccess", name, None, opts)
        role = pulumi.Output.from_input(args.subscription_id).apply(
            lambda sub: role_definition_id(sub, AKS_RBAC_CLUSTER_ADMIN_ROLE_ID)
        )
        self.assignments = [
            authorization.RoleAssignment(
                f"{name}-{admin.key}",
                principal_id=admin.object_id,
                principal_type=admin.principal_type,
                role_definition_id=role,
                scope=args.cluster_id,
                description="cluster admin (stack config clusterAdmins / grantDeployer)",
                opts=pulumi.ResourceOptions(parent=self),
            )
            for admin in args.admins
        ]
        self.register_outputs({"assignment_ids": [a.id for a in self.assignments]})
