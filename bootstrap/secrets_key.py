"""Key Vault keys that encrypt the stacks' secrets (Pulumi secrets provider `azurekeyvault://`), one per
stack, and the decrypt-only role a preview needs on them."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_random as random
from pulumi_azure_native import authorization, keyvault

from bootstrap import roles

#: RSA key size, bits. Pulumi's azurekeyvault provider (gocloud.dev/secrets/azurekeyvault) encrypts each
#: stack's data key with RSA-OAEP-256, an RSA key operation (Key Vault "About keys": RSA 2048-4096).
KEY_SIZE_BITS = 3072


@dataclass
class SecretsKeyArgs:
    """`vault_name`: 3-24 characters, globally unique; `key_names`: stack -> key name; `soft_delete_days`:
    7-90; `resource_group_id`: ARM id of the vault's group (where the decrypt role is assignable)."""

    resource_group_name: pulumi.Input[str]
    resource_group_id: pulumi.Input[str]
    location: pulumi.Input[str]
    tenant_id: pulumi.Input[str]
    vault_name: pulumi.Input[str]
    key_names: dict[str, str]
    soft_delete_days: int


def secrets_provider_url(vault_name: str, key_name: str) -> str:
    """`azurekeyvault://<vault>.vault.azure.net/keys/<key>`: what `pulumi stack init --secrets-provider`
    takes (Pulumi docs, "Secrets: Configuring secrets encryption", Azure Key Vault)."""
    return f"azurekeyvault://{vault_name}.vault.azure.net/keys/{key_name}"


class SecretsKey(pulumi.ComponentResource):
    """A Key Vault with Azure RBAC authorization (no access policies) and purge protection, one RSA key per
    stack that may only encrypt and decrypt, and a custom role "Pulumi secrets decrypt" (`roles.
    DECRYPT_DATA_ACTIONS`) assignable in the vault's group.

    One key per stack lets a role assignment on one key open one stack's secrets only (Key Vault RBAC
    scopes down to a single key). Purge protection means a deleted vault or key stays recoverable for
    `soft_delete_days` and nobody, not even an Owner, can purge it first. Vault and keys are `protect`ed.
    Outputs: `vault_name`, `key_ids` / `provider_urls` (stack -> ARM id / secrets provider URL),
    `decrypt_role_guid` (the custom role's GUID).
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
        self.keys = {
            stack: keyvault.Key(
                f"{name}-key-{stack}",
                vault_name=self.vault.name,
                resource_group_name=args.resource_group_name,
                key_name=key_name,
                properties=keyvault.KeyPropertiesArgs(
                    kty=keyvault.JsonWebKeyType.RSA,
                    key_size=KEY_SIZE_BITS,
                    key_ops=[keyvault.JsonWebKeyOperation.ENCRYPT, keyvault.JsonWebKeyOperation.DECRYPT],
                ),
                opts=pulumi.ResourceOptions(parent=self, protect=True),
            )
            for stack, key_name in args.key_names.items()
        }
        role_guid = random.RandomUuid(f"{name}-decrypt-role-id", opts=pulumi.ResourceOptions(parent=self))
        self.decrypt_role = authorization.RoleDefinition(
            f"{name}-decrypt-role",
            role_definition_id=role_guid.result,
            role_name=pulumi.Output.concat("Pulumi secrets decrypt (", self.vault.name, ")"),
            description="Decrypt with a Key Vault key: unwrap a Pulumi stack's data key for a preview.",
            role_type="CustomRole",
            permissions=[authorization.PermissionArgs(data_actions=list(roles.DECRYPT_DATA_ACTIONS))],
            assignable_scopes=[args.resource_group_id],
            scope=args.resource_group_id,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.vault_name: pulumi.Output[str] = self.vault.name
        self.key_ids: dict[str, pulumi.Output[str]] = {stack: key.id for stack, key in self.keys.items()}
        self.provider_urls: dict[str, pulumi.Output[str]] = {
            stack: pulumi.Output.all(self.vault.name, key.name).apply(
                lambda n: secrets_provider_url(n[0], n[1]))
            for stack, key in self.keys.items()
        }
        # The definition's GUID (its name); a role assignment names it under the subscription.
        self.decrypt_role_guid: pulumi.Output[str] = self.decrypt_role.name
        self.register_outputs({"vault_name": self.vault_name, "key_ids": self.key_ids,
                               "provider_urls": self.provider_urls,
                               "decrypt_role_guid": self.decrypt_role_guid})
