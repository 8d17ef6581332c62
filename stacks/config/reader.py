"""The one typed reader of stack configuration: raw values from `pulumi.Config` (or a test's dict), the
defaults of `Pulumi.yaml`, and `ConfigError`s that start with the full key.

A value is the stack's (text, as Pulumi stores it) or else the key's default in `Pulumi.yaml`; an empty string
means "not set" (e.g. `kubernetesVersion: ""` lets AKS choose).
"""

from __future__ import annotations

import functools
import ipaddress
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

PROJECT = "aks-image-classifier"

#: The project file whose `config:` block holds every default (the one source of truth; the Pulumi CLI
#: applies the same defaults to the stack before the program runs).
PROJECT_FILE = Path(__file__).resolve().parents[2] / "Pulumi.yaml"

#: An RFC 1123 label (Kubernetes names, Azure DNS labels).
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")

#: Principal types of a RoleAssignment (azure-native authorization.PrincipalType).
PRINCIPAL_TYPES = ("User", "ServicePrincipal", "Group")


class ConfigError(ValueError):
    """A stack setting is missing or invalid; the message starts with the full config key."""


Getter = Callable[[str], Any]


@functools.cache
def project_defaults(path: Path = PROJECT_FILE) -> dict[str, Any]:
    """`{full key: default}` from the `config:` block of `Pulumi.yaml` (YAML-typed: int, str, list)."""
    document = yaml.safe_load(path.read_text())
    return {
        (key if ":" in key else f"{PROJECT}:{key}"): spec.get("default")
        for key, spec in (document.get("config") or {}).items()
        if isinstance(spec, dict)
    }


class Reader:
    """Typed access to raw config values that names the key on error.

    A value is the stack's (text, as Pulumi stores it) or else the key's default in `Pulumi.yaml`; an empty
    string means "not set" (e.g. `kubernetesVersion: ""` lets AKS choose).
    """

    def __init__(self, get: Getter, defaults: dict[str, Any]):
        self._get = get
        self._defaults = defaults

    def key(self, name: str) -> str:
        return name if ":" in name else f"{PROJECT}:{name}"

    def raw(self, name: str) -> Any:
        key = self.key(name)
        value = self._get(key)
        if value is None:
            if key.startswith(f"{PROJECT}:") and key not in self._defaults:
                raise ConfigError(f"{key} is not declared in Pulumi.yaml (a typo, or a key to declare there)")
            value = self._defaults.get(key)
        return value

    def str(self, name: str) -> str | None:
        value = self.raw(name)
        if value is None or value == "":
            return None
        return str(value)

    def required(self, name: str) -> str:
        value = self.str(name)
        if value is None:
            raise ConfigError(f"{self.key(name)} must be set (declare a default in Pulumi.yaml)")
        return value

    def int(self, name: str, minimum: int | None = None, maximum: int | None = None) -> int:
        value = self.raw(name)
        try:
            result = int(str(value))
        except ValueError:
            raise ConfigError(f"{self.key(name)} must be an integer, got {value!r}") from None
        if minimum is not None and result < minimum:
            raise ConfigError(f"{self.key(name)} must be >= {minimum}, got {result}")
        if maximum is not None and result > maximum:
            raise ConfigError(f"{self.key(name)} must be <= {maximum}, got {result}")
        return result

    def bool(self, name: str) -> bool:
        """A `boolean` key: YAML true/false (a default) or the text "true"/"false" (a stack value)."""
        value = self.raw(name)
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "false"):
            return str(value).lower() == "true"
        raise ConfigError(f"{self.key(name)} must be true or false, got {value!r}")

    def list(self, name: str) -> tuple[str, ...]:
        value = self.raw(name)
        if value is None or value == "":
            return ()
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise ConfigError(f"{self.key(name)} must be a list, got {value!r}") from None
        if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
            raise ConfigError(f"{self.key(name)} must be a list of strings, got {value!r}")
        return tuple(str(v) for v in value)

    def choice(self, name: str, choices: tuple[str, ...] | dict[str, Any]) -> str:
        value = self.str(name)
        if value not in choices:
            raise ConfigError(f"{self.key(name)} must be one of {', '.join(choices)}; got {value!r}")
        return value

    def match(self, name: str, pattern: re.Pattern[str], what: str) -> str:
        value = self.required(name)
        if not pattern.match(value):
            raise ConfigError(f"{self.key(name)} is not a valid {what}: {value!r}")
        return value

    def cidrs(self, name: str) -> tuple[str, ...]:
        """A list of CIDRs (IPv4 or IPv6, host bits zero), checked by `ipaddress.ip_network(strict=True)`."""
        ranges = self.list(name)
        for cidr in ranges:
            try:
                ipaddress.ip_network(cidr, strict=True)
            except ValueError as exc:
                raise ConfigError(f"{self.key(name)} has an invalid CIDR {cidr!r}: {exc}") from None
        return ranges
