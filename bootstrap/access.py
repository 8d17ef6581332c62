"""The identity matrix: the roles each trust level's identity holds, on which scopes, and what it may assign.

Three trust levels, three identities (`bootstrap.config.LEVELS`):
- `preview` (pull requests: code nobody has reviewed yet): reads dev only. Reader, AKS Cluster User and AKS
  RBAC Reader on the dev groups, read of dev's state blobs, decrypt on dev's key. No write, no assignment.
- `dev` (the main branch: reviewed code): deploys dev (Contributor + conditioned RBAC administration on the
  dev groups, write of dev's state, Key Vault Crypto User on dev's key) and previews prod (the prod preview
  runs from main before approval: prod read roles, read of prod's state, decrypt on prod's key).
- `prod` (the production environment: reviewed and approved): deploys prod only.
Nothing is granted at subscription scope. The role assignment administrator roles carry
`roles.assign_only_condition`; the state roles carry `roles.state_condition`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi

from bootstrap import roles
from bootstrap.config import MAIN_PROJECT, BootstrapConfig


@dataclass(frozen=True)
class Grant:
    """One role assignment of one identity: `key` is unique per identity (resource name suffix); `role` a
    built-in role GUID, or None for the custom decrypt role; `scope` an ARM id; `condition` ABAC 2.0."""

    key: str
    role: str | None
    scope: pulumi.Input[str]
    why: str
    condition: str | None = None


@dataclass(frozen=True)
class Scopes:
    """ARM ids the grants point at: `groups[stack]` the (name, id) pairs of each stack's resource groups;
    `keys[stack]` each stack's secrets key; `state_container`; `runner_address` the runner's public IP."""

    groups: Mapping[str, Sequence[tuple[str, pulumi.Input[str]]]]
    keys: Mapping[str, pulumi.Input[str]]
    state_container: pulumi.Input[str]
    runner_address: pulumi.Input[str]


def assignable_roles(cfg: BootstrapConfig) -> tuple[str, ...]:
    """Role GUIDs a deploy identity may assign inside its own groups: `roles.MAIN_PROGRAM_ROLES`, AKS RBAC
    Cluster Admin when `clusterAdminAssignable`, then `extraAssignableRoles`."""
    extra = (roles.AKS_RBAC_CLUSTER_ADMIN,) if cfg.cluster_admin_assignable else ()
    return tuple(dict.fromkeys(roles.MAIN_PROGRAM_ROLES + extra + cfg.extra_assignable_roles))


def _read_stack(stack: str, scopes: Scopes) -> list[Grant]:
    grants = []
    for name, group in scopes.groups[stack]:
        grants += [
            Grant(f"reader-{name}", roles.READER, group, f"read the {stack} stack's resources"),
            Grant(f"aks-user-{name}", roles.AKS_CLUSTER_USER, group,
                  f"fetch the {stack} cluster's API server address and CA (listClusterUserCredential)"),
            Grant(f"aks-reader-{name}", roles.AKS_RBAC_READER, group,
                  f"read the {stack} cluster's Kubernetes objects (no Secrets) for a preview"),
        ]
    decrypt = Grant(f"decrypt-{stack}", None, scopes.keys[stack], f"decrypt the {stack} stack's data key")
    return [*grants, decrypt]


def _deploy_stack(stack: str, scopes: Scopes, assignable: tuple[str, ...]) -> list[Grant]:
    condition = roles.assign_only_condition(assignable)
    grants = []
    for name, group in scopes.groups[stack]:
        grants += [
            Grant(f"contributor-{name}", roles.CONTRIBUTOR, group, f"create and update the {stack} stack"),
            Grant(f"rbac-admin-{name}", roles.RBAC_ADMINISTRATOR, group,
                  "assign only the main program's roles, only to service principals and groups, only here",
                  condition),
        ]
    return [*grants, Grant(f"crypto-{stack}", roles.KEY_VAULT_CRYPTO_USER, scopes.keys[stack],
                           f"encrypt and decrypt the {stack} stack's secrets")]


def _state(level: str, readable: tuple[str, ...], writable: tuple[str, ...], scopes: Scopes) -> Grant:
    read = tuple(p for stack in readable for p in roles.state_paths(MAIN_PROJECT, stack))
    write = tuple(p for stack in writable for p in roles.state_paths(MAIN_PROJECT, stack))
    role = roles.STORAGE_BLOB_DATA_CONTRIBUTOR if writable else roles.STORAGE_BLOB_DATA_READER
    what = f"read {', '.join(readable)} state" + (f", write {', '.join(writable)} state" if writable else "")
    return Grant("state", role, scopes.state_container, what, roles.state_condition(read, write))


def matrix(cfg: BootstrapConfig, scopes: Scopes) -> dict[str, list[Grant]]:
    """Trust level -> the grants of its identity (see the module docstring)."""
    assignable = assignable_roles(cfg)
    runner = Grant("runner-address", roles.READER, scopes.runner_address,
                   "read the prod runner's egress address (the prod stack's authorized range)")
    return {
        "preview": [*_read_stack("dev", scopes), _state("preview", ("dev",), (), scopes)],
        "dev": [*_deploy_stack("dev", scopes, assignable), *_read_stack("prod", scopes),
                _state("dev", ("dev", "prod"), ("dev",), scopes), runner],
        "prod": [*_deploy_stack("prod", scopes, assignable), _state("prod", ("prod",), ("prod",), scopes),
                 runner],
    }
