"""Target `local`: put the freshly built image where the local cluster's container runtime can find it."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

import pulumi
from pulumi_command import local


def load_command(cluster: str, name: str, image: str) -> str | None:
    """The shell command that copies `image` from the host's Docker engine into the cluster's nodes.

    `cluster`: `kind` (`kind load docker-image IMAGE --name NAME`, kind's "Loading an image into your
    cluster"), `minikube` (`minikube image load IMAGE --profile NAME`, minikube's "Pushing images"), or
    `docker-desktop` (None: Docker Desktop's Kubernetes runs on the same engine's image store, so the built
    image is already there). Raises ValueError for another cluster kind.
    """
    if cluster == "kind":
        return f"kind load docker-image {shlex.quote(image)} --name {shlex.quote(name)}"
    if cluster == "minikube":
        return f"minikube image load {shlex.quote(image)} --profile {shlex.quote(name)}"
    if cluster == "docker-desktop":
        return None
    raise ValueError(f"unknown local cluster kind {cluster!r} (kind, minikube or docker-desktop)")


@dataclass
class LocalImageArgs:
    """`image`: the local tag (`aks-image-classifier/classifier:local`); `digest`: the build's digest (a new
    digest loads again); `cluster`/`name`: `localCluster` and the kind cluster name or minikube profile."""

    image: str
    digest: pulumi.Input[str]
    cluster: str
    name: str


class LocalImage(pulumi.ComponentResource):
    """Loads the image into a kind or minikube cluster (a `pulumi-command` local Command, re-run whenever the
    digest changes); nothing for Docker Desktop. Without it the pods wait in `ErrImagePull`, since the tag
    exists only in the host's engine and `imagePullPolicy: IfNotPresent` then asks a registry for it.

    Output: `ready` (resources the Deployment must depend on; empty for Docker Desktop).
    """

    def __init__(self, name: str, args: LocalImageArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aks-image-classifier:local_image:LocalImage", name, None, opts)
        command = load_command(args.cluster, args.name, args.image)
        self.ready: list[pulumi.Resource] = []
        if command is not None:
            self.load = local.Command(
                f"{name}-load",
                create=command,
                triggers=[args.digest],
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.ready.append(self.load)
        self.register_outputs({"command": command or ""})
