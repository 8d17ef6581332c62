"""The identity matrix, enumerated from what the bootstrap declares under mocks: for each trust level's
identity, the roles it holds on which scopes, and which roles it may assign to which principal types where.

Rules modelled: Azure RBAC grants a role's actions at the assignment's scope and below (learn.microsoft.com/
azure/role-based-access-control/scope-overview); a condition on Role Based Access Control Administrator limits
the roles and principal types of the assignments it creates or deletes ("Examples to delegate Azure role
assignment management with conditions", "Constrain roles and principal types"); a Blob Storage condition's
`StringLike` matches `*` against any run of characters, `/` included (role-based-access-control/
conditions-format#stringlike), which `fnmatch.fnmatchcase` reproduces.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field

import pytest

from tests.bootstrap.harness import run_bootstrap
from tests.harness.stack_mocks import SUBSCRIPTION_ID, MockRun

REPO = "octo-org/aks-image-classifier"
SUBJECT = {"preview": f"repo:{REPO}:pull_request", "dev": f"repo:{REPO}:ref:refs/heads/main",
           "prod": f"repo:{REPO}:environment:production"}
#: Built-in role GUIDs (learn.microsoft.com/azure/role-based-access-control/built-in-roles) -> names.
ROLE = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Owner",
    "b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
    "acdd72a7-3385-48ef-bd42-f606fba81ae7": "Reader",
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9": "User Access Administrator",
    "f58310d9-a9f6-439a-9e8d-f62e7b41a168": "Role Based Access Control Administrator",
    "ba92f5b4-2d11-453d-a403-e96b0029c9fe": "Storage Blob Data Contributor",
    "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1": "Storage Blob Data Reader",
    "12338af0-0e69-4776-bea7-57ae8d297424": "Key Vault Crypto User",
    "7f951dda-4ed3-4680-a7ca-43fe172d538d": "AcrPull",
    "b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b": "Azure Kubernetes Service RBAC Cluster Admin",
    "3498e952-d568-435e-9b2c-8d77e338d7f7": "Azure Kubernetes Service RBAC Admin",
    "a7ffa36f-339b-4b5c-8bdf-e2c188b2c0eb": "Azure Kubernetes Service RBAC Writer",
    "7f6c6a51-bcf8-42ba-9220-52d62157d7db": "Azure Kubernetes Service RBAC Reader",
    "4abbcc35-e782-43d8-92c5-2d3abe0ed2dd": "Azure Kubernetes Service Cluster User Role",
    "b0d8363b-8ddd-447d-831f-62ca05bff136": "Monitoring Data Reader",
}
#: Roles with no write, delete or role-assignment action on anything (their actions are `*/read`, the AKS
#: user credential list, blob read, key read/decrypt).
READ_ONLY = {"Reader", "Azure Kubernetes Service Cluster User Role", "Azure Kubernetes Service RBAC Reader",
             "Storage Blob Data Reader", "Pulumi secrets decrypt"}
ASSIGNING = {"Owner", "User Access Administrator", "Role Based Access Control Administrator"}
DEV_RG, PROD_RG = "group:aks-image-classifier-dev", "group:aks-image-classifier-prod"
STACK = "aks-image-classifier"


@dataclass
class Identity:
    name: str
    principal: str
    holds: set[tuple[str, str]] = field(default_factory=set)  # (role name, scope)
    conditions: dict[tuple[str, str], str] = field(default_factory=dict)


def scope_name(scope: str) -> str:
    """An ARM id as a short name: subscription, group:<name>, state-container, key:<name>, runner-ip."""
    sub = f"/subscriptions/{SUBSCRIPTION_ID}"
    if scope == sub:
        return "subscription"
    if match := re.fullmatch(rf"{sub}/resourceGroups/([^/]+)", scope):
        return f"group:{match.group(1)}"
    if "/blobServices/default/containers/" in scope:
        return "state-container"
    if match := re.search(r"/providers/Microsoft\.KeyVault/vaults/[^/]+/keys/([^/]+)$", scope):
        return f"key:{match.group(1)}"
    if "/publicIPAddresses/" in scope:
        return "runner-ip"
    return scope


def role_name(run: MockRun, role_definition_id: str) -> str:
    guid = role_definition_id.rsplit("/", 1)[1]
    custom = {r.state["name"]: r.inputs["roleName"]
              for r in run.of_type("azure-native:authorization:RoleDefinition")}
    if guid in custom:
        assert custom[guid].startswith("Pulumi secrets decrypt")
        return "Pulumi secrets decrypt"
    return ROLE[guid]


def identities(run: MockRun) -> dict[str, Identity]:
    """Subject -> the identity that trusts it, with every role it holds (by principal id)."""
    by_name = {r.state["name"]: Identity(r.state["name"], r.state["principalId"])
               for r in run.of_type("azure-native:managedidentity:UserAssignedIdentity")}
    by_principal = {i.principal: i for i in by_name.values()}
    for assignment in run.of_type("azure-native:authorization:RoleAssignment"):
        identity = by_principal.get(assignment.inputs["principalId"])
        if identity is None:
            continue
        held = (role_name(run, assignment.inputs["roleDefinitionId"]), scope_name(assignment.inputs["scope"]))
        identity.holds.add(held)
        if "condition" in assignment.inputs:
            identity.conditions[held] = assignment.inputs["condition"]
    return {c.inputs["subject"]: by_name[c.inputs["resourceName"]]
            for c in run.of_type("azure-native:managedidentity:FederatedIdentityCredential")}


def may_assign(identity: Identity) -> set[tuple[str, str, str]]:
    """(role name, principal type, scope) triples the identity may create, read from its conditions; an
    assigning role without a condition may assign anything (`*`)."""
    found = set()
    for (role, scope) in identity.holds:
        if role not in ASSIGNING:
            continue
        condition = identity.conditions.get((role, scope))
        if condition is None:
            found.add(("*", "*", scope))
            continue
        write = condition.split(" AND ((!(ActionMatches{'Microsoft.Authorization/roleAssignments/delete'")[0]
        guids = re.findall(r"GuidEquals \{([^}]*)\}", write)[0].split(", ")
        types = re.findall(r"PrincipalType\] ForAnyOfAnyValues:StringEqualsIgnoreCase \{([^}]*)\}", write)
        type_names = [t.strip(" '") for t in types[0].split(",")] if types else ["*"]
        found |= {(ROLE[g], t, scope) for g in guids for t in type_names}
    return found


@pytest.fixture(scope="module")
def run() -> MockRun:
    return run_bootstrap()


@pytest.fixture(scope="module")
def by_subject(run) -> dict[str, Identity]:
    return identities(run)


def test_pull_request_identity_can_neither_write_nor_assign(by_subject):
    """The identity a pull request logs in as holds read-only roles only, none at subscription scope."""
    preview = by_subject[SUBJECT["preview"]]
    assert preview.holds, "the preview identity holds no role"
    writes = {held for held in preview.holds if held[0] not in READ_ONLY}
    assert not writes, f"a pull request can write or assign: {sorted(writes)}"
    assert not may_assign(preview)
    assert all(scope != "subscription" for _, scope in preview.holds)


def test_each_trust_level_has_its_own_identity(by_subject):
    assert set(by_subject) == set(SUBJECT.values())
    names = {by_subject[s].name for s in SUBJECT.values()}
    assert names == {"github-deploy-preview", "github-deploy-dev", "github-deploy-prod"}
    assert len({by_subject[s].principal for s in SUBJECT.values()}) == 3


def test_role_matrix(by_subject):
    held = {level: by_subject[subject].holds for level, subject in SUBJECT.items()}
    read_dev = {("Reader", DEV_RG), ("Azure Kubernetes Service Cluster User Role", DEV_RG),
                ("Azure Kubernetes Service RBAC Reader", DEV_RG)}
    read_prod = {(role, PROD_RG) for role, _ in read_dev}
    assert held["preview"] == read_dev | {
        ("Storage Blob Data Reader", "state-container"), ("Pulumi secrets decrypt", "key:pulumi-secrets-dev")}
    assert held["dev"] == read_prod | {
        ("Contributor", DEV_RG), ("Role Based Access Control Administrator", DEV_RG),
        ("Storage Blob Data Contributor", "state-container"),
        ("Key Vault Crypto User", "key:pulumi-secrets-dev"),
        ("Pulumi secrets decrypt", "key:pulumi-secrets-prod"), ("Reader", "runner-ip")}
    assert held["prod"] == {
        ("Contributor", PROD_RG), ("Role Based Access Control Administrator", PROD_RG),
        ("Storage Blob Data Contributor", "state-container"),
        ("Key Vault Crypto User", "key:pulumi-secrets-prod"),
        ("Reader", "runner-ip")}


def test_no_identity_holds_owner_or_anything_at_subscription_scope(by_subject):
    for identity in by_subject.values():
        assert not {r for r, _ in identity.holds} & {"Owner", "User Access Administrator"}, identity.name
        assert all(scope == "runner-ip" or scope.startswith(("group:", "key:", "state-container"))
                   for _, scope in identity.holds), identity.holds


def test_assignment_matrix(by_subject):
    """Deploy identities assign only the main program's roles, only to service principals and groups, only
    inside their own stack's groups."""
    expected_roles = {"AcrPull", "Storage Blob Data Reader", "Storage Blob Data Contributor",
                      "Monitoring Data Reader", "Azure Kubernetes Service RBAC Cluster Admin"}
    for level, group in (("dev", DEV_RG), ("prod", PROD_RG)):
        assert may_assign(by_subject[SUBJECT[level]]) == {
            (role, kind, group) for role in expected_roles for kind in ("ServicePrincipal", "Group")}, level


