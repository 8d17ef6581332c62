"""Config validation: every mistake fails before any resource is declared, naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from stacks.config import (
    MIN_K8S_MINOR,
    ConfigError,
    cpu_millicores,
    load_config,
    memory_bytes,
    project_defaults,
)
from tests.harness.stack_mocks import MockRun, run_program

ROOT = Path(__file__).resolve().parents[2]
ADMIN = "Group:0f0e0d0c-0b0a-4909-8807-060504030201"
BASE = {
    "aks-image-classifier:target": "azure",
    "azure-native:location": "westeurope",
    "aks-image-classifier:resourceGroupName": "aic-test",
    "aks-image-classifier:clusterAdmins": [ADMIN],
}


def load(**values):
    config = dict(BASE)
    config.update({k if ":" in k else f"aks-image-classifier:{k}": v for k, v in values.items()})
    return load_config(config.get, stack="test", is_secret=lambda key: False)


@pytest.mark.parametrize(
    ("values", "key", "words"),
    [
        ({"minReplicas": "5", "maxReplicas": "3"}, "aks-image-classifier:minReplicas", "<="),
        ({"cpuRequest": "0"}, "aks-image-classifier:cpuRequest", "> 0"),
        ({"cpuRequest": "0m"}, "aks-image-classifier:cpuRequest", "> 0"),
        ({"cpuRequest": "-1"}, "aks-image-classifier:cpuRequest", "CPU quantity"),
        ({"cpuRequest": "2", "cpuLimit": "1"}, "aks-image-classifier:cpuLimit", ">="),
        ({"cpuRequest": "1", "cpuLimit": "2"}, "aks-image-classifier:cpuLimit", "must equal"),
        ({"buildOnPreview": "maybe"}, "aks-image-classifier:buildOnPreview", "true or false"),
        ({"localCluster": "k3d"}, "aks-image-classifier:localCluster", "kind, minikube, docker-desktop"),
        ({"memoryRequest": "4Gi", "memoryLimit": "1Gi"}, "aks-image-classifier:memoryLimit", ">="),
        ({"memoryRequest": "lots"}, "aks-image-classifier:memoryRequest", "memory quantity"),
        ({"registrySku": "Gold"}, "aks-image-classifier:registrySku", "Basic, Standard, Premium"),
        ({"nodeVmSize": "D4s_v5"}, "aks-image-classifier:nodeVmSize", "VM size"),
        ({"systemNodeVmSize": "Standard D2"}, "aks-image-classifier:systemNodeVmSize", "VM size"),
        ({"kubernetesVersion": "v1.34"}, "aks-image-classifier:kubernetesVersion", "Kubernetes version"),
        ({"kubernetesVersion": "1.34.x"}, "aks-image-classifier:kubernetesVersion", "Kubernetes version"),
        # 1.33: upstream end of life 2026-06-28, out of AKS standard support (kubernetes.io/releases).
        ({"kubernetesVersion": "1.33"}, "aks-image-classifier:kubernetesVersion", "1.34 or newer"),
        ({"nodeMinCount": ""}, "aks-image-classifier:nodeMinCount", "integer"),
        ({"target": "gcp"}, "aks-image-classifier:target", "azure, containerapps, local"),
        ({"nodeMinCount": "4", "nodeMaxCount": "2"}, "aks-image-classifier:nodeMinCount", "<="),
        ({"maxReplicas": "many"}, "aks-image-classifier:maxReplicas", "integer"),
        ({"replicas": "9", "maxReplicas": "5"}, "aks-image-classifier:replicas", "within"),
        ({"registryName": "my-registry"}, "aks-image-classifier:registryName", "5-50"),
        ({"availabilityZones": '["1", "4"]'}, "aks-image-classifier:availabilityZones", "1, 2 or 3"),
        ({"clusterTier": "Gold"}, "aks-image-classifier:clusterTier", "Free"),
        ({"upgradeChannel": "weekly"}, "aks-image-classifier:upgradeChannel", "patch"),
        ({"targetCpuUtilization": "150"}, "aks-image-classifier:targetCpuUtilization", "<= 100"),
        ({"azure-native:location": ""}, "azure-native:location", "must be set"),
        (
            {"requestTimeoutMs": "60000", "terminationGracePeriodSeconds": "45"},
            "aks-image-classifier:terminationGracePeriodSeconds",
            ">= 70",
        ),
    ],
)
def test_invalid_value_names_the_key(values, key, words):
    with pytest.raises(ConfigError) as error:
        load(**values)
    assert str(error.value).startswith(key), str(error.value)
    assert words in str(error.value)


def test_config_error_stops_the_program_before_any_resource():
    run = MockRun()
    with pytest.raises(ConfigError, match="aks-image-classifier:minReplicas"):
        run_program(
            {**BASE, "aks-image-classifier:minReplicas": "4", "aks-image-classifier:maxReplicas": "2"},
            "dev",
            run=run,
        )
    assert run.resources == []
    assert run.invokes == []


def test_defaults_are_a_valid_small_stack():
    cfg = load()
    assert cfg.target == "azure" and cfg.location == "westeurope"
    assert cfg.registry_sku == "Basic" and cfg.registry_name is None
    assert cfg.cluster is not None and cfg.cluster.node_min_count <= cfg.cluster.node_max_count
    assert cfg.workload.replicas == cfg.workload.min_replicas == 2


def test_local_target_needs_no_location_and_has_no_cluster():
    cfg = load_config(
        {"aks-image-classifier:target": "local"}.get, stack="local", is_secret=lambda key: False
    )
    assert cfg.cluster is None and cfg.location is None and not cfg.is_azure


@pytest.mark.parametrize("limit", ["500m", "1500m", "3.5"])
def test_the_stack_leaves_thread_sizing_to_the_service(limit):
    """No TORCH_THREADS in the pod: the service reads the CFS quota the limit becomes and rounds a fraction
    down (service/cpus.py `effective_cpus`, measured in docs/cpu-quota.md); the stack used to round up."""
    from service.cpus import effective_cpus
    from stacks.pod_spec import service_env_values

    # 4Gi: more CPUs decode more images at once, which memoryLimit must hold (test_memory_limit.py)
    workload = load(cpuRequest=limit, cpuLimit=limit, memoryLimit="4Gi").workload
    assert "TORCH_THREADS" not in service_env_values(workload)
    assert effective_cpus(cpu_millicores(limit) / 1000, affinity=8) == max(1, cpu_millicores(limit) // 1000)


def test_prod_keeps_the_measured_batch_size_default():
    """Pulumi.prod.yaml sets no maxBatchSize: the service's measured default (8, docs/performance.md)
    serves, which Pulumi.yaml declares as the key's default."""
    from service.settings import Settings

    prod = yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())["config"]
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]["maxBatchSize"]["default"]
    assert "aks-image-classifier:maxBatchSize" not in prod
    assert declared == Settings.model_fields["max_batch_size"].default == 8


