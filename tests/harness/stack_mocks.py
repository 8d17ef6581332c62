"""Run the Pulumi program in-process under mocks: a test harness for the tests and `tools.render_manifests`
(kept out of the deployable `stacks/` package).

`run_program(config, stack)` resets the Pulumi runtime settings, loads the given config, declares the
stack with fake cloud answers (`FakeCloud`) and returns every registered resource with its inputs,
parent, dependencies and options, plus the resolved stack outputs and whether each is secret.
It can run many times in one process: each call builds fresh settings, config and root stack.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from stacks.config import PROJECT, load_config

# Pulumi's wire encoding of a secret: {"4dabf1...": "1b4706...", "value": <plain value>} (sdk rpc.py).
_SECRET_SIG = "4dabf18193072939515e22adb298388d"
_SECRET_VALUE_SIG = "1b47061264138c4ac30d75fd1eb44270"
SUBSCRIPTION_ID = "00000000-1111-2222-3333-444444444444"
TENANT_ID = "99999999-8888-7777-6666-555555555555"
DEPLOYER_OBJECT_ID = "dddddddd-0000-0000-0000-000000000001"
KUBELET_OBJECT_ID = "kkkkkkkk-0000-0000-0000-000000000002".replace("k", "b")
CONTROL_PLANE_PRINCIPAL_ID = "cccccccc-0000-0000-0000-000000000003"
#: The prod runner's egress address (a documentation address, RFC 5737): what Azure gives bootstrap's static
#: public IP (tests/bootstrap/harness.py) and answers when the main program reads it.
RUNNER_EGRESS_IP = "203.0.113.77"
ARM_TOKEN = "fake-arm-access-token"
ACR_REFRESH_TOKEN = "fake-acr-refresh-token"
#: What `listClusterUserCredential` returns for a managed-Entra cluster: server + CA, and a user that runs
#: kubelogin in device-code mode (the shape `az aks get-credentials` writes for such a cluster).
KUBE_SERVER = "https://cluster-abc123.hcp.westeurope.azmk8s.io:443"
KUBE_CA = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nfake-ca\n-----END CERTIFICATE-----\n").decode()
KUBECONFIG = f"""apiVersion: v1
kind: Config
clusters:
- name: cluster-aks
  cluster:
    server: {KUBE_SERVER}
    certificate-authority-data: {KUBE_CA}
contexts:
- name: cluster-aks
  context:
    cluster: cluster-aks
    user: clusterUser_rg_cluster-aks
current-context: cluster-aks
users:
- name: clusterUser_rg_cluster-aks
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: kubelogin
      args: [get-token, --environment, AzurePublicCloud, --server-id, 6dae42f8-4368-4678-94ff-3960e28e3630,
        --client-id, 80faf920-1908-4b52-b5ef-a8e7bedfc67a, --tenant-id, {TENANT_ID}, --login, devicecode]
