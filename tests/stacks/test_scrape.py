"""The metrics port: declared on the pod, scraped by a PodMonitor, reachable only from the managed Prometheus
scraper (stacks/scrape.py, stacks/pod_spec.py, stacks/workload.py).

NetworkPolicy semantics modelled by `admits` (Kubernetes docs "Network Policies"; networking.k8s.io/v1
NetworkPolicySpec): traffic to a selected pod is allowed when some ingress rule lists the port (or no ports)
and has no `from`, or a `from` peer matches; a peer with `namespaceSelector` and `podSelector` matches pods
with those labels in namespaces with those labels; a peer with only `podSelector` matches pods in the
policy's own namespace; an `ipBlock` peer matches addresses outside the cluster's pods.
"""

from __future__ import annotations

import pytest

from stacks import pod_spec, scrape

POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
SERVICE = "kubernetes:core/v1:Service"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
POD_MONITOR = "kubernetes:azmonitoring.coreos.com/v1:PodMonitor"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
KUBE_SYSTEM = {"kubernetes.io/metadata.name": "kube-system"}


def _selects(selector: dict | None, labels: dict[str, str]) -> bool:
    match = (selector or {}).get("matchLabels", {})
    assert not (selector or {}).get("matchExpressions"), "model only matchLabels"
    return all(labels.get(k) == v for k, v in match.items())


def admits(policy: dict, port: int, source: dict | None, own_namespace: str) -> bool:
    """Whether `policy` lets `source` (None: outside the cluster; else {"namespace", "namespace_labels",
    "labels"}) reach a selected pod's TCP `port`."""
    for rule in policy.get("ingress", []):
        ports = rule.get("ports")
        if ports and not any(p.get("port") == port and p.get("protocol", "TCP") == "TCP" for p in ports):
            continue
        peers = rule.get("from")
        if not peers:
            return True
        for peer in peers:
            if "ipBlock" in peer:
                if source is None:
                    return True
                continue
            if source is None:
                continue
            if "namespaceSelector" in peer:
                in_namespace = _selects(peer["namespaceSelector"], source["namespace_labels"])
            else:
                in_namespace = source["namespace"] == own_namespace
            if in_namespace and _selects(peer.get("podSelector"), source["labels"]):
                return True
    return False


def pod(namespace: str, **labels: str) -> dict:
    return {
        "namespace": namespace,
        "namespace_labels": {"kubernetes.io/metadata.name": namespace},
        "labels": labels,
    }


@pytest.fixture(params=["dev", "prod", "local"])
def run(request):
    return request.getfixturevalue(request.param)


def test_metrics_port_is_on_the_pod_and_not_on_the_public_service_or_ingress(run):
    (c,) = run.one(DEPLOYMENT).inputs["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": pod_spec.CONTAINER_PORT, "metrics": pod_spec.METRICS_PORT}
    (service_port,) = run.one(SERVICE).inputs["spec"]["ports"]
    assert service_port["targetPort"] == "http"
    for ingress in run.of_type(INGRESS):
        for rule in ingress.inputs["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                assert path["backend"]["service"]["port"] in (
                    {"name": "http"},
                    {"number": service_port["port"]},
                )
    # Nothing reads prometheus.io/* annotations on AKS (the add-on scrapes PodMonitors): none are declared.
    annotations = run.one(DEPLOYMENT).inputs["spec"]["template"]["metadata"].get("annotations", {})
    assert not [k for k in annotations if k.startswith("prometheus.io/")]


def test_network_policy_admits_the_metrics_port_only_from_the_scraper(run):
    policy = run.one(POLICY).inputs["spec"]
    ns = run.one(POLICY).inputs["metadata"]["namespace"]
    metrics, api = pod_spec.METRICS_PORT, pod_spec.CONTAINER_PORT
    scraper = pod("kube-system", rsName="ama-metrics")
    assert admits(policy, metrics, scraper, ns)
    refused = {
        "internet": None,
        "a pod of the workload's namespace": pod(ns, **{"app.kubernetes.io/name": "classifier"}),
        "ama-metrics labels in another namespace": pod("default", rsName="ama-metrics"),
        "another kube-system pod (the node DaemonSet)": pod("kube-system", dsName="ama-metrics-node"),
        "the ingress controller": pod("traefik", **{"app.kubernetes.io/name": "traefik"}),
    }
    for who, source in refused.items():
        assert not admits(policy, metrics, source, ns), who
    for source in [scraper, *refused.values()]:
        assert admits(policy, api, source, ns), "the API port stays open to the Service and Ingress"
    assert not admits(policy, 9091, scraper, ns), "no other port"


def test_admits_models_the_peer_rules():
    """The evaluator can fail: a peer with only a podSelector is the policy's own namespace."""
    own_ns_only = {"ingress": [{"ports": [{"port": 1, "protocol": "TCP"}], "from": [{"podSelector": {}}]}]}
    assert admits(own_ns_only, 1, pod("a"), "a") and not admits(own_ns_only, 1, pod("b"), "a")
    assert not admits({"ingress": []}, 1, pod("a"), "a") and not admits({}, 1, None, "a")


def test_pod_monitor_scrapes_the_metrics_port_of_the_workload_pods(dev, prod):
    for run in (dev, prod):
        monitor = run.one(POD_MONITOR).inputs
        assert monitor["apiVersion"] == "azmonitoring.coreos.com/v1"  # Azure ignores monitoring.coreos.com
        selector = run.one(DEPLOYMENT).inputs["spec"]["selector"]
        assert monitor["spec"]["selector"] == selector
        (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
        assert (endpoint["port"], endpoint["path"]) == ("metrics", "/metrics")
        assert endpoint["interval"] == scrape.SCRAPE_INTERVAL
        assert monitor["metadata"]["namespace"] == run.one(DEPLOYMENT).inputs["metadata"]["namespace"]
