"""The service image, built from `service/` with BuildKit (`pulumi-docker-build`)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker_build as docker_build

from stacks.acr_auth import ACR_TOKEN_USERNAME

#: AKS nodes are linux/amd64; Apple Silicon would build arm64 otherwise (pulumi-docker#847).
AZURE_PLATFORMS = (docker_build.Platform.LINUX_AMD64,)


@dataclass
class ImageArgs:
    """Build inputs; every one is the same in `pulumi preview` and `pulumi up`.

    `context`/`dockerfile`: paths relative to the project root. `repository`: full image name
    without tag (`myacr.azurecr.io/aks-image-classifier/classifier`, or a bare local name).
    `push`: push to `registry_server` on `up` (docker-build never exports during a preview, provider
    `image.go` Create: a preview build only fills the cache). `load`: load the image into the local
    Docker engine instead (the local target). `registry_password`: ACR refresh token used with the fixed ACR
    token user name (may be unknown during a preview: the provider's Diff ignores registry passwords, so
    it never shows as a change). `platforms`: None builds for the host's platform. `build_on_preview`:
    docker-build's `buildOnPreview`. `build_args`: Dockerfile `ARG`s, e.g. `{"MODEL_ARCH": "resnet50"}` so
    the weights baked into the image are those the Deployment asks for.
    """

    context: str
    dockerfile: str
    repository: pulumi.Input[str]
    tag: str
    push: bool
    load: bool = False
    registry_server: pulumi.Input[str] | None = None
    registry_password: pulumi.Input[str] | None = None
    build_args: dict[str, str] | None = None
    platforms: tuple[docker_build.Platform, ...] | None = None
    build_on_preview: bool = True


class Image(pulumi.ComponentResource):
    """Builds the service image (for `platforms`, or the host's platform).

    Outputs: `ref` (pushed: `<repo>:<tag>@sha256:<digest>`, what the Deployment runs, so any rebuild
    rolls out; local: the tag), `digest` (`sha256:...`).
    """

    def __init__(self, name: str, args: ImageArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aks-image-classifier:image:Image", name, None, opts)
        registries = None
        if args.push and args.registry_server is not None:
            registries = [
                docker_build.RegistryArgs(
                    address=args.registry_server,
                    username=ACR_TOKEN_USERNAME,
                    password=pulumi.Output.secret(args.registry_password),
                )
            ]
        tag = pulumi.Output.concat(args.repository, ":", args.tag)
        self.image = docker_build.Image(
            f"{name}-build",
            context=docker_build.BuildContextArgs(location=args.context),
            dockerfile=docker_build.DockerfileArgs(location=args.dockerfile),
            platforms=list(args.platforms) if args.platforms else None,
            build_args=args.build_args,
            build_on_preview=args.build_on_preview,
            tags=[tag],
            push=args.push,
            load=args.load,
            registries=registries,
            labels={"org.opencontainers.image.title": "aks-image-classifier"},
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.ref: pulumi.Output[str] = self.image.ref if args.registry_server is not None else tag
        self.digest: pulumi.Output[str] = self.image.digest
        self.register_outputs({"ref": self.ref, "digest": self.digest})
