"""The local target (Pulumi.local.yaml): no Azure, image built into the local engine, same workload."""

from __future__ import annotations

from tests.harness import stack_mocks as mocks


def test_local_declares_no_azure_resources_and_no_invokes(local):
    assert not [r.type for r in local.resources if r.type.startswith(("azure-native:", "random:"))]
    assert not [t for t in local.invokes if t.startswith("azure-native:")]
    assert set(local.outputs) == {"endpoint", "image"}


def test_local_image_is_loaded_not_pushed_and_rolls_out_by_digest(local):
    image = local.one("docker-build:index:Image").inputs
    assert image["push"] is False and image["load"] is True and "registries" not in image
    assert "platforms" not in image  # the host's platform: the local cluster runs on this machine
    assert image["buildArgs"]["MODEL_TARGET_CPU"] == "host"  # and the baked model is compiled for its CPU
    template = local.one("kubernetes:apps/v1:Deployment").inputs["spec"]["template"]
    (c,) = template["spec"]["containers"]
    assert c["image"] == local.outputs["image"] == "aks-image-classifier/classifier:local"
    assert c["imagePullPolicy"] == "IfNotPresent"
    digest = template["metadata"]["annotations"]["aks-image-classifier/image-digest"]
    assert digest == mocks.fake_digest(c["image"])


def test_local_uses_the_current_kubeconfig_context(local):
    provider = local.one("pulumi:providers:kubernetes")
    assert "kubeconfig" not in provider.inputs and "context" not in provider.inputs
    assert all(
        r.provider.startswith(provider.urn)
        for r in local.resources
        if r.type.startswith("kubernetes:") and r.type != "kubernetes:core/v1:Namespace"
    )


def test_local_workload_matches_the_azure_one(local, dev):
    def shape(run):
        return sorted(r.type for r in run.resources if r.type.startswith("kubernetes:"))

    # The same objects but for the autoscaler (KEDA's ScaledObject + TriggerAuthentication on azure, the
    # CPU HPA locally) and the managed Prometheus PodMonitor, whose CRD only the AKS add-on installs.
    azure_only = {
        "kubernetes:keda.sh/v1alpha1:ScaledObject",
        "kubernetes:keda.sh/v1alpha1:TriggerAuthentication",
        "kubernetes:azmonitoring.coreos.com/v1:PodMonitor",
    }
    assert [t for t in shape(dev) if t not in azure_only] == [
        t for t in shape(local) if t != "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
    ]
    assert "kubernetes:autoscaling/v2:HorizontalPodAutoscaler" in shape(local)
    assert azure_only <= set(shape(dev)) and not azure_only & set(shape(local))
    resources = local.one("kubernetes:apps/v1:Deployment").inputs["spec"]["template"]["spec"]["containers"][0]
    assert resources["resources"]["requests"] == {"cpu": "500m", "memory": "512Mi"}
