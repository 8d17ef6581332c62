"""Azure Container Registry for the service image: admin user off, anonymous pull off; on Premium also
zone-redundant with a retention policy for untagged manifests."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi
import pulumi_random as random
from pulumi_azure_native import containerregistry

from stacks.checkov_skips import skip_arm_checks

PREMIUM = "Premium"


def registry_name_prefix(project: str, stack: str) -> str:
    """Letters and digits of `<project><stack>`, cut to 44 characters so a 6-character suffix fits 50.

    ACR names must be 5-50 alphanumerics and globally unique (they become `<name>.azurecr.io`).
    """
    return re.sub(r"[^a-z0-9]", "", f"{project}{stack}".lower())[:44]


@dataclass
class RegistryArgs:
    """`sku`: containerregistry.SkuName (Basic, Standard, Premium). `name`: fixed registry name, or None
    for `<prefix><6 random>`. `untagged_retention_days`: Premium only, days before untagged manifests are
    deleted."""

    resource_group_name: pulumi.Input[str]
    location: pulumi.Input[str]
    sku: containerregistry.SkuName
    name_prefix: str
    name: str | None = None
    untagged_retention_days: int = 7


class Registry(pulumi.ComponentResource):
    """An ACR that only Entra identities can use: no admin user (no shared password), no anonymous pull.

    Premium (Azure docs "Container Registry service tiers": zone redundancy and retention policies are
    Premium features) adds zone redundancy and deletes untagged manifests after the retention days.

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
            **_premium_features(args),
            opts=child,
        )
        skip_arm_checks(self.registry, _registry_skips(args.sku))
        self.registry_id: pulumi.Output[str] = self.registry.id
        self.login_server: pulumi.Output[str] = self.registry.login_server
        self.name: pulumi.Output[str] = self.registry.name
        self.register_outputs(
            {"registry_id": self.registry_id, "login_server": self.login_server, "name": self.name}
        )


def _premium_features(args: RegistryArgs) -> dict:
    """Zone redundancy and the untagged-manifest retention policy, where the SKU has them."""
    if args.sku != PREMIUM:
        return {}
    return {
        "zone_redundancy": containerregistry.ZoneRedundancy.ENABLED,
        "policies": containerregistry.PoliciesArgs(
            retention_policy=containerregistry.RetentionPolicyArgs(
                days=args.untagged_retention_days, status=containerregistry.PolicyStatus.ENABLED
            )
        ),
    }


def _registry_skips(sku: str) -> dict[str, str]:
    """checkov findings accepted for the registry on this SKU, each with its reason."""
    skips = {
        "CKV_AZURE_139": "public network access stays on: images are pushed from the deployer's machine or "
        "CI and pulled by AKS or Container Apps over the public endpoint; a private endpoint needs a VNet "
        "and private DNS zone this program does not manage. Access is Entra-only (no admin user, no "
        "anonymous pull)",
        "CKV_AZURE_166": "quarantine holds every pushed image until a scanner marks it verified; no scanner "
        "is wired in, so the deployment could never pull its image. Images are pinned by digest",
    }
    if sku != PREMIUM:
        chosen = getattr(sku, "value", sku)  # the SKU's name, not the enum's repr (SkuName.BASIC)
        skips["CKV_AZURE_233"] = f"zone redundancy is a Premium feature; this stack chose {chosen}, cheaper"
    if sku == "Basic":
        skips["CKV_AZURE_163"] = (
            "checkov counts only Standard/Premium as scan-capable; this stack stays on Basic to stay cheap. "
            "Vulnerability scanning is Defender for Containers, a subscription plan, not a registry setting"
        )
    return skips
