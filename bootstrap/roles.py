"""Built-in Azure role GUIDs the deploy identity holds or may assign, and the ABAC condition that limits
which roles it may assign.

GUIDs are the same in every tenant: learn.microsoft.com/azure/role-based-access-control/built-in-roles
(General: Contributor; Privileged: Role Based Access Control Administrator; Storage; Containers;
Security: Key Vault Crypto User).
"""

from __future__ import annotations

CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
RBAC_ADMINISTRATOR = "f58310d9-a9f6-439a-9e8d-f62e7b41a168"  # Role Based Access Control Administrator
STORAGE_BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
STORAGE_BLOB_DATA_READER = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"
KEY_VAULT_CRYPTO_USER = "12338af0-0e69-4776-bea7-57ae8d297424"
ACR_PULL = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
AKS_RBAC_CLUSTER_ADMIN = "b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b"
AKS_RBAC_ADMIN = "3498e952-d568-435e-9b2c-8d77e338d7f7"
AKS_RBAC_WRITER = "a7ffa36f-339b-4b5c-8bdf-e2c188b2c0eb"
AKS_RBAC_READER = "7f6c6a51-bcf8-42ba-9220-52d62157d7db"

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


def role_definition_id(subscription_id: str, role_guid: str) -> str:
    """ARM id of a built-in role at subscription scope:
    `/subscriptions/<sub>/providers/Microsoft.Authorization/roleDefinitions/<guid>`."""
    return f"/subscriptions/{subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{role_guid}"


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
