"""A Key Vault key that encrypts the stacks' secrets (Pulumi secrets provider `azurekeyvault://`)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import keyvault

#: RSA key size, bits. Pulumi's azurekeyvault provider (gocloud.dev/secrets/azurekeyvault) encrypts each
#: stack's data key with RSA-OAEP-256, an RSA key operation (Key Vault "About keys": RSA 2048-4096).
KEY_SIZE_BITS = 3072


@dataclass
class SecretsKeyArgs:
    """`vault_name`: 3-24 characters, globally unique; `soft_delete_days`: 7-90."""

    resource_group_name: pulumi.Input[str]
    location: pulumi.Input[str]
    tenant_id: pulumi.Input[str]
    vault_name: pulumi.Input[str]
    key_name: str
    soft_delete_days: int


def secrets_provider_url(vault_name: str, key_name: str) -> str:
    """`azurekeyvault://<vault>.vault.azure.net/keys/<key>`: what `pulumi stack init --secrets-provider`
    takes (Pulumi docs, "Secrets: Configuring secrets encryption", Azure Key Vault)."""
    return f"azurekeyvault://{vault_name}.vault.azure.net/keys/{key_name}"


class SecretsKey(pulumi.ComponentResource):
    """A Key Vault with Azure RBAC authorization (no access policies) and purge protection, and one RSA key
    that may only encrypt and decrypt.

    Purge protection means a deleted vault or key stays recoverable for `soft_delete_days` and nobody,
    not even an Owner, can purge it first: the stacks' secrets cannot be lost by one mistaken delete.
    Both are `protect`ed. Outputs: `vault_name`, `key_id` (ARM id, the Key Vault Crypto User scope),
    `provider_url` (the secrets provider URL).
    """

    def __init__(self, name: str, args: SecretsKeyArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aks-image-classifier:secrets_key:SecretsKey", name, None, opts)
        protected = pulumi.ResourceOptions(parent=self, protect=True)
        self.vault = keyvault.Vault(
            f"{name}-vault",
            vault_name=args.vault_name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            properties=keyvault.VaultPropertiesArgs(
                tenant_id=args.tenant_id,
                sku=keyvault.SkuArgs(family=keyvault.SkuFamily.A, name=keyvault.SkuName.STANDARD),
                enable_rbac_authorization=True,
                enable_soft_delete=True,
                soft_delete_retention_in_days=args.soft_delete_days,
                enable_purge_protection=True,
                enabled_for_deployment=False,
                enabled_for_disk_encryption=False,
                enabled_for_template_deployment=False,
                # GitHub-hosted runners have no fixed addresses; Entra RBAC on the key guards it.
                public_network_access="Enabled",
            ),
            opts=protected,
        )
        self.key = keyvault.Key(
            f"{name}-key",
            vault_name=self.vault.name,
            resource_group_name=args.resource_group_name,
            key_name=args.key_name,
            properties=keyvault.KeyPropertiesArgs(
                kty=keyvault.JsonWebKeyType.RSA,
                key_size=KEY_SIZE_BITS,
                key_ops=[keyvault.JsonWebKeyOperation.ENCRYPT, keyvault.JsonWebKeyOperation.DECRYPT],
            ),
            opts=pulumi.ResourceOptions(parent=self, protect=True),
        )
        self.vault_name: pulumi.Output[str] = self.vault.name
        self.key_id: pulumi.Output[str] = self.key.id
        self.provider_url: pulumi.Output[str] = pulumi.Output.all(self.vault.name, self.key.name).apply(
            lambda names: secrets_provider_url(names[0], names[1])
        )
        self.register_outputs(
            {"vault_name": self.vault_name, "key_id": self.key_id, "provider_url": self.provider_url}
        )
