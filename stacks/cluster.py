"""AKS cluster: managed identity, Entra ID + Azure RBAC, CNI Overlay + network policy, workload identity,
Container Insights, managed Prometheus and KEDA add-ons, ephemeral OS disks."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import pulumi
from pulumi_azure_native import containerservice, network

from stacks.checkov_skips import skip_arm_checks
from stacks.config import ClusterSettings, SecuritySettings
from stacks.kubeconfig import kubelogin_kubeconfig
from stacks.log_analytics import log_workspace
from stacks.node_pools import POOL_LABEL, WORKLOAD_POOL_ROLE, PoolShape, check_system_pool, workload_pool_name

SYSTEM_POOL = "system"
#: The node selector of the workload's pods: a label every version of the workload pool carries.
WORKLOAD_NODE_SELECTOR = {POOL_LABEL: WORKLOAD_POOL_ROLE}


@dataclass
class ClusterArgs:
    """Inputs for `Cluster`. `settings` comes from the validated stack config."""

    resource_group_name: pulumi.Input[str]
    location: pulumi.Input[str]
    settings: ClusterSettings
    security: SecuritySettings
    tenant_id: pulumi.Input[str]


def authorized_ranges(sec: SecuritySettings) -> pulumi.Input[list[str]] | None:
    """The API server's authorized IP ranges: `apiServerAuthorizedIpRanges`, plus `<ip>/32` of the public IP
    `apiServerRunnerPublicIp` names (bootstrap's prod runner egress, read with an invoke: the program never
    owns it), sorted and without duplicates; None when neither is set (a public API server)."""
    ranges = sorted(set(sec.authorized_ip_ranges))
    if sec.runner_public_ip is None:
        return ranges or None
    group, name = sec.runner_public_ip
    address = network.get_public_ip_address_output(resource_group_name=group, public_ip_address_name=name)
    return address.ip_address.apply(lambda ip: sorted({*ranges, f"{ip}/32"}))


def decode_kubeconfig(credentials: containerservice.ListManagedClusterUserCredentialsResult) -> str:
    """The first kubeconfig of a `listClusterUserCredential` result, base64-decoded to YAML text."""
    if not credentials.kubeconfigs:
        raise ValueError("AKS returned no kubeconfig for the cluster user")
    return base64.b64decode(credentials.kubeconfigs[0].value).decode("utf-8")


class Cluster(pulumi.ComponentResource):
    """An AKS cluster with a small system pool inline and the workload pool as a separate `AgentPool`.

    Inline pools cannot be added or changed after creation (pulumi-azure-native#579, #2719), so only
    the system pool lives in `agent_pool_profiles`; a change to it fails with the manual step
    (`stacks.node_pools.check_system_pool`). The workload pool's name is versioned by its shape
    (`stacks.node_pools.workload_pool_name`): a new VM size, disk or zone list creates a new pool before
    the old one is deleted. Access is Entra ID with Azure RBAC for Kubernetes
    (managed AAD profile); local accounts (the admin certificate) exist only if `security.local_accounts`.
    The provider kubeconfig signs in through kubelogin (`stacks.kubeconfig`) and holds no credential.

    Outputs: `cluster_name`, `cluster_id` (ARM id), `kubelet_object_id` (the kubelet identity's Entra
    object id, for AcrPull), `oidc_issuer_url`, `kubeconfig` (secret, YAML text, no credential in it; it
    `workload_pool_name`, `system_pool` (the stack's system pool, after `check_system_pool`: raises
    `ConfigError` when Azure runs another).
    """

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aks-image-classifier:cluster:Cluster", name, None, opts)
        s, sec = args.settings, args.security
        child = pulumi.ResourceOptions(parent=self)
        zones = list(s.zones) or None
        system_shape, workload_shape = (
            PoolShape(
                vm_size=vm_size,
                os_sku=containerservice.OSSKU.AZURE_LINUX.value,
                os_disk_type=sec.os_disk_type,
                os_disk_size_gb=sec.os_disk_size_gb,
                max_pods=sec.max_pods,
                zones=tuple(s.zones),
                encryption_at_host=sec.encryption_at_host,
            )
            for vm_size in (s.system_vm_size, s.node_vm_size)
        )
        nodes = {  # the same hardening for both pools
            "os_disk_type": sec.os_disk_type,
            "os_disk_size_gb": sec.os_disk_size_gb,
            "max_pods": sec.max_pods,
            "enable_encryption_at_host": sec.encryption_at_host,
        }
        self.workspace = log_workspace(
            name, args.resource_group_name, args.location, s.log_retention_days, child
        )
        self.cluster = containerservice.ManagedCluster(
            f"{name}-aks",
            resource_group_name=args.resource_group_name,
            location=args.location,
            dns_prefix=name,
            kubernetes_version=s.kubernetes_version,
            sku=containerservice.ManagedClusterSKUArgs(
                name=containerservice.ManagedClusterSKUName.BASE, tier=s.tier
            ),
            identity=containerservice.ManagedClusterIdentityArgs(
                type=containerservice.ResourceIdentityType.SYSTEM_ASSIGNED
            ),
            enable_rbac=True,
            aad_profile=containerservice.ManagedClusterAADProfileArgs(
                managed=True, enable_azure_rbac=True, tenant_id=args.tenant_id
            ),
            disable_local_accounts=not sec.local_accounts,
            api_server_access_profile=containerservice.ManagedClusterAPIServerAccessProfileArgs(
                authorized_ip_ranges=authorized_ranges(sec)
            )
            if sec.restricts_api_server
            else None,
            agent_pool_profiles=[
                containerservice.ManagedClusterAgentPoolProfileArgs(
                    name=SYSTEM_POOL,
                    mode=containerservice.AgentPoolMode.SYSTEM,
                    vm_size=s.system_vm_size,
                    count=s.system_node_count,
                    os_type=containerservice.OSType.LINUX,
                    os_sku=containerservice.OSSKU.AZURE_LINUX,
                    type=containerservice.AgentPoolType.VIRTUAL_MACHINE_SCALE_SETS,
                    availability_zones=zones,
                    node_taints=["CriticalAddonsOnly=true:NoSchedule"],
                    **nodes,
                )
            ],
            network_profile=containerservice.ContainerServiceNetworkProfileArgs(
                network_plugin=containerservice.NetworkPlugin.AZURE,
                network_plugin_mode=containerservice.NetworkPluginMode.OVERLAY,
                network_policy=containerservice.NetworkPolicy.AZURE,
                load_balancer_sku=containerservice.LoadBalancerSku.STANDARD,
                pod_cidr="10.244.0.0/16",
            ),
            oidc_issuer_profile=containerservice.ManagedClusterOIDCIssuerProfileArgs(enabled=True),
            security_profile=containerservice.ManagedClusterSecurityProfileArgs(
                workload_identity=containerservice.ManagedClusterSecurityProfileWorkloadIdentityArgs(
                    enabled=True
                )
            ),
            addon_profiles={
                "omsagent": containerservice.ManagedClusterAddonProfileArgs(
                    enabled=True,
                    config={"logAnalyticsWorkspaceResourceID": self.workspace.id, "useAADAuth": "true"},
                ),
                # Said explicitly (CKV_AZURE_8): the dashboard would be a second, unaudited way in.
                "kubeDashboard": containerservice.ManagedClusterAddonProfileArgs(enabled=False),
            },
            # Managed Prometheus's add-on (ama-metrics); it ships to the workspace through the data collection
            # rule associated in `stacks.prometheus` (Azure/prometheus-collector AddonBicepTemplate
            # `nested_azuremonitormetrics_profile_clusterResourceId.bicep`: `azureMonitorProfile.metrics`).
            azure_monitor_profile=containerservice.ManagedClusterAzureMonitorProfileArgs(
                metrics=containerservice.ManagedClusterAzureMonitorProfileMetricsArgs(enabled=True)
            ),
            # The KEDA add-on (operator and metrics server in kube-system): `stacks.keda` scales the workload.
            workload_auto_scaler_profile=containerservice.ManagedClusterWorkloadAutoScalerProfileArgs(
                keda=containerservice.ManagedClusterWorkloadAutoScalerProfileKedaArgs(enabled=True)
            ),
            auto_upgrade_profile=containerservice.ManagedClusterAutoUpgradeProfileArgs(
                upgrade_channel=s.upgrade_channel,
                node_os_upgrade_channel=containerservice.NodeOSUpgradeChannel.NODE_IMAGE,
            ),
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=cluster_ignore_changes(s)),
        )
        self.workload_pool_name = workload_pool_name(workload_shape)
        self.workload_pool = containerservice.AgentPool(
            f"{name}-workload",
            agent_pool_name=self.workload_pool_name,
            resource_group_name=args.resource_group_name,
            resource_name_=self.cluster.name,
            mode=containerservice.AgentPoolMode.USER,
            vm_size=s.node_vm_size,
            os_type=containerservice.OSType.LINUX,
            os_sku=containerservice.OSSKU.AZURE_LINUX,
            type=containerservice.AgentPoolType.VIRTUAL_MACHINE_SCALE_SETS,
            enable_auto_scaling=True,
            count=s.node_min_count or 1,
            min_count=s.node_min_count,
            max_count=s.node_max_count,
            availability_zones=zones,
            orchestrator_version=s.kubernetes_version,
            node_labels=dict(WORKLOAD_NODE_SELECTOR),
            **nodes,
            # Create-before-delete (Pulumi's default, said here because the drain depends on it): a new
            # name creates the new pool, and the old one is deleted last, drained under the PDB.
            opts=pulumi.ResourceOptions(
                parent=self, ignore_changes=pool_ignore_changes(s), delete_before_replace=False
            ),
        )
        skip_arm_checks(self.cluster, _cluster_skips(sec))
        skip_arm_checks(self.workload_pool, _pool_skips(sec))
        self.cluster_name: pulumi.Output[str] = self.cluster.name
        self.cluster_id: pulumi.Output[str] = self.cluster.id
        self.kubelet_object_id: pulumi.Output[str] = self.cluster.identity_profile.apply(_kubelet_object_id)
        self.oidc_issuer_url = self.cluster.oidc_issuer_profile.apply(lambda p: p.issuer_url if p else None)
        credentials = containerservice.list_managed_cluster_user_credentials_output(
            resource_group_name=args.resource_group_name, resource_name=self.cluster.name
        )
        # The SDK does not mark credentials secret (pulumi-azure-native#692): do it here, at the source.
        # Only the cluster part (server, CA) is kept; kubelogin signs in (no credential in the kubeconfig).
        kubeconfig = pulumi.Output.all(credentials.apply(decode_kubeconfig), args.tenant_id).apply(
            lambda a: kubelogin_kubeconfig(a[0], sec.kubelogin_mode, a[1])
        )
        # What Azure reports for the system pool (state after the last `up` or `refresh`) against the stack
        # file: a difference fails the update naming the key and the manual step. Not folded into the
        # kubeconfig: an unknown value there in a preview would make the Kubernetes provider unknown too.
        self.system_pool: pulumi.Output[dict] = self.cluster.agent_pool_profiles.apply(
            lambda profiles: check_system_pool(system_shape, s.system_node_count, profiles)
        )
        self.kubeconfig: pulumi.Output[str] = pulumi.Output.secret(kubeconfig)
        self.register_outputs(
            {
                "cluster_name": self.cluster_name,
                "cluster_id": self.cluster_id,
                "kubelet_object_id": self.kubelet_object_id,
                "oidc_issuer_url": self.oidc_issuer_url,
                "kubeconfig": self.kubeconfig,
                "workload_pool_name": self.workload_pool_name,
                "system_pool": self.system_pool,
            }
        )


def cluster_ignore_changes(s: ClusterSettings) -> list[str]:
    """ManagedCluster properties Azure moves after creation, which `pulumi up` must not send back.

    - `agentPoolProfiles`, the whole list: after a `refresh` the separately declared workload AgentPool
      appears in it (pulumi-azure-native#2719, #4264), so the program's one-entry list would diff on
      every `up`, and a cluster PUT puts every pool, the workload pool included, into `Scaling` (#4264).
      A narrower path cannot work: Pulumi's ignoreChanges `Reset` never adds or removes array elements,
      so `agentPoolProfiles[1]` or `agentPoolProfiles[*].count` is a path error once the lists differ in
      length (pulumi/pulumi `sdk/go/common/resource/property_path.go`). The system pool is immutable in
      place anyway (VM size, OS SKU, zones need a new pool); its count is set at creation (`az aks
      nodepool scale` afterwards). The ignored list also hides the system pool's auto-upgraded
      `orchestratorVersion`.
    - `kubernetesVersion` when an upgrade channel moves it (patch, stable, rapid): a pinned version would
      later be a downgrade request, which AKS rejects.
    """
    ignored = ["agentPoolProfiles"]
    if s.upgrades_versions:
        ignored.append("kubernetesVersion")
    return ignored


def pool_ignore_changes(s: ClusterSettings) -> list[str]:
    """The workload AgentPool's properties owned by Azure after creation: `count` (the cluster autoscaler
    moves it between minCount and maxCount; `up` would reset it to the minimum) and, with a version-moving
    upgrade channel, `orchestratorVersion` (AKS upgrades the pool with the control plane)."""
    ignored = ["count"]
    if s.upgrades_versions:
        ignored.append("orchestratorVersion")
    return ignored


def _kubelet_object_id(profile) -> str:
    """`identity_profile["kubeletidentity"].object_id`: the identity kubelet pulls images with."""
    if not profile or "kubeletidentity" not in profile:
        raise ValueError("the AKS cluster reported no kubeletidentity in identity_profile")
    return profile["kubeletidentity"].object_id


#: Accepted on every stack: the program mounts no Key Vault secrets, so the Secrets Store CSI driver
#: add-on (CKV_AZURE_172 checks its rotation setting) would be one more privileged DaemonSet for nothing.
SECRETS_STORE_SKIP = (
    "no Key Vault secrets are mounted (the API key is a Kubernetes Secret), so the Secrets Store CSI "
    "driver add-on whose rotation this checks is not installed"
)


def _pool_skips(sec: SecuritySettings) -> dict[str, str]:
    """checkov findings accepted for the node pools, with the stack setting that explains each."""
    skips = {}
    if not sec.encryption_at_host:
        skips["CKV_AZURE_227"] = (
            "encryptionAtHost is false for this stack so it deploys in a subscription without the "
            "Microsoft.Compute/EncryptionAtHost feature registered (node temp disks are not host-encrypted)"
        )
    return skips


def _cluster_skips(sec: SecuritySettings) -> dict[str, str]:
    skips = {"CKV_AZURE_172": SECRETS_STORE_SKIP, **_pool_skips(sec)}
    if sec.local_accounts:
        skips["CKV_AZURE_141"] = (
            "localAccounts is true for this stack: the admin certificate stays as a break-glass path; "
            "the program itself signs in with Entra ID through kubelogin"
        )
    if not sec.restricts_api_server:
        skips["CKV_AZURE_6"] = (
            "apiServerAuthorizedIpRanges is empty for this stack: the API server is reachable from the "
            "internet but needs an Entra token with an Azure RBAC role (the policy pack warns)"
        )
    if sec.os_disk_type != "Ephemeral":
        skips["CKV_AZURE_226"] = "osDiskType is Managed for this stack (a VM size without a local disk)"
    return skips
