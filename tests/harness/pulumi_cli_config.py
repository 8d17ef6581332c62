"""The Pulumi CLI's stack-config rules, applied to `Pulumi.yaml` and `Pulumi.<stack>.yaml` without the CLI.

Before any program runs, `pulumi preview` / `pulumi up` checks the project's `config:` block and merges it
into the stack's config. This module reproduces those rules so tests (and `tests.harness.stack_mocks`) refuse
what the real CLI refuses. It follows pulumi/pulumi `sdk/go/common/workspace`:

- `Project.Validate` (project.go): a key may not have both `default` and `value`; a project-namespaced
  `array` key needs `items`; a typed default must match its type (`ValidateConfigValue`); a key namespaced
  by another package (`azure-native:location`) may carry neither `type` nor `default`, only `value`.
- `mergeConfig` (config.go, called by `ValidateStackConfigAndApplyProjectConfig`): a project-namespaced key
  that the stack does not set and that has no `default` and no `value` is missing ("Stack 'dev' is missing
  configuration value 'apiKey'", tested upstream by
  `TestStackConfigErrorsWhenMissingStackValueForConfigTypeWithNoDefault`); otherwise the default (or value)
  is set on the stack in plaintext.
- `validateStackConfigValue` (config.go): for an explicitly typed key, a `secret: true` key whose stack value
  is not encrypted is refused ("must be encrypted as it's secret"; a default is plaintext, so a secret key
  with a default always fails), then the value must match the type.

Stack values are what the CLI's `config.Value` holds: a YAML scalar is its text (so `1` and `"1"` are both
the string "1", which an `integer` key accepts); a list or map is an object value, JSON-decoded before the
type check (so `[1, 2]` is not an `array<string>`); `{secure: ...}` is an encrypted value.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class CliConfigError(ValueError):
    """What the Pulumi CLI would print before running the program; the message is the CLI's wording."""


@dataclass(frozen=True)
class StackValue:
    """One stack config value as the CLI holds it: `text` (JSON for objects), `secure`, `is_object`."""

    text: str
    secure: bool = False
    is_object: bool = False

    @classmethod
    def from_yaml(cls, raw: Any) -> StackValue:
        """A value as written in `Pulumi.<stack>.yaml` (scalars as text; `{secure: ...}` encrypted)."""
        if isinstance(raw, dict) and set(raw) == {"secure"}:
            return cls(text="<encrypted>", secure=True)
        if isinstance(raw, dict | list):
            return cls(text=json.dumps(raw), is_object=True)
        if isinstance(raw, bool):
            return cls(text="true" if raw else "false")
        return cls(text="" if raw is None else str(raw))

    @classmethod
    def from_default(cls, raw: Any) -> StackValue:
        """A project default applied to a stack (`createConfigValue`): plaintext, objects as JSON."""
        if isinstance(raw, dict | list):
            return cls(text=json.dumps(raw), is_object=True)
        if isinstance(raw, bool):
            return cls(text="true" if raw else "false")
        return cls(text=str(raw))

    def content(self) -> Any:
        """What the type check sees: the text, or the decoded JSON of an object value."""
        return json.loads(self.text) if self.is_object else self.text


def _type_name(spec: dict[str, Any]) -> str:
    items = spec.get("items")
    return f"array<{_type_name(items)}>" if items else spec.get("type", "string")


def _explicitly_typed(spec: dict[str, Any]) -> bool:
    return isinstance(spec, dict) and "type" in spec


def value_matches_type(type_name: str, items: dict[str, Any] | None, value: Any) -> bool:
    """`ValidateConfigValue`: strings are strings; integers are ints, whole floats or integer text;
    booleans are bools or "true"/"false"; arrays are lists whose items match `items`."""
    if type_name == "string":
        return isinstance(value, str)
    if type_name == "integer":
        if isinstance(value, bool):
            return False
        if isinstance(value, int):
            return True
        if isinstance(value, float):
            return math.trunc(value) == value
        return isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]+", value) is not None  # strconv.Atoi
    if type_name == "boolean":
        return isinstance(value, bool) or value in ("true", "false")
    if not isinstance(value, list) or items is None:
        return False
    return all(value_matches_type(items.get("type", ""), items.get("items"), item) for item in value)


