"""Azure role GUIDs the delivery identities hold or may assign, and the ABAC conditions that narrow them.

The GUIDs both programs use live in `stacks/roles.py`; the one only the bootstrap names is here. Built-in
GUIDs are the same in every tenant (learn.microsoft.com/azure/role-based-access-control/built-in-roles,
section Containers: Azure Kubernetes Service Cluster User Role).

Condition syntax (version 2.0) follows Microsoft's examples:
- role assignment writes and deletes: "Examples to delegate Azure role assignment management with conditions",
  section "Constrain roles and principal types" (learn.microsoft.com/azure/role-based-access-control/
  delegate-role-assignments-examples). Conditions on role assignments see the role definition id, the
  principal id and the principal type, not the scope: the scope is where the administrator role is assigned.
- blob paths: "Example Azure role assignment conditions for Blob Storage", sections "Read or list blobs in
  named containers with a path" and "Write blobs in named containers with a path"
  (learn.microsoft.com/azure/storage/blobs/storage-auth-abac-examples).
"""

from __future__ import annotations

from stacks.roles import (
    ACR_PULL,
    AKS_RBAC_CLUSTER_ADMIN,
    AKS_RBAC_READER,
    CONTRIBUTOR,
    KEY_VAULT_CRYPTO_USER,
    MONITORING_DATA_READER,
    RBAC_ADMINISTRATOR,
    READER,
    STORAGE_BLOB_DATA_CONTRIBUTOR,
    STORAGE_BLOB_DATA_READER,
    role_definition_id,
)

__all__ = [
    "ACR_PULL",
    "AKS_CLUSTER_USER",
    "AKS_RBAC_CLUSTER_ADMIN",
    "AKS_RBAC_READER",
    "ASSIGNABLE_PRINCIPAL_TYPES",
    "CONTRIBUTOR",
    "DECRYPT_DATA_ACTIONS",
    "KEY_VAULT_CRYPTO_USER",
    "MAIN_PROGRAM_ROLES",
    "MONITORING_DATA_READER",
    "RBAC_ADMINISTRATOR",
    "READER",
    "STORAGE_BLOB_DATA_CONTRIBUTOR",
    "STORAGE_BLOB_DATA_READER",
    "assign_only_condition",
    "role_definition_id",
    "state_condition",
    "state_paths",
]

#: Azure Kubernetes Service Cluster User Role: `managedClusters/read` and `listClusterUserCredential/action`
#: (the cluster's API server URL and CA, which the main program fetches in every preview); no write.
AKS_CLUSTER_USER = "4abbcc35-e782-43d8-92c5-2d3abe0ed2dd"

#: What a Pulumi preview needs on the secrets key: decrypt the stack's data key (plus the key's metadata).
#: Pulumi's `azurekeyvault://` provider (gocloud.dev/secrets/azurekeyvault) calls Key Vault's `decrypt`
#: with RSA-OAEP-256; `encrypt` is needed only to create a stack or change its key. No built-in role has
#: decrypt alone (Key Vault Crypto User adds encrypt, sign, verify, wrap, unwrap; Key Vault Crypto Service
#: Encryption User has wrap/unwrap but not decrypt), so the bootstrap declares a custom role with these
#: data actions (learn.microsoft.com/azure/key-vault/general/rbac-guide, "Key Vault data plane actions").
DECRYPT_DATA_ACTIONS = (
    "Microsoft.KeyVault/vaults/keys/read",
    "Microsoft.KeyVault/vaults/keys/decrypt/action",
)

#: Roles the main program (`stacks/`) assigns, the only ones a deploy identity may assign: AcrPull (kubelet
#: identity on the registry), Storage Blob Data Reader (the service's workload identity on the models
#: container), Storage Blob Data Contributor (model publishers on the models container, inside the stack's
#: group only), Monitoring Data Reader (KEDA's operator identity on the Azure Monitor workspace,
#: stacks/keda.py). AKS RBAC Cluster Admin joins when `clusterAdminAssignable` is true (the default: the
#: program gives its configured cluster admins that role).
MAIN_PROGRAM_ROLES = (
    ACR_PULL,
    STORAGE_BLOB_DATA_READER,
    STORAGE_BLOB_DATA_CONTRIBUTOR,
    MONITORING_DATA_READER,
)
#: Principal types a deploy identity may grant to: managed identities (kubelet, workload) are service
#: principals; people get access through Entra groups (cluster admins, model publishers as data, the
#: aks-baseline `clusterAdminMicrosoftEntraGroupObjectId` model), never as a `User` the pipeline picks.
ASSIGNABLE_PRINCIPAL_TYPES = ("ServicePrincipal", "Group")

