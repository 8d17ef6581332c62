"""Who gets Azure roles on the stack's resources, as data: cluster admins and model publishers are Entra
object ids with their principal types, never "whoever runs `pulumi up`" (aks-baseline's
`clusterAdminMicrosoftEntraGroupObjectId` is the model). The deployer joins only on an explicit opt-in
(`grantDeployer`, for a personal dev stack)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from stacks.config.reader import PRINCIPAL_TYPES, ConfigError, Reader

#: An Entra object id: a GUID (8-4-4-4-12 hexadecimal digits).
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


@dataclass(frozen=True)
class Principal:
    """An Entra principal: `object_id` (GUID, lower case) and `principal_type` (User | Group |
    ServicePrincipal, the RoleAssignment's `principalType`: Azure answers `UnmatchedPrincipalType` to a
    wrong one, Azure/azure-rest-api-specs#21664; a managed identity is a ServicePrincipal)."""

    object_id: str
    principal_type: str

    @property
    def resource_suffix(self) -> str:
        """The Pulumi resource name part for this principal: stable when the list is reordered."""
        return self.object_id


@dataclass(frozen=True)
class AccessSettings:
    """`cluster_admins`: AKS RBAC Cluster Admin on the cluster; `model_publishers`: Storage Blob Data
    Contributor on the models container; `grant_deployer`: also give both to the identity running `up`,
    with `deployer_principal_type`."""

    cluster_admins: tuple[Principal, ...]
    model_publishers: tuple[Principal, ...]
    grant_deployer: bool
    deployer_principal_type: str


def principals(r: Reader, name: str) -> tuple[Principal, ...]:
    """A list of `<principalType>:<objectId>` entries, e.g. `Group:7c8f...`; no duplicates."""
    found: list[Principal] = []
    for entry in r.list(name):
        kind, _, object_id = entry.partition(":")
        if kind not in PRINCIPAL_TYPES or not _GUID.match(object_id):
            raise ConfigError(
                f"{r.key(name)} entries must be `<type>:<object id>` with type one of "
                f"{', '.join(PRINCIPAL_TYPES)} and an Entra object id (GUID), got {entry!r}"
            )
        principal = Principal(object_id.lower(), kind)
        if any(p.object_id == principal.object_id for p in found):
            raise ConfigError(f"{r.key(name)} lists {principal.object_id} twice")
        found.append(principal)
    return tuple(found)


def access_settings(r: Reader, target: str) -> AccessSettings:
    """`clusterAdmins`, `modelPublishers`, `grantDeployer`, `deployerPrincipalType`. An azure stack needs a
    cluster admin: the identity that runs `up` deploys the workload through the Kubernetes API, so it must
    be listed (itself or through a group) or opted in with `grantDeployer`."""
    admins = principals(r, "clusterAdmins")
    grant = r.bool("grantDeployer")
    if target == "azure" and not admins and not grant:
        raise ConfigError(
            f"{r.key('clusterAdmins')} must list at least one principal (the identity that runs `pulumi up` "
            f"needs Kubernetes rights to deploy the workload), or set {r.key('grantDeployer')}: true"
        )
    return AccessSettings(
        cluster_admins=admins,
        model_publishers=principals(r, "modelPublishers"),
        grant_deployer=grant,
        deployer_principal_type=r.choice("deployerPrincipalType", PRINCIPAL_TYPES),
    )
