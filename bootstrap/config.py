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
#: The main program's project name and the stacks its workflows deploy (.github/workflows/deploy.yml).
MAIN_PROJECT = "aks-image-classifier"
STACKS = ("dev", "prod")
#: GitHub's OIDC token issuer and the audience Entra expects for workload identity federation
#: (learn.microsoft.com/entra/workload-id/workload-identity-federation-create-trust, GitHub tab).
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
FEDERATION_AUDIENCE = "api://AzureADTokenExchange"
#: Entra limit: a federated credential's subject is at most 600 characters
#: (learn.microsoft.com/entra/workload-id/workload-identity-federation-considerations).
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
_KEY = re.compile(r"^[A-Za-z0-9-]{1,120}$")
_RESOURCE_GROUP = re.compile(r"^[-\w._()]{0,89}[-\w_()]$")
_IDENTITY_PREFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{2,99}$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
# Azure VM size names (`Standard_D2as_v5`) and runner labels (GitHub: letters, digits, `-`, `_`, `.`).
_VM_SIZE = re.compile(r"^(Standard|Basic)_[A-Za-z0-9_]+$")
_LABEL = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
_VERSION = re.compile(r"^\d+\.\d+\.\d+$")


class ConfigError(ValueError):
    """A bootstrap setting is missing or invalid; the message starts with the full config key."""


@dataclass(frozen=True)
class BootstrapConfig:
    """Everything the bootstrap program needs, validated.

    `repository` is `owner/repo`; `subjects` maps each trust level (`preview`, `dev`, `prod`) to the one
    OIDC subject claim its identity trusts; `stack_groups` maps each stack (`dev`, `prod`) to the resource
    groups the bootstrap creates for it (the main program's `resourceGroupName`); `identity_prefix` names
    the identities `<prefix>-<level>`; `storage_account_name` / `key_vault_name` None means a generated
    globally unique name; `key_prefix` names one key per stack `<prefix>-<stack>`; `state_retention_days`
    / `soft_delete_retention_days` are days; `extra_assignable_roles` are role definition GUIDs;
    `runner` the prod runner's settings.
    """

    location: str
    repository: str
    main_branch: str
    production_environment: str
    subjects: dict[str, str]
    stack_groups: dict[str, tuple[str, ...]]
    resource_group_name: str
    identity_prefix: str
    storage_account_name: str | None
    storage_sku: str
    state_container: str
    state_retention_days: int
    key_vault_name: str | None
    key_prefix: str
    soft_delete_retention_days: int
    runner: RunnerConfig
    cluster_admin_assignable: bool = True
    extra_assignable_roles: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunnerConfig:
    """Where prod's `pulumi up` runs: a Linux VM (`vm_size`) in subnet `address_prefix` (CIDR) whose only
    way out is a NAT gateway with one static public IP; GitHub runner `version` registered with `labels`
    using `registration_token` (None: the network and address exist, the VM is not declared yet)."""

    vm_size: str
    address_prefix: str
    labels: tuple[str, ...]
    version: str
    registration_token: str | None


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


#: Trust levels, each with its own identity: pull requests (untrusted code, read only), the main branch
#: (reviewed code: writes dev, reads prod for the prod preview), the production environment (approved).
LEVELS = ("preview", "dev", "prod")
_SUBJECT_KEYS = {"preview": "previewSubject", "dev": "devSubject", "prod": "prodSubject"}


def default_subjects(repository: str, main_branch: str, environment: str) -> dict[str, str]:
    """GitHub's default OIDC subject claims per trust level: pull requests, pushes and manual runs on
    `main_branch`, jobs in `environment` (docs.github.com, "OpenID Connect reference", example subject
    claims; a job with `environment:` presents the environment subject, never the branch one)."""
    return {
        "preview": f"repo:{repository}:pull_request",
        "dev": f"repo:{repository}:ref:refs/heads/{main_branch}",
        "prod": f"repo:{repository}:environment:{environment}",
    }


