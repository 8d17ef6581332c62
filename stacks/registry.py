"""Azure Container Registry for the service image: admin user off, anonymous pull off."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi
import pulumi_random as random
from pulumi_azure_native import containerregistry


def registry_name_prefix(project: str, stack: str) -> str:
    """Letters and digits of `<project><stack>`, cut to 44 characters so a 6-character suffix fits 50.

    ACR names must be 5-50 alphanumerics and globally unique (they become `<name>.azurecr.io`).
    """
    return re.sub(r"[^a-z0-9]", "", f"{project}{stack}".lower())[:44]


@dataclass
class RegistryArgs:
    """`sku`: containerregistry.SkuName (Basic, Standard, Premium). `name`: fixed registry name, or None
    for `<prefix><6 random>`."""

    resource_group_name: pulumi.Input[str]
    location: pulumi.Input[str]
    sku: containerregistry.SkuName
    name_prefix: str
    name: str | None = None


class Registry(pulumi.ComponentResource):
    """An ACR that only Entra identities can use: no admin user (no shared password), no anonymous pull.

    Outputs: `registry_id` (ARM id, the AcrPull scope), `login_server` (`<name>.azurecr.io`), `name`.
    """

    def __init__(self, name: str, args: RegistryArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aks-image-classifier:registry:Registry", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        if args.name is not None:
            registry_name: pulumi.Input[str] = args.name
        else:
            suffix = random.RandomString(
                f"{name}-suffix", length=6, special=False, upper=False, numeric=True, opts=child
            )
            registry_name = suffix.result.apply(lambda s: f"{args.name_prefix}{s}")
        self.registry = containerregistry.Registry(
            f"{name}-acr",
            registry_name=registry_name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            sku=containerregistry.SkuArgs(name=args.sku),
            admin_user_enabled=False,
            anonymous_pull_enabled=False,
            opts=child,
        )
        self.registry_id: pulumi.Output[str] = self.registry.id
        self.login_server: pulumi.Output[str] = self.registry.login_server
        self.name: pulumi.Output[str] = self.registry.name
        self.register_outputs(
            {"registry_id": self.registry_id, "login_server": self.login_server, "name": self.name}
        )