"""
REDACTED = "<secret>"
RESOURCE_GROUP_LOCATION = "westeurope"
LOAD_BALANCER_IP = "20.50.100.7"
OIDC_ISSUER_URL = "https://oidc.example/issuer/"
MODEL_IDENTITY_CLIENT_ID = "mmmmmmmm-0000-0000-0000-000000000004".replace("m", "a")
#: An Azure Monitor workspace's Prometheus query endpoint (`https://<name>-<hash>.<region>.prometheus.monitor.
#: azure.com`).
PROMETHEUS_QUERY_ENDPOINT = "https://amw-abc1.westeurope.prometheus.monitor.azure.com"
MODEL_IDENTITY_PRINCIPAL_ID = "pppppppp-0000-0000-0000-000000000005".replace("p", "e")
#: The managed environment's domain: apps get `<app>.<domain>` (Microsoft.App managedEnvironments
#: `defaultDomain`, e.g. `happyhill-70162bb9.westeurope.azurecontainerapps.io`).
ACA_DEFAULT_DOMAIN = "kindsea-1a2b3c4d.westeurope.azurecontainerapps.io"


def fake_digest(text: str) -> str:
    """`sha256:<64 hex>`, deterministic for a given tag (a stand-in for the registry's digest)."""
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Registration:
    """One resource as the engine saw it: `inputs`/`state` use the provider's (camelCase) names."""

    type: str
    name: str
    urn: str
    id: str
    inputs: dict[str, Any]
    raw_inputs: dict[str, Any]
    state: dict[str, Any]
    parent: str
    dependencies: list[str]
    provider: str
    ignore_changes: list[str]
    custom_timeouts: dict[str, str]
    protect: bool
    retain_on_delete: bool
    delete_before_replace: bool = False


@dataclass
class MockRun:
    """Result of `run_program`: resources in registration order, outputs, secrecy, invokes made."""

    resources: list[Registration] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    secret_outputs: set[str] = field(default_factory=set)
    invokes: list[str] = field(default_factory=list)
    config: Any = None  # the StackConfig the program was given
    api_key_is_secret: bool | None = None  # Output.is_secret() of config.api_key when one is set

    def of_type(self, type_: str) -> list[Registration]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str) -> Registration:
        found = self.of_type(type_)
        if len(found) != 1:
            raise AssertionError(f"expected one {type_}, found {len(found)}: {[r.name for r in found]}")
        return found[0]


