"""The roles the deploy identity may assign, and the ABAC condition that limits which roles it may assign.

The role GUIDs themselves live in `stacks/roles.py`, shared with the main program.
"""

from __future__ import annotations

from stacks.roles import (
    ACR_PULL,
    AKS_RBAC_ADMIN,
    AKS_RBAC_CLUSTER_ADMIN,
    AKS_RBAC_READER,
    AKS_RBAC_WRITER,
    CONTRIBUTOR,
    KEY_VAULT_CRYPTO_USER,
    RBAC_ADMINISTRATOR,
    STORAGE_BLOB_DATA_CONTRIBUTOR,
    STORAGE_BLOB_DATA_READER,
    role_definition_id,
)

__all__ = [
    "ACR_PULL",
    "AKS_RBAC_ADMIN",
    "AKS_RBAC_CLUSTER_ADMIN",
    "AKS_RBAC_READER",
    "AKS_RBAC_WRITER",
    "CONTRIBUTOR",
    "KEY_VAULT_CRYPTO_USER",
    "MAIN_PROGRAM_ROLES",
    "RBAC_ADMINISTRATOR",
    "STORAGE_BLOB_DATA_CONTRIBUTOR",
    "STORAGE_BLOB_DATA_READER",
    "assign_only_condition",
    "role_definition_id",
]

#: Roles the main program (`stacks/`) assigns, so the only ones the deploy identity may assign:
#: AcrPull (kubelet identity on the registry), Storage Blob Data Reader (the service's workload identity
#: on a model container) and the AKS RBAC roles (Entra-only cluster access for people and the deployer).
MAIN_PROGRAM_ROLES = (
    ACR_PULL,
    STORAGE_BLOB_DATA_READER,
    # The main program gives the deployer publish rights on its models container (stacks/model_repository.py).
    STORAGE_BLOB_DATA_CONTRIBUTOR,
    AKS_RBAC_CLUSTER_ADMIN,
    AKS_RBAC_ADMIN,
    AKS_RBAC_WRITER,
    AKS_RBAC_READER,
)


def assign_only_condition(role_guids: tuple[str, ...]) -> str:
    """ABAC condition (version 2.0) for a Role Based Access Control Administrator assignment: the holder may
    create and delete role assignments only of `role_guids`.

    The shape is Microsoft's "Constrain roles" example ("Delegate Azure role assignment management to
    others with conditions", learn.microsoft.com/azure/role-based-access-control/
    delegate-role-assignments-examples):
    a write must request one of the roles, a delete must target one of them; every other action is
    unaffected. Raises ValueError for an empty list (an empty set would block every assignment).
    """
    if not role_guids:
        raise ValueError("at least one role definition GUID is needed")
    guids = ", ".join(dict.fromkeys(g.lower() for g in role_guids))
    attribute = "Microsoft.Authorization/roleAssignments:RoleDefinitionId"
    return (
        "((!(ActionMatches{'Microsoft.Authorization/roleAssignments/write'})) OR "
        f"(@Request[{attribute}] ForAnyOfAnyValues:GuidEquals {{{guids}}}))"
        " AND "
        "((!(ActionMatches{'Microsoft.Authorization/roleAssignments/delete'})) OR "
        f"(@Resource[{attribute}] ForAnyOfAnyValues:GuidEquals {{{guids}}}))"
    )
