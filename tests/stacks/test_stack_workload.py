"""The Kubernetes workload (dev stack): Deployment, Service, HPA, PDB, NetworkPolicy as declared."""

from __future__ import annotations

DEPLOYMENT = "kubernetes:apps/v1:Deployment"


def pod(run):
    return run.one(DEPLOYMENT).inputs["spec"]["template"]["spec"]


def test_deployment_resources_env_and_rollout(dev):
    deployment = dev.one(DEPLOYMENT)
    spec = deployment.inputs["spec"]
    (c,) = pod(dev)["containers"]
    assert spec["replicas"] == 1
    assert c["resources"] == {
        "requests": {"cpu": "1", "memory": "1Gi"},
        "limits": {"cpu": "1", "memory": "2Gi"},
    }
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["PORT"] == "8080" and env["MODEL_NAME"] == "resnet50"
    assert "TORCH_THREADS" not in env  # the service sizes its threads from the CPU quota (service/cpus.py)
    assert {
        "MODEL_VERSION",
        "MODEL_ARCH",
        "MAX_BATCH_SIZE",
        "MAX_BATCH_DELAY_MS",
        "MAX_QUEUE",
        "REQUEST_TIMEOUT_MS",
    } <= set(env)
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert deployment.ignore_changes == ["spec.replicas"], "the autoscaler owns the replica count"
    # The pod template may carry more labels (azure.workload.identity/use) than the selector matches.
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()


def test_probes_drain_and_grace(dev):
    (c,) = pod(dev)["containers"]
    assert c["ports"] == [
        {"name": "http", "containerPort": 8080, "protocol": "TCP"},
        {"name": "metrics", "containerPort": 9090, "protocol": "TCP"},
    ]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["METRICS_PORT"] == "9090"  # the service's settings read it (service/settings.py)
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 60, (
        "model load + warm-up take up to 60 s"
    )
    assert c["lifecycle"]["preStop"]["sleep"]["seconds"] > 0
    assert pod(dev)["terminationGracePeriodSeconds"] > c["lifecycle"]["preStop"]["sleep"]["seconds"]


def test_security_context_non_root_read_only_no_capabilities(dev):
    spec = pod(dev)
    (c,) = spec["containers"]
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] >= 10000
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["automountServiceAccountToken"] is False
    tmp = next(v for v in spec["volumes"] if v["name"] == "tmp")
    assert "emptyDir" in tmp and {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]


def test_topology_spread_over_nodes_and_zones(dev):
    keys = {t["topologyKey"] for t in pod(dev)["topologySpreadConstraints"]}
    assert keys == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}


def test_service_is_a_load_balancer_from_80_to_the_container_port(dev):
    svc = dev.one("kubernetes:core/v1:Service")
    assert svc.inputs["spec"]["type"] == "LoadBalancer"
    (port,) = svc.inputs["spec"]["ports"]
    assert (port["port"], port["targetPort"], port["protocol"]) == (80, "http", "TCP")
    assert svc.inputs["spec"]["selector"] == pod_labels(dev)
    assert svc.custom_timeouts["create"] == "20m"


def pod_labels(run):
    """The labels every pod is selected by (the Deployment's selector, a subset of the pod labels)."""
    return run.one(DEPLOYMENT).inputs["spec"]["selector"]["matchLabels"]


def test_hpa_on_the_local_target_targets_the_deployment_with_configured_bounds(local):
    """Only the local target has the CPU HPA; on azure KEDA's ScaledObject makes its own (test_keda.py)."""
    w = local.config.workload
    spec = local.one("kubernetes:autoscaling/v2:HorizontalPodAutoscaler").inputs["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": local.one(DEPLOYMENT).inputs["metadata"]["name"],
    }
    assert (spec["minReplicas"], spec["maxReplicas"]) == (w.min_replicas, w.max_replicas)
    (metric,) = spec["metrics"]
    assert metric["resource"] == {
        "name": "cpu",
        "target": {"type": "Utilization", "averageUtilization": w.target_cpu_utilization},
    }
    assert spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == w.scale_down_stabilization_s


def test_pdb_and_network_policy_select_the_pods(dev):
    pdb = dev.one("kubernetes:policy/v1:PodDisruptionBudget").inputs["spec"]
    assert pdb["maxUnavailable"] == 1 and pdb["selector"]["matchLabels"] == pod_labels(dev)
    policy = dev.one("kubernetes:networking.k8s.io/v1:NetworkPolicy").inputs["spec"]
    assert policy["podSelector"]["matchLabels"] == pod_labels(dev)
    assert policy["policyTypes"] == ["Ingress"]
    api, _ = policy["ingress"]  # the metrics rule: test_scrape.py
    assert api["ports"] == [{"port": 8080, "protocol": "TCP"}] and "from" not in api


def test_every_object_lives_in_the_workload_namespace(dev):
    namespace = dev.one("kubernetes:core/v1:Namespace").inputs["metadata"]
    assert namespace["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for r in dev.resources:
        if (
            r.type.startswith("kubernetes:")
            and "metadata" in r.inputs
            and r.type != "kubernetes:core/v1:Namespace"
        ):
            assert r.inputs["metadata"]["namespace"] == namespace["name"], r.type