class FakeCloud(pulumi.runtime.Mocks):
    """Plausible provider answers: ARM ids, the ACR login server, the kubelet identity, image digests."""

    def __init__(self, run: MockRun):
        self.run = run

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        state = dict(args.inputs)
        rid = f"{args.name}-id"
        rg = f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{args.inputs.get('resourceGroupName', 'rg')}"
        if args.typ == "azure-native:resources:ResourceGroup":
            state.setdefault("name", args.inputs.get("resourceGroupName", args.name))
            rid = f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{state['name']}"
        elif args.typ == "random:index/randomString:RandomString":
            state["result"] = "x7k2p9"[: int(args.inputs.get("length", 6))]
        elif args.typ == "azure-native:containerregistry:Registry":
            name = args.inputs.get("registryName", args.name)
            state.update(name=name, loginServer=f"{name.lower()}.azurecr.io")
            rid = f"{rg}/providers/Microsoft.ContainerRegistry/registries/{name}"
        elif args.typ == "azure-native:containerservice:ManagedCluster":
            state.update(
                name=args.inputs.get("resourceName", args.name),
                identity={"type": "SystemAssigned", "principalId": CONTROL_PLANE_PRINCIPAL_ID},
                identityProfile={
                    "kubeletidentity": {"objectId": KUBELET_OBJECT_ID, "clientId": "kubelet-client"}
                },
                # ARM's property is `issuerURL` (azure-native ManagedClusterOIDCIssuerProfileResponse).
                oidcIssuerProfile={"enabled": True, "issuerURL": OIDC_ISSUER_URL},
            )
            rid = f"{rg}/providers/Microsoft.ContainerService/managedClusters/{state['name']}"
        elif args.typ == "azure-native:operationalinsights:Workspace":
            rid = f"{rg}/providers/Microsoft.OperationalInsights/workspaces/{args.name}"
        elif args.typ == "azure-native:storage:StorageAccount":
            name = args.inputs.get("accountName", args.name)
            state.update(
                name=name,
                primaryEndpoints={
                    "blob": f"https://{name}.blob.core.windows.net/",
                    "dfs": f"https://{name}.dfs.core.windows.net/",
                },
            )
            rid = f"{rg}/providers/Microsoft.Storage/storageAccounts/{name}"
        elif args.typ == "azure-native:storage:BlobContainer":
            name = args.inputs.get("containerName", args.name)
            account = args.inputs["accountName"]
            state["name"] = name
            account_id = f"{rg}/providers/Microsoft.Storage/storageAccounts/{account}"
            rid = f"{account_id}/blobServices/default/containers/{name}"
        elif args.typ == "azure-native:managedidentity:UserAssignedIdentity":
            name = args.inputs.get("resourceName", args.name)
            # The model repository's identity has fixed ids the tests name; any other one (KEDA's) gets ids
            # of its own, so a test can tell which identity an object was given.
            model = args.name.startswith("models-")
            own_id = uuid.uuid5(uuid.NAMESPACE_URL, name)
            state.update(
                name=name,
                clientId=MODEL_IDENTITY_CLIENT_ID if model else str(own_id),
                principalId=MODEL_IDENTITY_PRINCIPAL_ID if model else str(uuid.uuid5(own_id, "principal")),
                tenantId=TENANT_ID,
            )
            rid = f"{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}"
        elif args.typ == "azure-native:monitor:DataCollectionRule":
            name = args.inputs.get("dataCollectionRuleName", args.name)
            rid = f"{rg}/providers/Microsoft.Insights/dataCollectionRules/{name}"
        elif args.typ == "azure-native:monitor:DataCollectionRuleAssociation":
            name = args.inputs.get("associationName", args.name)
            scope = args.inputs.get("resourceUri", "")
            rid = f"{scope}/providers/Microsoft.Insights/dataCollectionRuleAssociations/{name}"
        elif args.typ == "azure-native:monitor:AzureMonitorWorkspace":
            name = args.inputs.get("azureMonitorWorkspaceName", args.name)
            # ARM's `properties.metrics` of Microsoft.Monitor/accounts 2023-04-03.
            state.update(name=name, metrics={"prometheusQueryEndpoint": PROMETHEUS_QUERY_ENDPOINT})
            rid = f"{rg}/providers/Microsoft.Monitor/accounts/{name}"
        elif args.typ == "azure-native:monitor:DataCollectionEndpoint":
            name = args.inputs.get("dataCollectionEndpointName", args.name)
            rid = f"{rg}/providers/Microsoft.Insights/dataCollectionEndpoints/{name}"
        elif args.typ == "azure-native:monitor:ActionGroup":
            name = args.inputs.get("actionGroupName", args.name)
            rid = f"{rg}/providers/Microsoft.Insights/actionGroups/{name}"
        elif args.typ == "azure-native:alertsmanagement:PrometheusRuleGroup":
            name = args.inputs.get("ruleGroupName", args.name)
            rid = f"{rg}/providers/Microsoft.AlertsManagement/prometheusRuleGroups/{name}"
        elif args.typ == "azure-native:app:ManagedEnvironment":
            name = args.inputs.get("environmentName", args.name)
            state.update(name=name, defaultDomain=ACA_DEFAULT_DOMAIN)
            rid = f"{rg}/providers/Microsoft.App/managedEnvironments/{name}"
        elif args.typ == "azure-native:app:ContainerApp":
            # What Azure reports after the PUT: the revision `<app>--<suffix>` it made, and the ingress fqdn.
            name = args.inputs.get("containerAppName", args.name)
            revision = f"{name}--{args.inputs['template']['revisionSuffix']}"
            configuration = dict(state.get("configuration", {}))
            fqdn = f"{name}.{ACA_DEFAULT_DOMAIN}"
            configuration["ingress"] = {**configuration.get("ingress", {}), "fqdn": fqdn}
            # The SDK takes a list of identity ids; ARM answers a map id -> {principalId, clientId}.
            identity = dict(state.get("identity", {}))
            identity["userAssignedIdentities"] = {
                i: {"principalId": MODEL_IDENTITY_PRINCIPAL_ID, "clientId": MODEL_IDENTITY_CLIENT_ID}
                for i in identity.get("userAssignedIdentities", [])
            }
            state.update(
                name=name,
                identity=identity,
                configuration=configuration,
                latestRevisionName=revision,
                latestRevisionFqdn=f"{name}--{revision.split('--', 1)[1]}.{ACA_DEFAULT_DOMAIN}",
            )
            rid = f"{rg}/providers/Microsoft.App/containerApps/{name}"
        elif args.typ == "docker-build:index:Image":
            tag = args.inputs["tags"][0]
            state["digest"] = fake_digest(tag)
            state["ref"] = f"{tag}@{state['digest']}" if args.inputs.get("push") else tag
        elif args.typ == "kubernetes:core/v1:Service":
            state["status"] = {"loadBalancer": {"ingress": [{"ip": LOAD_BALANCER_IP}]}}
        return rid, state

    def call(self, args: pulumi.runtime.MockCallArgs):
        self.run.invokes.append(args.token)
        if args.token == "azure-native:authorization:getClientConfig":
            return {
                "subscriptionId": SUBSCRIPTION_ID,
                "tenantId": TENANT_ID,
                "objectId": DEPLOYER_OBJECT_ID,
                "clientId": "deployer-client",
            }
        if args.token == "azure-native:resources:getResourceGroup":
            # The group bootstrap/ created (the program reads it, never creates it).
            name = args.args["resourceGroupName"]
            return {
                "id": f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{name}",
                "name": name,
                "location": RESOURCE_GROUP_LOCATION,
                "type": "Microsoft.Resources/resourceGroups",
                "properties": {"provisioningState": "Succeeded"},
            }
        if args.token == "azure-native:network:getPublicIPAddress":
            # The runner's static egress address bootstrap/ declares (read, never owned by the program).
            group, name = args.args["resourceGroupName"], args.args["publicIpAddressName"]
            rid = f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{group}/providers/Microsoft.Network"
            return {"id": f"{rid}/publicIPAddresses/{name}", "name": name, "ipAddress": RUNNER_EGRESS_IP}
        if args.token == "azure-native:authorization:getClientToken":
            return {"token": ARM_TOKEN}
        if args.token == "azure-native:containerservice:listManagedClusterUserCredentials":
            value = base64.b64encode(KUBECONFIG.encode()).decode()
            return {"kubeconfigs": [{"name": "clusterUser", "value": value}]}
        raise NotImplementedError(f"no fake for invoke {args.token}")


