"""Who a role assignment is for: the principals the stack config lists, plus the deployer on opt-in."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import authorization

from stacks.config import Principal

DEPLOYER = "deployer"


@dataclass(frozen=True)
class Grantee:
    """`key`: the stable part of the RoleAssignment's Pulumi name (the object id, or `deployer`);
    `object_id`: the Entra object id; `principal_type`: the SDK's `PrincipalType`."""

    key: str
    object_id: pulumi.Input[str]
    principal_type: authorization.PrincipalType


def grantees(
    listed: tuple[Principal, ...], deployer_object_id: pulumi.Input[str] | None, deployer_type: str
) -> list[Grantee]:
    """`listed` as Grantees, then the deployer (`get_client_config().object_id`) when one is given (the
    `grantDeployer` opt-in), with `deployer_type`."""
    result = [
        Grantee(p.resource_suffix, p.object_id, authorization.PrincipalType(p.principal_type)) for p in listed
    ]
    if deployer_object_id is not None:
        result.append(Grantee(DEPLOYER, deployer_object_id, authorization.PrincipalType(deployer_type)))
    return result
