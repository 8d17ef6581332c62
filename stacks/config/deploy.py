"""How `pulumi preview` / `pulumi up` deliver the image: build on preview, and how a local cluster gets it."""

from __future__ import annotations

from dataclasses import dataclass

from stacks.config.reader import Reader

#: `localCluster` (target local): how the built image reaches the cluster's nodes.
LOCAL_CLUSTERS = ("kind", "minikube", "docker-desktop")


@dataclass(frozen=True)
class DeploySettings:
    """How `pulumi preview` / `pulumi up` deliver the image.

    `build_on_preview`: docker-build's `buildOnPreview` (a preview builds the image, never pushes it; false
    for a CI preview without Docker). `local_cluster` (target local): kind | minikube | docker-desktop, how
    the built image reaches the cluster. `local_cluster_name`: the kind cluster name or minikube profile the
    image is loaded into, from `kubeContext` (`kind-<name>` → `<name>`, a minikube context is the profile
    name), else the tools' defaults `kind` / `minikube`.
    """

    build_on_preview: bool
    local_cluster: str
    local_cluster_name: str


def deploy_settings(r: Reader, kube_context: str | None) -> DeploySettings:
    build_on_preview = r.bool("buildOnPreview")
    local_cluster = r.choice("localCluster", LOCAL_CLUSTERS)
    if local_cluster == "kind":
        name = kube_context.removeprefix("kind-") if kube_context else "kind"
    elif local_cluster == "minikube":
        name = kube_context or "minikube"
    else:
        name = kube_context or "docker-desktop"
    return DeploySettings(
        build_on_preview=build_on_preview, local_cluster=local_cluster, local_cluster_name=name
    )