def test_cluster_admin_is_assignable_only_when_config_asks():
    found = identities(run_bootstrap({"clusterAdminAssignable": False}))
    roles = {role for role, _, _ in may_assign(found[SUBJECT["dev"]])}
    assert roles == {"AcrPull", "Storage Blob Data Reader", "Storage Blob Data Contributor",
                     "Monitoring Data Reader"}


def _state_paths(condition: str, action: str) -> list[str]:
    """The `StringLike` blob path patterns of the clause of `condition` that governs `action`."""
    for clause in condition.split(" AND ((!(ActionMatches"):
        if f"containers/blobs/{action}'" in clause.split(" OR ")[0]:
            return re.findall(r"blobs:path\] StringLike '([^']+)'", clause)
    return []


def _allowed(condition: str, action: str, path: str) -> bool:
    patterns = _state_paths(condition, action)
    return any(fnmatch.fnmatchcase(path, p) for p in patterns)


@pytest.mark.parametrize(("level", "action", "stack", "allowed"), [
    ("preview", "read", "dev", True), ("preview", "read", "prod", False),
    ("dev", "read", "dev", True), ("dev", "read", "prod", True),
    ("dev", "write", "dev", True), ("dev", "write", "prod", False), ("dev", "delete", "prod", False),
    ("prod", "read", "prod", True), ("prod", "read", "dev", False),
    ("prod", "write", "prod", True), ("prod", "write", "dev", False),
])
def test_state_blobs_each_identity_may_read_and_write(by_subject, level, action, stack, allowed):
    """The DIY backend's blobs of one stack (pulumi/pulumi pkg/backend/diy: checkpoint, backup, history and
    lock files) are readable and writable exactly as the matrix says."""
    identity = by_subject[SUBJECT[level]]
    (condition,) = [c for (role, scope), c in identity.conditions.items() if scope == "state-container"]
    blobs = [f".pulumi/stacks/{STACK}/{stack}.json", f".pulumi/stacks/{STACK}/{stack}.json.bak",
             f".pulumi/locks/{STACK}/{stack}/3f0c.json",
             f".pulumi/history/{STACK}/{stack}/{stack}-1.history.json",
             f".pulumi/backups/{STACK}/{stack}/{stack}.1700000000.json"]
    assert [_allowed(condition, action, blob) for blob in blobs] == [allowed] * len(blobs)
    assert _allowed(condition, "read", ".pulumi/meta.yaml")
    assert not _allowed(condition, action, f".pulumi/stacks/{STACK}/{stack}x.json")
    if level == "preview":
        assert _state_paths(condition, "write") == []  # a reader role, and no write clause


