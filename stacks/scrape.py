"""How managed Prometheus reaches the pods: the PodMonitor it reads, the NetworkPolicy that lets only it in.

The add-on installs the prometheus-operator CRDs under its own API group, `azmonitoring.coreos.com/v1`, and
ignores objects of the upstream `monitoring.coreos.com` group (Azure/prometheus-collector, addon chart
`templates/ama-metrics-podmonitor-crd.yaml`; Azure Monitor docs "Create custom Prometheus scrape jobs ...
using PodMonitor and ServiceMonitor"). Pure builders used by `stacks.workload`.
"""

from __future__ import annotations

import pulumi_kubernetes as k8s

from stacks import pod_spec

POD_MONITOR_API_VERSION = "azmonitoring.coreos.com/v1"
#: Scrape interval: the add-on's default for custom jobs; ingestion (and its cost, docs/managed-prometheus.md)
#: is proportional to 1 / interval.
SCRAPE_INTERVAL = "30s"
SCRAPE_TIMEOUT = "10s"
#: A scrape with more samples than this is refused (prometheus-operator `sampleLimit`): a label explosion
#: fails loudly (the `up` series) instead of multiplying the ingestion bill.
SAMPLE_LIMIT = 5000
#: The managed Prometheus add-on's scraper: the `ama-metrics` Deployment in kube-system, whose pods carry
#: `rsName: ama-metrics` (Azure/prometheus-collector, addon chart `templates/ama-metrics-deployment.yaml`).
#: PodMonitor targets are handed to these pods by the add-on's target allocator
#: (`ama-metrics-operator-targets`, `templates/ama-metrics-targetallocator.yaml`); the `ama-metrics-node`
#: DaemonSet scrapes only node targets.
SCRAPER_NAMESPACE = "kube-system"
SCRAPER_POD_LABELS = {"rsName": "ama-metrics"}


def pod_monitor_spec(labels: dict[str, str]) -> dict:
    """PodMonitor `spec`: the pods matching `labels`, port `metrics`, path `/metrics` every SCRAPE_INTERVAL.
    The series get the `namespace`, `pod` and `container` target labels the rules and KEDA's query use."""
    return {
        "selector": {"matchLabels": labels},
        "sampleLimit": SAMPLE_LIMIT,
        "podMetricsEndpoints": [
            {
                "port": pod_spec.METRICS_PORT_NAME,
                "path": pod_spec.METRICS_PATH,
                "interval": SCRAPE_INTERVAL,
                "scrapeTimeout": SCRAPE_TIMEOUT,
            }
        ],
    }


def network_policy_spec(labels: dict[str, str]) -> k8s.networking.v1.NetworkPolicySpecArgs:
    """Ingress to the pods: the API port (`http`, 8080) from anywhere the Service or Ingress brings traffic;
    the metrics port (`metrics`, 9090) only from the managed Prometheus scraper's pods in kube-system.

    A peer with both `namespaceSelector` and `podSelector` selects those pods in those namespaces only
    (Kubernetes docs, "Network Policies": behaviour of `to` and `from` selectors); the namespace is matched on
    `kubernetes.io/metadata.name`, the label the API server sets on every namespace (immutable)."""
    port = k8s.networking.v1.NetworkPolicyPortArgs
    return k8s.networking.v1.NetworkPolicySpecArgs(
        pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels),
        policy_types=["Ingress"],
        ingress=[
            k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                ports=[port(port=pod_spec.CONTAINER_PORT, protocol="TCP")]
            ),
            k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                ports=[port(port=pod_spec.METRICS_PORT, protocol="TCP")],
                from_=[
                    k8s.networking.v1.NetworkPolicyPeerArgs(
                        namespace_selector=k8s.meta.v1.LabelSelectorArgs(
                            match_labels={"kubernetes.io/metadata.name": SCRAPER_NAMESPACE}
                        ),
                        pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=SCRAPER_POD_LABELS),
                    )
                ],
            ),
        ],
    )