class _RecordingMonitor(pulumi_mocks.MockMonitor):
    def __init__(self, mocks: FakeCloud, run: MockRun):
        super().__init__(mocks)
        self.run = run

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            registration = self.resources[response.urn]
            timeouts = request.customTimeouts
            raw = _sync_await(_deserialize(request.object))
            self.run.resources.append(
                Registration(
                    type=request.type,
                    name=request.name,
                    urn=response.urn,
                    id=response.id,
                    inputs=unwrap_secrets(raw),
                    raw_inputs=raw,
                    state=dict(registration.state),
                    parent=request.parent,
                    dependencies=list(request.dependencies),
                    provider=request.provider,
                    ignore_changes=list(request.ignoreChanges),
                    protect=bool(request.protect),
                    retain_on_delete=bool(request.retainOnDelete),
                    delete_before_replace=bool(request.deleteBeforeReplace),
                    custom_timeouts={
                        "create": timeouts.create,
                        "update": timeouts.update,
                        "delete": timeouts.delete,
                    },
                )
            )
        return response


async def _deserialize(struct) -> dict[str, Any]:
    return pulumi.runtime.rpc.deserialize_properties(struct)


def is_secret(value: Any) -> bool:
    """True if a raw input value is wrapped as a Pulumi secret (the engine stores it encrypted)."""
    return isinstance(value, dict) and value.get(_SECRET_SIG) == _SECRET_VALUE_SIG


def unwrap_secrets(value: Any) -> Any:
    """A raw input value with every secret wrapper replaced by the plain value inside it."""
    if is_secret(value):
        return unwrap_secrets(value["value"])
    if isinstance(value, dict):
        return {k: unwrap_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap_secrets(v) for v in value]
    return value


def fake_exchange(login_server: str, tenant_id: str, access_token: str) -> str:
    """Stand-in for `acr_auth.exchange_refresh_token` that checks what the program passes it."""
    assert login_server.endswith(".azurecr.io"), login_server
    assert (tenant_id, access_token) == (TENANT_ID, ARM_TOKEN), (tenant_id, access_token)
    return ACR_REFRESH_TOKEN


def _ensure_event_loop() -> None:
    """Give this thread an open event loop: Pulumi's runtime creates its futures on the current one, and an
    earlier `asyncio.run` in the same process (another test, a tool) leaves none, or a closed one, set."""
    policy = asyncio.get_event_loop_policy()
    try:
        if not policy.get_event_loop().is_closed():
            return
    except RuntimeError:
        pass
    policy.set_event_loop(policy.new_event_loop())


