"""The Pulumi CLI's stack-config rules (`tests.harness.pulumi_cli_config`) on the real project and stack
files.

Mocks hand the program any config; the real CLI first checks the stack against `Pulumi.yaml` and stops
before the program runs. The rules modelled here follow pulumi/pulumi `sdk/go/common/workspace`
(`ValidateStackConfigAndApplyProjectConfig` -> `mergeConfig`, `validateStackConfigValue`,
`ValidateConfigValue`, `Project.Validate`); the cases below mirror its tests, e.g.
`TestStackConfigErrorsWhenMissingStackValueForConfigTypeWithNoDefault`.
"""

from __future__ import annotations

import copy

import pytest
import yaml

from stacks.config import ConfigError, load_config
from tests.harness.pulumi_cli_config import (
    CliConfigError,
    StackValue,
    apply_project_config,
    load_project,
    load_stack_values,
    validate_project,
)
from tests.harness.stack_mocks import known_stacks, run_program
from tests.stacks.conftest import ROOT

PROJECT = load_project(ROOT)
#: The `apiKey` declaration before this rule was modelled: typed, secret, no default.
OLD_API_KEY = {"type": "string", "secret": True, "description": "Optional API key"}


def project_with(**config) -> dict:
    document = copy.deepcopy(PROJECT)
    document["config"].update(config)
    return document


def values(**raw) -> dict[str, StackValue]:
    return {f"aks-image-classifier:{k}": StackValue.from_yaml(v) for k, v in raw.items()}


def program_config(merged: dict[str, StackValue]) -> dict:
    return {key: value.content() for key, value in merged.items()}


@pytest.mark.parametrize("stack", [*known_stacks(ROOT), "brand-new"])
def test_every_stack_passes_the_cli_rules(stack):
    """dev, prod, local and a stack with no file (as after `pulumi stack init brand-new`)."""
    assert stack == "brand-new" or (ROOT / f"Pulumi.{stack}.yaml").is_file()
    merged = apply_project_config(stack, PROJECT, load_stack_values(stack, ROOT))
    declared = {f"aks-image-classifier:{k}" for k in PROJECT["config"]}
    assert declared <= set(merged)


@pytest.mark.parametrize("stack", known_stacks(ROOT))
def test_every_stack_file_runs_the_program_after_the_cli(stack):
    merged = apply_project_config(stack, PROJECT, load_stack_values(stack, ROOT))
    run = run_program(program_config(merged), stack)
    assert run.resources and run.config.stack == stack


def test_a_brand_new_stack_reaches_the_program_which_names_each_key_to_set():
    """The CLI lets a new stack through (every project key has a default); the program then asks, one at a
    time, for what Pulumi.yaml cannot default: the Azure region, the stack's existing resource group, and
    who administers the cluster."""
    merged = apply_project_config("brand-new", PROJECT, {})
    needed = [
        ("azure-native:location", "westeurope"),
        ("aks-image-classifier:resourceGroupName", "aic-brand-new"),
        ("aks-image-classifier:clusterAdmins", ["Group:0f0e0d0c-0b0a-4909-8807-060504030201"]),
    ]
    for key, value in needed:
        with pytest.raises(ConfigError, match=rf"^{key} must "):
            load_config(program_config(merged).get, stack="brand-new", is_secret=lambda key: False)
        merged[key] = StackValue.from_yaml(value)
    run = run_program(program_config(merged), "brand-new")
    assert run.config.location == "westeurope" and run.config.resource_group_name == "aic-brand-new"


def test_every_key_a_stack_sets_is_declared():
    """Not a CLI rule (it ignores undeclared keys) but ours: a misspelt key would silently do nothing."""
    declared = {f"aks-image-classifier:{k}" for k in PROJECT["config"]}
    for stack in known_stacks(ROOT):
        used = {k for k in load_stack_values(stack, ROOT) if k.startswith("aks-image-classifier:")}
        assert used <= declared, (stack, used - declared)


def test_the_old_secret_api_key_without_default_stops_every_stack():
    """What every `pulumi up` hit before: a typed key with no default, set by no stack."""
    with pytest.raises(CliConfigError, match=r"^Stack 'dev' is missing configuration value 'apiKey'$"):
        apply_project_config("dev", project_with(apiKey=OLD_API_KEY), load_stack_values("dev", ROOT))


def test_a_secret_key_with_a_default_is_refused_even_when_unset():
    """The default is applied in plaintext, then `validateStackConfigValue` demands encryption."""
    project = project_with(apiKey={**OLD_API_KEY, "default": ""})
    with pytest.raises(CliConfigError, match=r"configuration key 'apiKey' must be encrypted as it's secret"):
        apply_project_config("dev", project, {})


def test_a_secret_key_needs_an_encrypted_value():
    project = project_with(apiKey=OLD_API_KEY)
    with pytest.raises(CliConfigError, match="must be encrypted"):
        apply_project_config("dev", project, values(apiKey="plain-text-key-123456"))
    apply_project_config("dev", project, values(apiKey={"secure": "v1:abc"}))


def test_missing_values_are_listed_together():
    project = project_with(a={"type": "string"}, b={"type": "integer"})
    with pytest.raises(CliConfigError, match=r"^Stack 'x' is missing configuration values 'a' and 'b'$"):
        apply_project_config("x", project, {})


@pytest.mark.parametrize(
    ("key", "raw", "ok"),
    [
        ("systemNodeCount", 3, True),
        ("systemNodeCount", "3", True),  # a YAML scalar reaches the CLI as text; integers accept digit text
        ("systemNodeCount", "three", False),
        ("systemNodeCount", "1.5", False),
        ("registrySku", "Premium", True),
        ("registrySku", 5, True),  # scalars are text, so a number passes a string key
        ("availabilityZones", ["1", "2"], True),
        ("availabilityZones", [1, 2], False),  # object values keep JSON types: numbers are not strings
        ("availabilityZones", "1", False),
    ],
)
def test_values_must_match_the_declared_type(key, raw, ok):
    if ok:
        apply_project_config("dev", PROJECT, values(**{key: raw}))
    else:
        with pytest.raises(
            CliConfigError, match=rf"^Stack 'dev' with configuration key '{key}' must be of type"
        ):
            apply_project_config("dev", PROJECT, values(**{key: raw}))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "integer", "default": "many"}, "default value specified for configuration key 'k'"),
        ({"type": "array", "default": []}, "does not specify the underlying type"),
        ({"type": "string", "default": "a", "value": "b"}, "cannot have both"),
    ],
)
def test_the_project_file_itself_is_checked(spec, message):
    with pytest.raises(CliConfigError, match=message):
        validate_project(project_with(k=spec))


def test_another_packages_key_may_carry_only_a_value():
    with pytest.raises(CliConfigError, match="not namespaced by the project"):
        validate_project(
            project_with(**{"azure-native:location": {"type": "string", "default": "westeurope"}})
        )
    validate_project(project_with(**{"azure-native:location": {"value": "westeurope"}}))


def test_the_project_file_is_valid_and_documents_every_key():
    validate_project(PROJECT)
    assert PROJECT["name"] == "aks-image-classifier" and PROJECT["runtime"]["name"] == "python"
    undocumented = [k for k, spec in PROJECT["config"].items() if not spec.get("description")]
    assert undocumented == []
    assert not [k for k, spec in PROJECT["config"].items() if spec.get("secret")], (
        "a `secret: true` key must then be set, encrypted, in every stack (no plaintext default allowed)"
    )
    assert yaml.safe_load((ROOT / "Pulumi.yaml").read_text()) == PROJECT