LEVEL_ORDER = ("preview", "dev", "prod")


def _scope_text(identity: Identity, role: str, scope: str) -> str:
    if scope.startswith("group:"):
        return f"group `{scope.removeprefix('group:')}`"
    if scope.startswith("key:"):
        return f"key `{scope.removeprefix('key:')}`"
    if scope == "runner-ip":
        return "the prod runner's public IP"
    condition = identity.conditions[(role, scope)]
    blob = f".pulumi/stacks/{STACK}/{{}}.json"
    reads = [s for s in ("dev", "prod") if _allowed(condition, "read", blob.format(s))]
    writes = [s for s in ("dev", "prod") if _allowed(condition, "write", blob.format(s))]
    return f"state container: read {', '.join(reads)}" + (f"; write {', '.join(writes)}" if writes else "")


def doc_tables(run: MockRun) -> tuple[list[str], list[str]]:
    """The rows of docs/delivery.md's two matrix tables (roles held; assignments allowed), from the run."""
    by_level = {i.name.rsplit("-", 1)[1]: i for i in identities(run).values()}
    held, assign = [], []
    for level in LEVEL_ORDER:
        identity = by_level[level]
        for role, scope in sorted(identity.holds, key=lambda h: (h[1], h[0])):
            held.append(f"| `{identity.name}` | {role} | {_scope_text(identity, role, scope)} |")
        triples = may_assign(identity)
        for scope in sorted({s for _, _, s in triples}):
            roles_ = ", ".join(sorted({r for r, _, s in triples if s == scope}))
            kinds = ", ".join(sorted({k for _, k, s in triples if s == scope}))
            assign.append(f"| `{identity.name}` | {roles_} | {kinds} | {_scope_text(identity, '', scope)} |")
    return held, assign


def test_docs_state_the_matrix(run):
    """docs/delivery.md's identity matrix is the one the bootstrap declares, row for row."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "delivery.md").read_text()
    held, assign = doc_tables(run)
    for rows in (held, assign):
        block = "\n".join(rows)
        assert block in doc, block
