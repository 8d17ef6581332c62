"""What every Azure target declares first: the resource group, the registry and the service image pushed to it
(and the helpers the local target shares: the image build)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi_azure_native import authorization, resources

from stacks.acr_auth import exchange_refresh_token
from stacks.config import PROJECT, StackConfig
from stacks.config.cluster import node_cpu_tier
from stacks.image import AZURE_PLATFORMS, Image, ImageArgs
from stacks.registry import Registry, RegistryArgs, registry_name_prefix

SERVICE_CONTEXT = "service"
SERVICE_DOCKERFILE = "service/Dockerfile"
TokenExchange = Callable[[str, str, str], str]


@dataclass
class AzureBase:
    """`group` (a declared `ResourceGroup` or the looked-up existing one: both have `name` and `location`),
    `registry`, `image` (pushed, linux/amd64) and `client` (the deployer's client config)."""

    group: Any
    registry: Registry
    image: Image
    client: Any


def azure_base(cfg: StackConfig, exchange: TokenExchange = exchange_refresh_token) -> AzureBase:
    """The resource group, the registry (admin user off) and the image pushed to it, tagged with the stack
    name. `exchange`: the ACR token exchange (`stacks.acr_auth`), injectable for tests.

    With `resourceGroupName` (required on target azure) the group is an existing one, read with an invoke:
    nothing about it is in state, so `pulumi destroy` never deletes it and no right at subscription scope is
    needed; a missing group fails once, with Azure's ResourceGroupNotFound. Without it (target
    containerapps) the program declares `<project>-<stack>-rg`."""
    assert cfg.location is not None and cfg.security is not None
    client = authorization.get_client_config_output()
    if cfg.resource_group_name is not None:
        group = resources.get_resource_group_output(resource_group_name=cfg.resource_group_name)
    else:
        group = resources.ResourceGroup(f"{PROJECT}-{cfg.stack}-rg", location=cfg.location)
    registry = Registry(
        "registry",
        RegistryArgs(
            resource_group_name=group.name,
            location=cfg.location,
            sku=cfg.registry_sku,
            name_prefix=registry_name_prefix("aic", cfg.stack),
            name=cfg.registry_name,
            untagged_retention_days=cfg.security.untagged_retention_days,
        ),
    )
    image = service_image(
        cfg,
        repository=pulumi.Output.concat(registry.login_server, "/", cfg.image_repository),
        tag=cfg.stack,
        push=True,
        registry_server=registry.login_server,
        registry_password=registry_password(cfg, registry.login_server, client.tenant_id, exchange),
        platforms=AZURE_PLATFORMS,
    )
    return AzureBase(group=group, registry=registry, image=image, client=client)


def service_image(cfg: StackConfig, **target: Any) -> Image:
    """The service image built from `service/`, baking the weights of the architecture the Deployment's
    MODEL_ARCH names (Dockerfile ARG), or `modelFile` / `modelLabelsFile` from service/model-store/, compiled
    for the workload pool's CPU tier (`MODEL_TARGET_CPU`: `node_cpu_tier(nodeVmSize)`; the local target's
    image runs on this machine, `host`; Container Apps names no CPU, so the Dockerfile's default).
    `target`: the `ImageArgs` that differ per target (repository, tag, push or load, registry credentials,
    platforms). The inputs never depend on preview vs update."""
    build_args = {"MODEL_ARCH": cfg.workload.model_arch}
    tier = node_cpu_tier(cfg.cluster.node_vm_size) if cfg.cluster else None
    if cfg.target == "local":
        tier = "host"
    if tier is not None:  # the archive baked in is quantized and gated for the nodes' CPU (Dockerfile)
        build_args["MODEL_TARGET_CPU"] = tier
    if cfg.model is not None and cfg.model.file is not None:
        build_args["MODEL_FILE"] = cfg.model.file
        if cfg.model.labels_file is not None:
            build_args["MODEL_LABELS_FILE"] = cfg.model.labels_file
    return Image(
        "image",
        ImageArgs(
            context=SERVICE_CONTEXT,
            dockerfile=SERVICE_DOCKERFILE,
            build_args=build_args,
            build_on_preview=cfg.deploy.build_on_preview,
            **target,
        ),
    )


def registry_password(
    cfg: StackConfig, login_server: pulumi.Output[str], tenant_id: pulumi.Output[str], exchange: TokenExchange
) -> pulumi.Output[str]:
    """The ACR refresh token the Image pushes with (secret).

    The Image's `registries` entry (address, user name, password) is declared in preview and update alike, so
    its known inputs never differ between the two. The password itself may: a fresh token each run, which
    docker-build's Diff ignores (provider `image.go`: registries compare address and username only). In a
    preview with `buildOnPreview` false it is left unknown (no ARM token, no call to the registry: a CI
    preview needs neither Docker nor registry rights); with `buildOnPreview` true it is fetched, because the
    provider skips a preview build whenever a registry's password is unknown (`registryKeeper`, `buildable`).
    """
    if pulumi.runtime.is_dry_run() and not cfg.deploy.build_on_preview:
        return pulumi.Output.secret(unknown())
    token = authorization.get_client_token_output()
    return pulumi.Output.secret(
        pulumi.Output.all(login_server, tenant_id, token.token).apply(lambda a: exchange(a[0], a[1], a[2]))
    )


def unknown() -> pulumi.Output[str]:
    """An Output whose value is unknown (shown as `[unknown]`/computed in a preview)."""

    async def value(v: Any) -> Any:
        return v

    return pulumi.Output(set(), value(None), value(False))