def run_program(
    config: Mapping[str, Any],
    stack: str = "dev",
    *,
    preview: bool = False,
    secret_keys: tuple[str, ...] = (),
    exchange: Callable[[str, str, str], str] = fake_exchange,
    run: MockRun | None = None,
) -> MockRun:
    """Declare stack `stack` under mocks with `config` (full keys such as `aks-image-classifier:target`).

    Non-string values are JSON-encoded as Pulumi does. Raises what the program raises (e.g.
    `ConfigError`); pass `run` to inspect what was registered before the error.
    """
    from stacks.program import build

    _ensure_event_loop()
    pulumi_settings.reset_options(project=PROJECT, stack=stack, preview=preview)
    pulumi.runtime.set_all_config(
        {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}, list(secret_keys)
    )
    run = run if run is not None else MockRun()
    mocks = FakeCloud(run)
    pulumi_mocks.set_mocks(mocks, PROJECT, stack, preview, monitor=_RecordingMonitor(mocks, run))

    async def program() -> None:
        run.config = load_config()
        if run.config.api_key is not None:
            run.api_key_is_secret = await run.config.api_key.is_secret()
        outputs = build(run.config, exchange)
        for key, output in outputs.items():
            run.outputs[key] = await output.future()
            if await output.is_secret():
                run.secret_outputs.add(key)

    _sync_await(run_pulumi_func(lambda: _sync_await(program())))
    return run


def stack_file_config(stack: str, root: str | os.PathLike[str] = ".") -> dict[str, Any]:
    """The config the Pulumi CLI would hand the program for stack `stack` (full keys): `Pulumi.<stack>.yaml`
    checked and merged with the defaults of `Pulumi.yaml` by the CLI's own rules
    (`tests.harness.pulumi_cli_config.apply_project_config`; raises its `CliConfigError` where the CLI would
    stop).

    Scalars are text as the CLI passes them, lists decoded. Secure values (`{secure: ...}`) are returned as
    the placeholder `"<secret>"`: they cannot be decrypted without the stack's secrets provider. Raises
    `FileNotFoundError` for a stack without a file (`pulumi_cli_config` handles a brand-new stack).
    """
    from tests.harness.pulumi_cli_config import apply_project_config, load_project, load_stack_values

    path = Path(root) / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no stack file {path} (stacks: {', '.join(known_stacks(root))})")
    merged = apply_project_config(stack, load_project(root), load_stack_values(stack, root))
    return {key: REDACTED if value.secure else value.content() for key, value in merged.items()}


def known_stacks(root: str | os.PathLike[str] = ".") -> list[str]:
    """Stack names that have a `Pulumi.<stack>.yaml` under `root`."""
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in Path(root).glob("Pulumi.*.yaml"))


def kubernetes_objects(run: MockRun) -> list[dict[str, Any]]:
    """The Kubernetes objects of a run, as the API server would receive them (apiVersion, kind, ...).

    Secret values (the API key) are written as `<secret>`, never in plain text.
    """
    objects = []
    for r in run.resources:
        if r.type.startswith("kubernetes:") and "apiVersion" in r.inputs and "kind" in r.inputs:
            body = _clean({k: v for k, v in _redact(r.raw_inputs).items() if k != "status"})
            head = {k: body.pop(k) for k in ("apiVersion", "kind", "metadata") if k in body}
            objects.append({**head, **body})
    return objects


def _redact(value: Any) -> Any:
    """A raw input value with every secret replaced by the placeholder `<secret>`."""
    if is_secret(value):
        return _mask(unwrap_secrets(value["value"]))
    if isinstance(value, dict):
        return {k: _redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


def _mask(value: Any) -> Any:
    """Keep the shape (maps, lists), replace every scalar with `<secret>`."""
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v) for v in value]
    return REDACTED


def _clean(value: Any) -> Any:
    """Drop None fields and turn integral floats (RPC numbers are doubles) back into ints."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
