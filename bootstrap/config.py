"""Bootstrap configuration: read once from `pulumi.Config`, validated into a typed, frozen object.

Every check runs before any resource is declared, so a mistake fails `pulumi preview` / `pulumi up`
with a `ConfigError` whose message starts with the full key, e.g.
`aks-image-classifier-bootstrap:githubRepository must be owner/repo, got 'my-repo'`.
Defaults live in `bootstrap/Pulumi.yaml`; the values below repeat them for runs without the CLI (mocks).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

PROJECT = "aks-image-classifier-bootstrap"
#: GitHub's OIDC token issuer and the audience Entra expects for workload identity federation
#: (learn.microsoft.com/entra/workload-id/workload-identity-federation-create-trust, GitHub tab).
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
FEDERATION_AUDIENCE = "api://AzureADTokenExchange"
#: Entra limits: 20 federated identity credentials per managed identity, subject at most 600 characters
#: (learn.microsoft.com/entra/workload-id/workload-identity-federation-considerations).
MAX_FEDERATED_CREDENTIALS = 20
MAX_SUBJECT_LENGTH = 600
STORAGE_SKUS = ("Standard_LRS", "Standard_ZRS", "Standard_GRS", "Standard_RAGRS", "Standard_GZRS")

# GitHub: an owner is 1-39 letters, digits or single inner hyphens; a repository name is 1-100 of
# letters, digits, `.`, `_`, `-` (and never `.` or `..`).
_OWNER = r"[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}"
_REPO = r"[A-Za-z0-9._-]{1,100}"
_REPOSITORY = re.compile(rf"^({_OWNER})/({_REPO})$")
# git check-ref-format, roughly: no spaces, `..`, `~^:?*[\`, no leading/trailing `/` or `.lock`.
_BRANCH = re.compile(r"^(?!/)(?!.*//)(?!.*\.\.)(?!.*\.lock$)(?!.*/$)[^\s~^:?*\[\\]{1,255}$")
_ENVIRONMENT = re.compile(r"^[^\s'\"`,;:\\]{1,255}$")
# Azure naming rules (learn.microsoft.com/azure/azure-resource-manager/management/resource-name-rules).
_STORAGE_ACCOUNT = re.compile(r"^[a-z0-9]{3,24}$")
_CONTAINER = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$")
_VAULT = re.compile(r"^(?=.{3,24}$)[A-Za-z](?!.*--)[A-Za-z0-9-]*[A-Za-z0-9]$")
_KEY = re.compile(r"^[A-Za-z0-9-]{1,127}$")
_RESOURCE_GROUP = re.compile(r"^[-\w._()]{0,89}[-\w_()]$")
_IDENTITY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{2,127}$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


class ConfigError(ValueError):
    """A bootstrap setting is missing or invalid; the message starts with the full config key."""


@dataclass(frozen=True)
class BootstrapConfig:
    """Everything the bootstrap program needs, validated.

    `repository` is `owner/repo`; `subjects` the OIDC subject claims the deploy identity trusts;
    `storage_account_name` / `key_vault_name` None means a generated globally unique name;
    `state_retention_days` / `soft_delete_retention_days` are days; `extra_assignable_roles` are
    role definition GUIDs.
    """

    location: str
    repository: str
    main_branch: str
    production_environment: str
    subjects: tuple[str, ...]
    resource_group_name: str
    identity_name: str
    storage_account_name: str | None
    storage_sku: str
    state_container: str
    state_retention_days: int
    key_vault_name: str | None
    key_name: str
    soft_delete_retention_days: int
    extra_assignable_roles: tuple[str, ...] = ()


Getter = Callable[[str], Any]


def _key(name: str) -> str:
    return name if ":" in name else f"{PROJECT}:{name}"


def _str(get: Getter, name: str, default: str | None) -> str | None:
    value = get(_key(name))
    return default if value is None or value == "" else str(value)


def _match(get: Getter, name: str, default: str | None, pattern: re.Pattern[str], what: str) -> str | None:
    value = _str(get, name, default)
    if value is not None and not pattern.match(value):
        raise ConfigError(f"{_key(name)} must be {what}, got {value!r}")
    return value


def _int(get: Getter, name: str, default: int, minimum: int, maximum: int) -> int:
    value = get(_key(name))
    if value is None or value == "":
        return default
    try:
        result = int(str(value))
    except ValueError:
        raise ConfigError(f"{_key(name)} must be an integer, got {value!r}") from None
    if not minimum <= result <= maximum:
        raise ConfigError(f"{_key(name)} must be between {minimum} and {maximum}, got {result}")
    return result


def _list(get: Getter, name: str) -> tuple[str, ...]:
    value = get(_key(name))
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise ConfigError(f"{_key(name)} must be a list, got {value!r}") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{_key(name)} must be a list of strings, got {value!r}")
    return tuple(value)


def default_subjects(repository: str, main_branch: str, environment: str) -> tuple[str, ...]:
    """GitHub's default OIDC subject claims for pushes to `main_branch`, pull requests and jobs in
    `environment` (docs.github.com, "OpenID Connect reference", example subject claims)."""
    return (
        f"repo:{repository}:ref:refs/heads/{main_branch}",
        f"repo:{repository}:pull_request",
        f"repo:{repository}:environment:{environment}",
    )


def _subjects(get: Getter, repository: str, main_branch: str, environment: str) -> tuple[str, ...]:
    key = _key("federatedSubjects")
    subjects = _list(get, "federatedSubjects") or default_subjects(repository, main_branch, environment)
    if len(subjects) > MAX_FEDERATED_CREDENTIALS:
        raise ConfigError(f"{key} has {len(subjects)} subjects; Entra allows {MAX_FEDERATED_CREDENTIALS}")
    for subject in subjects:
        if not subject.startswith("repo:") or len(subject) > MAX_SUBJECT_LENGTH or any(
            c.isspace() or c == "*" for c in subject
        ):
            raise ConfigError(
                f"{key} entries must be GitHub subject claims `repo:...` of at most {MAX_SUBJECT_LENGTH} "
                f"characters without spaces or wildcards, got {subject!r}"
            )
    if len(set(subjects)) != len(subjects):
        raise ConfigError(f"{key} lists a subject twice: {list(subjects)}")
    return subjects


def load_config(get: Getter | None = None) -> BootstrapConfig:
    """Read and validate the bootstrap configuration.

    `get(full_key)` returns the raw value or None; by default it reads the running stack's config.
    Raises `ConfigError` naming the key for a missing required value (`githubRepository`,
    `azure-native:location`) or an invalid one.
    """
    get = get if get is not None else _pulumi_getter()
    location = _str(get, "azure-native:location", None)
    if not location:
        raise ConfigError("azure-native:location must be set (e.g. westeurope)")
    repository = _str(get, "githubRepository", None)
    if repository is None:
        raise ConfigError(
            f"{_key('githubRepository')} must be set: `pulumi config set githubRepository owner/repo`"
        )
    if not _REPOSITORY.match(repository) or repository.split("/")[1] in (".", ".."):
        raise ConfigError(
            f"{_key('githubRepository')} must be owner/repo (a GitHub repository), got {repository!r}"
        )
    main_branch = _match(get, "mainBranch", "main", _BRANCH, "a branch name")
    environment = _match(get, "productionEnvironment", "production", _ENVIRONMENT,
                         "a GitHub environment name")
    assert main_branch is not None and environment is not None
    extra_roles = _list(get, "extraAssignableRoles")
    for guid in extra_roles:
        if not _GUID.match(guid):
            raise ConfigError(
                f"{_key('extraAssignableRoles')} entries must be role definition GUIDs, got {guid!r}"
            )
    return BootstrapConfig(
        location=location,
        repository=repository,
        main_branch=main_branch,
        production_environment=environment,
        subjects=_subjects(get, repository, main_branch, environment),
        resource_group_name=_match(get, "resourceGroupName", "aks-image-classifier-delivery", _RESOURCE_GROUP,
                                   "a resource group name (1-90 letters, digits, -._())")
        or "",
        identity_name=_match(get, "identityName", "github-deploy", _IDENTITY,
                             "an identity name (3-128 letters, digits, - and _)") or "",
        storage_account_name=_match(get, "storageAccountName", None, _STORAGE_ACCOUNT,
                                    "3-24 lowercase letters or digits"),
        storage_sku=_choice(get, "storageSku", "Standard_LRS", STORAGE_SKUS),
        state_container=_match(get, "stateContainer", "pulumi-state", _CONTAINER,
                               "a container name (3-63 lowercase letters, digits, single hyphens)") or "",
        state_retention_days=_int(get, "stateRetentionDays", 30, 1, 365),
        key_vault_name=_match(get, "keyVaultName", None, _VAULT,
                              "a vault name (3-24 letters, digits, single hyphens, starting with a letter)"),
        key_name=_match(get, "keyName", "pulumi-secrets", _KEY,
                        "a key name (letters, digits, hyphens)") or "",
        soft_delete_retention_days=_int(get, "softDeleteRetentionDays", 90, 7, 90),
        extra_assignable_roles=tuple(g.lower() for g in extra_roles),
    )


def _choice(get: Getter, name: str, default: str, choices: tuple[str, ...]) -> str:
    value = _str(get, name, default)
    if value not in choices:
        raise ConfigError(f"{_key(name)} must be one of {', '.join(choices)}; got {value!r}")
    return value


def _pulumi_getter() -> Getter:
    import pulumi

    configs: dict[str, pulumi.Config] = {}

    def get(full_key: str) -> Any:
        namespace, _, name = full_key.partition(":")
        return configs.setdefault(namespace, pulumi.Config(namespace)).get(name)

    return get