def _subjects(get: Getter, repository: str, main_branch: str, environment: str) -> dict[str, str]:
    defaults = default_subjects(repository, main_branch, environment)
    subjects = {level: _str(get, _SUBJECT_KEYS[level], defaults[level]) or "" for level in LEVELS}
    for level, subject in subjects.items():
        if not subject.startswith("repo:") or len(subject) > MAX_SUBJECT_LENGTH or any(
            c.isspace() or c == "*" for c in subject
        ):
            raise ConfigError(
                f"{_key(_SUBJECT_KEYS[level])} must be a GitHub subject claim `repo:...` of at most "
                f"{MAX_SUBJECT_LENGTH} characters without spaces or wildcards, got {subject!r}"
            )
    if ":environment:" not in subjects["prod"]:
        raise ConfigError(f"{_key('prodSubject')} must be an environment subject (`...:environment:<name>`), "
                          f"got {subjects['prod']!r}: only an environment's reviewers guard production")
    if len(set(subjects.values())) != len(LEVELS):
        raise ConfigError(f"{_key('previewSubject')}, {_key('devSubject')} and {_key('prodSubject')} must "
                          f"differ (one identity per trust level), got {subjects}")
    return subjects


def _groups(get: Getter) -> dict[str, tuple[str, ...]]:
    groups = {}
    for stack in STACKS:
        name = f"{stack}ResourceGroups"
        values = _list(get, name) or (f"{MAIN_PROJECT}-{stack}",)
        for value in values:
            if not _RESOURCE_GROUP.match(value):
                raise ConfigError(f"{_key(name)} entries must be resource group names (1-90 letters, digits, "
                                  f"-._()), got {value!r}")
        groups[stack] = values
    flat = [g.lower() for values in groups.values() for g in values]
    if len(set(flat)) != len(flat):
        raise ConfigError(f"{_key('devResourceGroups')} and {_key('prodResourceGroups')} must not share or "
                          f"repeat a group: {groups}")
    return groups


def _bool(get: Getter, name: str, default: bool) -> bool:
    value = get(_key(name))
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "false"):
        return str(value).lower() == "true"
    raise ConfigError(f"{_key(name)} must be true or false, got {value!r}")


def _runner(get: Getter) -> RunnerConfig:
    import ipaddress

    prefix = _str(get, "runnerAddressPrefix", "10.90.0.0/27") or ""
    try:
        network = ipaddress.ip_network(prefix)
    except ValueError:
        raise ConfigError(f"{_key('runnerAddressPrefix')} must be a CIDR block, got {prefix!r}") from None
    # Azure reserves 5 addresses per subnet; /29 is the smallest subnet it accepts (virtual network FAQ).
    if network.version != 4 or not network.is_private or network.prefixlen > 29:
        raise ConfigError(f"{_key('runnerAddressPrefix')} must be a private IPv4 block of /29 or larger, "
                          f"got {prefix!r}")
    labels = _list(get, "runnerLabels") or ("aic-prod",)
    for label in labels:
        if not _LABEL.match(label) or label.lower() in ("self-hosted", "linux", "x64"):
            raise ConfigError(f"{_key('runnerLabels')} entries must be custom runner labels (letters, "
                              f"digits, -_.; not a default label), got {label!r}")
    return RunnerConfig(
        vm_size=_match(get, "runnerVmSize", "Standard_D2as_v5", _VM_SIZE, "an Azure VM size") or "",
        address_prefix=str(network),
        labels=labels,
        version=_match(get, "runnerVersion", "2.329.0", _VERSION, "a runner version x.y.z") or "",
        registration_token=_str(get, "runnerRegistrationToken", None),
    )


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
        stack_groups=_groups(get),
        resource_group_name=_match(get, "resourceGroupName", "aks-image-classifier-delivery", _RESOURCE_GROUP,
                                   "a resource group name (1-90 letters, digits, -._())")
        or "",
        identity_prefix=_match(get, "identityPrefix", "github-deploy", _IDENTITY_PREFIX,
                               "an identity name prefix (3-100 letters, digits, - and _)") or "",
        storage_account_name=_match(get, "storageAccountName", None, _STORAGE_ACCOUNT,
                                    "3-24 lowercase letters or digits"),
        storage_sku=_choice(get, "storageSku", "Standard_LRS", STORAGE_SKUS),
        state_container=_match(get, "stateContainer", "pulumi-state", _CONTAINER,
                               "a container name (3-63 lowercase letters, digits, single hyphens)") or "",
        state_retention_days=_int(get, "stateRetentionDays", 30, 1, 365),
        key_vault_name=_match(get, "keyVaultName", None, _VAULT,
                              "a vault name (3-24 letters, digits, single hyphens, starting with a letter)"),
        key_prefix=_match(get, "keyPrefix", "pulumi-secrets", _KEY,
                          "a key name prefix (letters, digits, hyphens)") or "",
        soft_delete_retention_days=_int(get, "softDeleteRetentionDays", 90, 7, 90),
        runner=_runner(get),
        cluster_admin_assignable=_bool(get, "clusterAdminAssignable", True),
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