_ASSIGNMENT_ROLE = "Microsoft.Authorization/roleAssignments:RoleDefinitionId"
_ASSIGNMENT_TYPE = "Microsoft.Authorization/roleAssignments:PrincipalType"
_BLOBS = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs"
_BLOB_PATH = f"@Resource[{_BLOBS}:path]"


def _quoted(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def assign_only_condition(role_guids: tuple[str, ...],
                          principal_types: tuple[str, ...] = ASSIGNABLE_PRINCIPAL_TYPES) -> str:
    """ABAC condition (version 2.0) for a Role Based Access Control Administrator assignment: the holder may
    create and delete role assignments only of `role_guids` and only for principals of `principal_types`.

    A write must request one of the roles for one of the types (`@Request`), a delete must target such an
    assignment (`@Resource`); every other action is unaffected. Raises ValueError for an empty list (an
    empty set would block every assignment).
    """
    if not role_guids or not principal_types:
        raise ValueError("at least one role definition GUID and one principal type are needed")
    guids = ", ".join(dict.fromkeys(g.lower() for g in role_guids))
    types = _quoted(tuple(dict.fromkeys(principal_types)))
    clauses = []
    for action, source in (("write", "Request"), ("delete", "Resource")):
        clauses.append(
            f"((!(ActionMatches{{'Microsoft.Authorization/roleAssignments/{action}'}})) OR "
            f"(@{source}[{_ASSIGNMENT_ROLE}] ForAnyOfAnyValues:GuidEquals {{{guids}}} AND "
            f"@{source}[{_ASSIGNMENT_TYPE}] ForAnyOfAnyValues:StringEqualsIgnoreCase {{{types}}}))"
        )
    return " AND ".join(clauses)


def state_paths(project: str, stack: str) -> tuple[str, ...]:
    """`StringLike` patterns of the blobs a Pulumi DIY backend keeps for `project`/`stack` under `.pulumi/`:
    the checkpoint `stacks/<project>/<stack>.json` (and `.json.bak`, `.json.attrs`) and the folders
    `locks/`, `history/`, `backups/` `<project>/<stack>/...` (pulumi/pulumi pkg/backend/diy layout)."""
    return (f".pulumi/*/{project}/{stack}.*", f".pulumi/*/{project}/{stack}/*")


def _path_clause(patterns: tuple[str, ...]) -> str:
    return "(" + " OR ".join(f"{_BLOB_PATH} StringLike '{p}'" for p in patterns) + ")"


def state_condition(readable: tuple[str, ...], writable: tuple[str, ...]) -> str:
    """ABAC condition (version 2.0) for a Storage Blob Data Reader / Contributor assignment on the state
    container: reading a blob (listing excluded: it carries no path) is allowed only under `readable`
    patterns plus `.pulumi/meta.yaml` (the backend's version file, read at `pulumi login`); writing,
    creating and deleting only under `writable`. An empty `writable` adds no write clause (a reader role
    has no write action). Raises ValueError when `readable` is empty."""
    if not readable:
        raise ValueError("at least one readable path is needed")
    read = (
        f"((!(ActionMatches{{'{_BLOBS}/read'}} AND NOT SubOperationMatches{{'Blob.List'}})) OR "
        f"{_path_clause(('.pulumi/meta.yaml', *readable))})"
    )
    if not writable:
        return read
    write = (
        f"((!(ActionMatches{{'{_BLOBS}/write'}}) AND !(ActionMatches{{'{_BLOBS}/add/action'}}) AND "
        f"!(ActionMatches{{'{_BLOBS}/delete'}})) OR {_path_clause(writable)})"
    )
    return f"{read} AND {write}"