def test_quantity_parsers():
    assert cpu_millicores("250m") == 250 and cpu_millicores("1.5") == 1500
    assert (
        memory_bytes("512Mi") == 512 * 2**20
        and memory_bytes("1G") == 10**9
        and memory_bytes("2Gi") == 2 * 2**30
    )
    with pytest.raises(ValueError):
        memory_bytes("2GB")


def test_defaults_come_from_the_project_file_alone(tmp_path):
    """One source of truth: change a default in Pulumi.yaml and the typed config follows (no second copy in
    the code). The Pulumi CLI applies the same defaults to the stack before the program runs."""
    document = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    document["config"]["minReplicas"]["default"] = 3
    document["config"]["clusterTier"]["default"] = "Standard"
    edited = tmp_path / "Pulumi.yaml"
    edited.write_text(yaml.safe_dump(document))
    cfg = load_config(
        dict(BASE).get, stack="test", is_secret=lambda key: False, defaults=project_defaults(edited)
    )
    assert (cfg.workload.min_replicas, cfg.cluster.tier) == (3, "Standard")
    assert (load().workload.min_replicas, load().cluster.tier) == (2, "Free")


def test_a_key_missing_from_the_project_file_is_a_config_error(tmp_path):
    document = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    del document["config"]["maxQueue"]
    edited = tmp_path / "Pulumi.yaml"
    edited.write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigError, match=r"^aks-image-classifier:maxQueue is not declared in Pulumi.yaml"):
        load_config(
            dict(BASE).get, stack="test", is_secret=lambda key: False, defaults=project_defaults(edited)
        )


def test_kubernetes_version_unset_by_default_and_pinnable():
    assert load().kubernetes_version is None and load().cluster.kubernetes_version is None
    assert load().manifest_minor == MIN_K8S_MINOR
    pinned = load(kubernetesVersion="1.35.2")
    assert (pinned.kubernetes_version, pinned.manifest_minor) == ("1.35.2", 35)
