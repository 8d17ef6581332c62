"""The AcrPull role for the identity that pulls the image (AKS kubelet, or the Container App's), on one
registry."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import authorization

from stacks.roles import ACR_PULL as ACR_PULL_ROLE_ID
from stacks.roles import role_definition_id


@dataclass
class AcrPullArgs:
    """`principal_id`: the pulling identity's object id (the AKS kubelet identity, or the Container App's
    user-assigned identity); `registry_id`: the registry's ARM id (scope); `description`: the assignment's."""

    principal_id: pulumi.Input[str]
    registry_id: pulumi.Input[str]
    subscription_id: pulumi.Input[str]
    description: str = "AKS kubelet identity pulls the classifier image"


class AcrPull(pulumi.ComponentResource):
    """Lets an identity (kubelet, a Container App) pull from the registry without any password (no admin user,
    no imagePullSecret, no registry password secret).

    `principal_type` is `ServicePrincipal`: azure-native v3 defaults to `User`, which Azure rejects for
    a managed identity with `UnmatchedPrincipalType` (Azure/azure-rest-api-specs#21664); saying it
    also skips the Entra replication wait behind `PrincipalNotFound`.
    Output: `assignment` (the `RoleAssignment`, for `depends_on`).
    """

    def __init__(self, name: str, args: AcrPullArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aks-image-classifier:acr_pull:AcrPull", name, None, opts)
        self.assignment = authorization.RoleAssignment(
            f"{name}-assignment",
            principal_id=args.principal_id,
            principal_type=authorization.PrincipalType.SERVICE_PRINCIPAL,
            role_definition_id=pulumi.Output.from_input(args.subscription_id).apply(
                lambda sub: role_definition_id(sub, ACR_PULL_ROLE_ID)
            ),
            scope=args.registry_id,
            description=args.description,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"assignment_id": self.assignment.id})
