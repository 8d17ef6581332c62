"""The classifier as an Azure Container App: HTTPS ingress, scale to zero on HTTP concurrency, canary
revisions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi_azure_native import app

from stacks import pod_spec, revisions
from stacks.pod_spec import ProbeSpec

API_KEY_SECRET = "api-key"
MODEL_CACHE_VOLUME = "model-cache"
HTTP_RULE = "http-concurrency"
#: Container Apps probe limits (azure-native `app.ContainerAppProbeArgs`, from the Microsoft.App REST spec):
#: failureThreshold 1-10, initialDelaySeconds 1-60, periodSeconds and timeoutSeconds 1-240.
MAX_PROBE_FAILURES, MAX_INITIAL_DELAY_S, MAX_PROBE_PERIOD_S = 10, 60, 240
#: Nothing listens before the model is loaded and warmed (service/__main__.py), which never took under 4.4 s
#: in `bench.model_startup` (docs/model-repository.md): the first startup probe waits that long.
STARTUP_INITIAL_DELAY_S = 5
#: The pods' startup probe allows 36 failures; Container Apps at most 10, so it is re-timed: every 10 s, 10
#: times. A replica is restarted only when /healthz has not answered 5 + 10 x 10 = 105 s after start: twice
#: the slowest start-up measured (50.9 s, under heavy load), leaving more than half of the ingress's 240 s
#: request timeout for the image pull, so a request that woke the app from zero is not cut off by a restart.
#: The period is also how late a finished start is noticed (at most 10 s on top of the start itself).
STARTUP = ProbeSpec("/healthz", 10, pod_spec.STARTUP.timeout_s, MAX_PROBE_FAILURES)
#: Liveness and readiness are the pods' own (their thresholds fit the limits).
LIVENESS, READINESS = pod_spec.LIVENESS, pod_spec.READINESS


@dataclass
class ContainerAppArgs:
    """Inputs for `ContainerApp`.

    `app_name`: the container app (2-32 characters, `stacks.revisions`). `cpu` (vCPU) and `memory_gib`: a
    valid Container Apps allocation (checked by the config). `image`: `<repo>:<tag>@sha256:...`;
    `image_digest`: `sha256:...`, it names the revision. `registry_server`: pulled with `identity_id` (a
    user-assigned identity with AcrPull). `env`: name -> value. `api_key`: a Pulumi secret, stored as a
    Container Apps secret and read as API_KEY. `model_cache`: an EmptyDir volume at MODEL_CACHE_DIR.
    `canary_percent` of the traffic goes to the revision this deployment makes, the rest to `stable_revision`
    (a revision name, or None).
    `allowed_source_ranges`: CIDRs the ingress admits (empty: everyone). `concurrency`: concurrent requests a
    replica takes before the HTTP rule adds one. `cooldown_s`: idle seconds before scaling in to zero.
    """

    resource_group_name: pulumi.Input[str]
    location: pulumi.Input[str]
    environment_id: pulumi.Input[str]
    app_name: str
    image: pulumi.Input[str]
    image_digest: pulumi.Input[str]
    registry_server: pulumi.Input[str]
    identity_id: pulumi.Input[str]
    cpu: float
    memory_gib: float
    min_replicas: int
    max_replicas: int
    concurrency: int
    cooldown_s: int
    termination_grace_s: int
    env: dict[str, pulumi.Input[str]]
    canary_percent: int = 100
    stable_revision: str | None = None
    workload_profile_name: str | None = None
    api_key: pulumi.Input[str] | None = None
    model_cache: bool = False
    allowed_source_ranges: tuple[str, ...] = ()
    depends_on: list[pulumi.Resource] = field(default_factory=list)


def probe(kind: app.Type, spec: ProbeSpec, initial_delay_s: int | None = None) -> app.ContainerAppProbeArgs:
    """A Container Apps HTTP probe on the container port (an integer: named ports are not supported)."""
    return app.ContainerAppProbeArgs(
        type=kind,
        http_get=app.ContainerAppProbeHttpGetArgs(path=spec.path, port=pod_spec.CONTAINER_PORT),
        initial_delay_seconds=initial_delay_s,
        period_seconds=spec.period_s,
        timeout_seconds=spec.timeout_s,
        failure_threshold=spec.failures,
    )


def template_settings(args: ContainerAppArgs) -> dict[str, Any]:
    """Every revision-scope setting but the image, as plain values (the env's may be Outputs): what the
    revision suffix hashes besides the image digest."""
    return {
        "env": dict(args.env),
        "secretEnv": {"API_KEY": API_KEY_SECRET} if args.api_key is not None else {},
        "resources": {"cpu": args.cpu, "memory": memory_quantity(args.memory_gib)},
        "probes": [
            [
                "startup",
                STARTUP.path,
                STARTUP_INITIAL_DELAY_S,
                STARTUP.period_s,
                STARTUP.timeout_s,
                STARTUP.failures,
            ],
            ["liveness", LIVENESS.path, LIVENESS.period_s, LIVENESS.timeout_s, LIVENESS.failures],
            ["readiness", READINESS.path, READINESS.period_s, READINESS.timeout_s, READINESS.failures],
        ],
        "scale": [args.min_replicas, args.max_replicas, args.concurrency, args.cooldown_s],
        "modelCache": args.model_cache,
        "terminationGrace": args.termination_grace_s,
    }


def memory_quantity(gib: float) -> str:
    """Container Apps memory: GiB with at most two decimals, unit `Gi` ("Containers in Azure Container
    Apps")."""
    return f"{gib:.2f}".rstrip("0").rstrip(".") + "Gi"


class ContainerApp(pulumi.ComponentResource):
    """The service on Container Apps, from the same image and with the same probes and environment as the
    pods.

    External ingress on HTTPS only (`allowInsecure: false`; the platform's certificate for
    `<app>.<environment domain>`), the registry pulled by the user-assigned identity (no password secret),
    `activeRevisionsMode: Multiple` with a revision per image digest and template (`stacks.revisions`) and the
    traffic split between it and `stable_revision`, an HTTP concurrency scale rule from `min_replicas` (0:
    scale to zero) to `max_replicas`. Outputs: `url` (`https://<fqdn>/`), `latest_revision` (as Azure reports
    it), `revision_suffix`, `traffic` (`{revision name: percent}`).
    """

    def __init__(self, name: str, args: ContainerAppArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aks-image-classifier:container_app:ContainerApp", name, None, opts)
        settings = pulumi.Output.all(env=pulumi.Output.all(**args.env) if args.env else {}).apply(
            lambda resolved: {**template_settings(args), "env": resolved["env"]}
        )
        self.revision_suffix: pulumi.Output[str] = pulumi.Output.all(args.image_digest, settings).apply(
            lambda a: revisions.revision_suffix(a[0], a[1])
        )
        latest = self.revision_suffix.apply(lambda s: revisions.revision_name(args.app_name, s))
        self.traffic: pulumi.Output[dict[str, int]] = latest.apply(
            lambda name: revisions.traffic_split(name, args.canary_percent, args.stable_revision)
        )
        self.app = app.ContainerApp(
            f"{name}-app",
            container_app_name=args.app_name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            environment_id=args.environment_id,
            workload_profile_name=args.workload_profile_name,
            identity=app.ManagedServiceIdentityArgs(
                type=app.ManagedServiceIdentityType.USER_ASSIGNED, user_assigned_identities=[args.identity_id]
            ),
            configuration=app.ConfigurationArgs(
                active_revisions_mode=app.ActiveRevisionsMode.MULTIPLE,
                ingress=app.IngressArgs(
                    external=True,
                    target_port=pod_spec.CONTAINER_PORT,
                    transport=app.IngressTransportMethod.HTTP,
                    allow_insecure=False,
                    ip_security_restrictions=[
                        app.IpSecurityRestrictionRuleArgs(
                            name=f"allow-{i}", action=app.Action.ALLOW, ip_address_range=cidr
                        )
                        for i, cidr in enumerate(args.allowed_source_ranges, start=1)
                    ]
                    or None,
                    traffic=pulumi.Output.all(latest, self.traffic).apply(lambda a: _weights(*a)),
                ),
                registries=[
                    app.RegistryCredentialsArgs(server=args.registry_server, identity=args.identity_id)
                ],
                secrets=[app.SecretArgs(name=API_KEY_SECRET, value=pulumi.Output.secret(args.api_key))]
                if args.api_key is not None
                else None,
            ),
            template=_template(args, self.revision_suffix),
            opts=pulumi.ResourceOptions(parent=self, depends_on=args.depends_on),
        )
        self.url: pulumi.Output[str] = self.app.configuration.apply(_url)
        self.latest_revision: pulumi.Output[str] = self.app.latest_revision_name
        self.register_outputs(
            {
                "url": self.url,
                "latest_revision": self.latest_revision,
                "revision_suffix": self.revision_suffix,
                "traffic": self.traffic,
            }
        )


def _template(args: ContainerAppArgs, suffix: pulumi.Output[str]) -> app.TemplateArgs:
    env = [app.EnvironmentVarArgs(name=k, value=v) for k, v in args.env.items()]
    if args.api_key is not None:
        env.append(app.EnvironmentVarArgs(name="API_KEY", secret_ref=API_KEY_SECRET))
    mounts = [app.VolumeMountArgs(volume_name=MODEL_CACHE_VOLUME, mount_path=pod_spec.MODEL_CACHE_DIR)]
    return app.TemplateArgs(
        revision_suffix=suffix,
        termination_grace_period_seconds=args.termination_grace_s,
        containers=[
            app.ContainerArgs(
                name=args.app_name,
                image=args.image,
                env=env,
                resources=app.ContainerResourcesArgs(cpu=args.cpu, memory=memory_quantity(args.memory_gib)),
                probes=[
                    probe(app.Type.STARTUP, STARTUP, STARTUP_INITIAL_DELAY_S),
                    probe(app.Type.LIVENESS, LIVENESS),
                    probe(app.Type.READINESS, READINESS),
                ],
                volume_mounts=mounts if args.model_cache else None,
            )
        ],
        volumes=[app.VolumeArgs(name=MODEL_CACHE_VOLUME, storage_type=app.StorageType.EMPTY_DIR)]
        if args.model_cache
        else None,
        scale=app.ScaleArgs(
            min_replicas=args.min_replicas,
            max_replicas=args.max_replicas,
            cooldown_period=args.cooldown_s,
            rules=[
                app.ScaleRuleArgs(
                    name=HTTP_RULE,
                    http=app.HttpScaleRuleArgs(metadata={"concurrentRequests": str(args.concurrency)}),
                )
            ],
        ),
    )


def _weights(latest: str, split: dict[str, int]) -> list[app.TrafficWeightArgs]:
    """Ingress traffic entries: the revision this deployment makes as `latestRevision: true` (it has no name
    until created), any other by name."""
    return [
        app.TrafficWeightArgs(latest_revision=True, weight=weight)
        if revision == latest
        else app.TrafficWeightArgs(revision_name=revision, weight=weight)
        for revision, weight in split.items()
    ]


def _url(configuration) -> str:
    """`https://<ingress fqdn>/` ('' until Azure reports the fqdn)."""
    fqdn = configuration.ingress.fqdn if configuration and configuration.ingress else None
    return f"https://{fqdn}/" if fqdn else ""