def _namespaced_by_project(project: str, key: str) -> bool:
    return ":" not in key or key.startswith(f"{project}:")


def full_key(project: str, key: str) -> str:
    """`name` -> `<project>:name`; an already namespaced key is returned as is."""
    return key if ":" in key else f"{project}:{key}"


def validate_project(document: dict[str, Any]) -> None:
    """`Project.Validate` on a parsed `Pulumi.yaml`. Raises `CliConfigError`."""
    project = document["name"]
    for key, spec in (document.get("config") or {}).items():
        if not isinstance(spec, dict):
            continue  # a bare value is shorthand for {value: ...}
        if "default" in spec and "value" in spec:
            raise CliConfigError(f"project config '{key}' cannot have both a 'default' and 'value' attribute")
        if _namespaced_by_project(project, key):
            if spec.get("type") == "array" and "items" not in spec:
                raise CliConfigError(
                    f"The configuration key '{key}' declares an array "
                    "but does not specify the underlying type via the 'items' attribute"
                )
            if (
                _explicitly_typed(spec)
                and spec.get("default") is not None
                and not value_matches_type(spec["type"], spec.get("items"), spec["default"])
            ):
                raise CliConfigError(
                    f"The default value specified for configuration key '{key}' is not of the expected "
                    f"type '{_type_name(spec)}'"
                )
        elif _explicitly_typed(spec) or "default" in spec or "value" not in spec:
            raise CliConfigError(
                f"Configuration key '{key}' is not namespaced by the project and must provide only 'value'"
            )


def apply_project_config(
    stack: str, document: dict[str, Any], values: dict[str, StackValue]
) -> dict[str, StackValue]:
    """`ValidateStackConfigAndApplyProjectConfig`: the stack's values (full keys) merged with the project's
    defaults, after the missing-key and per-value checks. Raises `CliConfigError` with the CLI's message."""
    validate_project(document)
    project = document["name"]
    declared = document.get("config") or {}
    merged = dict(values)
    missing = []
    for key in sorted(declared):
        spec = declared[key] if isinstance(declared[key], dict) else {"value": declared[key]}
        name = full_key(project, key)
        if name in merged:
            continue
        fallback = spec.get("default", spec.get("value"))
        if fallback is None:
            if name.startswith(f"{project}:"):
                missing.append(key)
            continue
        merged[name] = StackValue.from_default(fallback)
    if missing:
        quoted = [f"'{k}'" for k in missing]
        listed = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + f" and {quoted[-1]}"
        raise CliConfigError(
            f"Stack '{stack}' is missing configuration value{'s' if len(missing) > 1 else ''} {listed}"
        )
    for key in sorted(declared):
        spec = declared[key]
        if not _explicitly_typed(spec):
            continue
        value = merged.get(full_key(project, key))
        if value is None:
            continue
        if spec.get("secret") and not value.secure:
            raise CliConfigError(
                f"Stack '{stack}' with configuration key '{key}' must be encrypted as it's secret"
            )
        if not value.secure and not value_matches_type(spec["type"], spec.get("items"), value.content()):
            raise CliConfigError(
                f"Stack '{stack}' with configuration key '{key}' must be of type '{_type_name(spec)}'"
            )
    return merged


def load_project(root: str | Path = ".") -> dict[str, Any]:
    """The parsed `Pulumi.yaml` under `root`."""
    return yaml.safe_load((Path(root) / "Pulumi.yaml").read_text())


def load_stack_values(stack: str, root: str | Path = ".") -> dict[str, StackValue]:
    """The `config:` block of `Pulumi.<stack>.yaml` as CLI values; `{}` when the stack has no file (as after
    `pulumi stack init <stack>`)."""
    path = Path(root) / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        return {}
    document = yaml.safe_load(path.read_text()) or {}
    return {key: StackValue.from_yaml(raw) for key, raw in (document.get("config") or {}).items()}
