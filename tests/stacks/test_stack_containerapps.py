"""Target `containerapps` (`Pulumi.aca.yaml`) under mocks: what the stack declares, what its config refuses.

Rules modelled, each cited where asserted: Microsoft Learn "Containers in Azure Container Apps" (allocation
table), "Health probes in Azure Container Apps" and the Microsoft.App REST spec's probe limits (as the
azure-native SDK documents them), "Revisions in Azure Container Apps" (revision suffixes, multiple revision
mode, traffic splitting), "Ingress in Azure Container Apps" (external, `allowInsecure`), "Scaling in Azure
Container Apps" (HTTP rule `concurrentRequests`, `minReplicas: 0`).
"""

from __future__ import annotations

import re

import pytest

from stacks import container_app, pod_spec
from stacks.config import ConfigError
from stacks.roles import ACR_PULL, STORAGE_BLOB_DATA_READER
from tests.harness import azure_schema
from tests.harness import stack_mocks as mocks
from tests.stacks.conftest import ROOT, run_stack

APP = "azure-native:app:ContainerApp"
ENVIRONMENT = "azure-native:app:ManagedEnvironment"
IDENTITY = "azure-native:managedidentity:UserAssignedIdentity"
ROLE = "azure-native:authorization:RoleAssignment"
MODEL_URI = "https://aicmacax7k2p9.blob.core.windows.net/models/resnet/2/model.pt"
SHA = "ab" * 32


@pytest.fixture(scope="module")
def aca() -> mocks.MockRun:
    return run_stack("aca")


def app_of(run: mocks.MockRun) -> dict:
    return run.one(APP).inputs


def env_of(run: mocks.MockRun) -> dict[str, dict]:
    (container,) = app_of(run)["template"]["containers"]
    return {e["name"]: e for e in container["env"]}


def test_the_stack_file_passes_the_cli_rules_and_declares_no_aks(aca):
    config = mocks.stack_file_config("aca", ROOT)  # raises CliConfigError where the Pulumi CLI would stop
    assert config["aks-image-classifier:target"] == "containerapps"
    types = {r.type for r in aca.resources}
    assert not {t for t in types if t.startswith(("azure-native:containerservice:", "kubernetes:"))}
    assert {APP, ENVIRONMENT, "azure-native:containerregistry:Registry"} <= types
    assert "azure-native:managedidentity:FederatedIdentityCredential" not in types  # AKS-only
    assert {"operationalinsights:Workspace", "storage:StorageAccount"} <= {t.split(":", 1)[1] for t in types}


def test_the_registry_is_pulled_by_the_apps_identity_with_no_password(aca):
    app = app_of(aca)
    identity = aca.one(IDENTITY)
    assert app["identity"] == {"type": "UserAssigned", "userAssignedIdentities": [identity.id]}
    registry = aca.one("azure-native:containerregistry:Registry")
    assert registry.inputs["adminUserEnabled"] is False
    (credentials,) = app["configuration"]["registries"]
    # "Containers in Azure Container Apps", managed identity with ACR: `identity`, no password secret.
    assert credentials == {"server": registry.state["loginServer"], "identity": identity.id}
    assert "secrets" not in app["configuration"]  # no API key in this stack: no secret at all
    pull = next(r for r in aca.of_type(ROLE) if r.inputs["roleDefinitionId"].endswith(ACR_PULL))
    assert pull.inputs["principalId"] == identity.state["principalId"]
    assert pull.inputs["principalType"] == "ServicePrincipal" and pull.inputs["scope"] == registry.id
    assert pull.urn in aca.one(APP).dependencies  # no revision before the identity may pull


def test_ingress_is_external_https_only_and_the_url_is_https(aca):
    ingress = app_of(aca)["configuration"]["ingress"]
    # "Ingress in Azure Container Apps": allowInsecure false redirects HTTP to HTTPS (platform certificate).
    assert ingress["external"] is True and ingress["allowInsecure"] is False
    assert ingress["targetPort"] == pod_spec.CONTAINER_PORT
    assert "ipSecurityRestrictions" not in ingress  # allowedSourceRanges empty: open
    assert aca.outputs["endpoint"] == f"https://classifier.{mocks.ACA_DEFAULT_DOMAIN}/"


def test_scales_to_zero_on_http_concurrency_in_a_consumption_environment(aca):
    scale = app_of(aca)["template"]["scale"]
    assert scale["minReplicas"] == 0 and scale["maxReplicas"] == 10
    (rule,) = scale["rules"]
    assert rule == {"name": "http-concurrency", "http": {"metadata": {"concurrentRequests": "16"}}}
    environment = aca.one(ENVIRONMENT).inputs
    assert "workloadProfiles" not in environment and "workloadProfileName" not in app_of(aca)
    assert environment["appLogsConfiguration"] == {"destination": "azure-monitor"}  # no shared key
    resources = app_of(aca)["template"]["containers"][0]["resources"]
    assert resources == {"cpu": 1.0, "memory": "2Gi"}


def probes_by_type(run: mocks.MockRun) -> dict[str, dict]:
    (container,) = app_of(run)["template"]["containers"]
    return {p["type"]: p for p in container["probes"]}


def test_probes_are_the_pods_within_container_apps_limits(aca):
    probes = probes_by_type(aca)
    for kind, spec in (("Liveness", pod_spec.LIVENESS), ("Readiness", pod_spec.READINESS)):
        assert probes[kind] == {
            "type": kind,
            "httpGet": {"path": spec.path, "port": pod_spec.CONTAINER_PORT},
            "periodSeconds": spec.period_s,
            "timeoutSeconds": spec.timeout_s,
            "failureThreshold": spec.failures,
        }
    startup = probes["Startup"]
    assert startup["httpGet"] == {"path": pod_spec.STARTUP.path, "port": pod_spec.CONTAINER_PORT}
    assert startup["timeoutSeconds"] == pod_spec.STARTUP.timeout_s
    # azure-native app.ContainerAppProbeArgs (Microsoft.App REST spec): failureThreshold 1-10,
    # initialDelaySeconds 1-60, periodSeconds 1-240; the pods' 36 startup failures do not fit.
    for probe in probes.values():
        assert 1 <= probe["failureThreshold"] <= 10 and 1 <= probe["periodSeconds"] <= 240
        assert 1 <= probe.get("initialDelaySeconds", 1) <= 60
    assert pod_spec.STARTUP.failures > 10


def test_a_cold_start_fits_the_startup_probe_and_the_ingress_timeout(aca):
    """The slowest start-up docs/model-repository.md reports (heavy load) must fit twice in the startup
    window, and the window must leave most of the ingress's 240 s request timeout ("Ingress in Azure Container
    Apps": requests time out after 240 s) to pull the image, so a waking request is not cut short."""
    text = (ROOT / "docs" / "model-repository.md").read_text()
    slowest = max(float(m) for m in re.findall(r"medians of ([0-9.]+) s vs ([0-9.]+) s", text)[0])
    startup = probes_by_type(aca)["Startup"]
    window = startup["initialDelaySeconds"] + startup["periodSeconds"] * startup["failureThreshold"]
    assert window == container_app.STARTUP_INITIAL_DELAY_S + container_app.STARTUP.budget_s == 105
    assert window >= 2 * slowest and window <= 240 / 2
    assert startup["periodSeconds"] <= 10  # a finished start is noticed within 10 s


def test_one_revision_per_image_and_template_with_all_traffic_by_default(aca):
    app = app_of(aca)
    assert app["configuration"]["activeRevisionsMode"] == "Multiple"
    suffix = app["template"]["revisionSuffix"]
    digest = aca.one("docker-build:index:Image").state["digest"]
    assert suffix.startswith("r" + digest.removeprefix("sha256:")[:12] + "-")
    assert (
        aca.outputs["latest_revision"]
        == f"classifier--{suffix}"
        == aca.outputs["revision_suffix"].join(["classifier--", ""])
    )
    assert app["configuration"]["ingress"]["traffic"] == [{"latestRevision": True, "weight": 100}]
    assert aca.outputs["traffic"] == {f"classifier--{suffix}": 100}
    # The same config again: the same revision (no new revision on every `pulumi up`).
    assert app_of(run_stack("aca"))["template"]["revisionSuffix"] == suffix


def test_a_canary_takes_ten_percent_and_the_stable_revision_keeps_the_rest(aca):
    stable = aca.outputs["latest_revision"]
    canary = run_stack("aca", stableRevision=stable, canaryPercent="10", modelUri=MODEL_URI, modelSha256=SHA)
    suffix = app_of(canary)["template"]["revisionSuffix"]
    assert f"classifier--{suffix}" != stable  # a new model is a new revision
    assert app_of(canary)["configuration"]["ingress"]["traffic"] == [
        {"revisionName": stable, "latestRevision": False, "weight": 90},  # the SDK's default False
        {"latestRevision": True, "weight": 10},
    ]
    assert canary.outputs["traffic"] == {stable: 90, f"classifier--{suffix}": 10}
    env = env_of(canary)
    assert env["MODEL_URI"]["value"] == MODEL_URI and env["MODEL_SHA256"]["value"] == SHA
    (mount,) = app_of(canary)["template"]["containers"][0]["volumeMounts"]
    assert mount["mountPath"] == env["MODEL_CACHE_DIR"]["value"] == pod_spec.MODEL_CACHE_DIR
    assert app_of(canary)["template"]["volumes"] == [{"name": "model-cache", "storageType": "EmptyDir"}]
    # Promote: 100 %; the stable revision may stay named, it simply gets nothing.
    promoted = run_stack("aca", stableRevision=stable, modelUri=MODEL_URI, modelSha256=SHA)
    assert app_of(promoted)["configuration"]["ingress"]["traffic"] == [
        {"latestRevision": True, "weight": 100}
    ]
    # Traffic-only changes (configuration, not template) keep the canary's revision.
    assert app_of(promoted)["template"]["revisionSuffix"] == suffix


def test_the_apps_identity_reads_the_model_repository(aca):
    identity = aca.one(IDENTITY)
    reader = next(
        r for r in aca.of_type(ROLE) if r.inputs["roleDefinitionId"].endswith(STORAGE_BLOB_DATA_READER)
    )
    container = aca.one("azure-native:storage:BlobContainer")
    assert (
        reader.inputs["principalId"] == identity.state["principalId"]
        and reader.inputs["scope"] == container.id
    )
    assert aca.one("azure-native:storage:StorageAccount").inputs["allowSharedKeyAccess"] is False
    assert env_of(aca)["AZURE_CLIENT_ID"]["value"] == identity.state["clientId"]
    assert reader.urn in aca.one(APP).dependencies
    assert aca.outputs["model_repository_url"].endswith("/models")


def test_api_key_is_a_container_apps_secret_and_source_ranges_become_allow_rules():
    config = mocks.stack_file_config("aca", ROOT)
    config["aks-image-classifier:apiKey"] = "a-long-enough-api-key-1234"
    config["aks-image-classifier:allowedSourceRanges"] = ["203.0.113.0/24"]
    run = mocks.run_program(config, "aca", secret_keys=("aks-image-classifier:apiKey",))
    app = run.one(APP)
    configuration = app.raw_inputs["configuration"]
    # The engine stores the key encrypted: the secret marks the value (or the whole object holding it).
    if not mocks.is_secret(configuration):
        (secret,) = configuration["secrets"]
        assert mocks.is_secret(secret) or mocks.is_secret(secret["value"])
    assert app.inputs["configuration"]["secrets"] == [
        {"name": "api-key", "value": "a-long-enough-api-key-1234"}
    ]
    assert env_of(run)["API_KEY"] == {"name": "API_KEY", "secretRef": "api-key"}
    (rule,) = app.inputs["configuration"]["ingress"]["ipSecurityRestrictions"]
    assert rule == {"name": "allow-1", "action": "Allow", "ipAddressRange": "203.0.113.0/24"}


def test_url_fetch_env_is_off_unless_configured_on_both_targets(aca, dev):
    assert not {"IMAGE_URL_FETCH", "IMAGE_URL_ALLOWED_HOSTS"} & set(env_of(aca))
    on = run_stack(
        "aca", imageUrlFetch="true", imageUrlAllowedHosts=["127.0.0.1", "10.0.0.0/8", "images.test"]
    )
    assert env_of(on)["IMAGE_URL_FETCH"]["value"] == "true"
    assert env_of(on)["IMAGE_URL_ALLOWED_HOSTS"]["value"] == "127.0.0.1,10.0.0.0/8,images.test"
    deployment = dev.one("kubernetes:apps/v1:Deployment").inputs
    names = {e["name"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "IMAGE_URL_FETCH" not in names


@pytest.fixture(scope="module")
def dev() -> mocks.MockRun:
    return run_stack("dev", imageUrlFetch="false")


@pytest.mark.parametrize(
    ("overrides", "key", "words"),
    [
        ({"cpuLimit": "300m", "cpuRequest": "300m"}, "cpuLimit", "steps of 0.25"),
        ({"cpuLimit": "2.5", "cpuRequest": "2.5", "memoryLimit": "5Gi"}, "cpuLimit", "Consumption-only"),
        ({"memoryLimit": "3Gi"}, "memoryLimit", "must be 2Gi for aks-image-classifier:cpuLimit 1"),
        (
            {"memoryLimit": "2100Mi", "memoryRequest": "1Gi"},
            "memoryLimit",
            "must be 2Gi",
        ),  # 2100 MiB is 2.05 GiB: above the model's memory floor, but not an allocation
        ({"workloadProfile": "D4", "memoryLimit": "17Gi"}, "memoryLimit", "at most 16Gi"),
        ({"workloadProfile": "Y9"}, "workloadProfile", "D4"),
        ({"canaryPercent": "10"}, "canaryPercent", "needs aks-image-classifier:stableRevision"),
        ({"canaryPercent": "10", "stableRevision": "other--r1"}, "stableRevision", "classifier--<suffix>"),
        ({"stableRevision": "classifier--Bad_Suffix"}, "stableRevision", "lower-case"),
        ({"appName": "a-very-long-classifier-name-over-32"}, "appName", "2-32"),
        ({"containerAppMinReplicas": "11"}, "containerAppMinReplicas", "<= aks-image-classifier:maxReplicas"),
        ({"containerAppConcurrency": "65"}, "containerAppConcurrency", "maxQueue"),
        ({"imageUrlAllowedHosts": ["127.0.0.1"]}, "imageUrlAllowedHosts", "imageUrlFetch"),
        (
            {"imageUrlFetch": "true", "imageUrlAllowedHosts": ["bad host"]},
            "imageUrlAllowedHosts",
            "host names",
        ),
        ({"azure-native:location": ""}, "azure-native:location", "target containerapps"),
    ],
)
def test_config_mistakes_name_the_key(overrides, key, words):
    with pytest.raises(ConfigError) as error:
        run_stack("aca", **overrides)
    full = key if ":" in key else f"aks-image-classifier:{key}"
    assert str(error.value).startswith(full) and words in str(error.value), str(error.value)


@pytest.mark.parametrize(
    ("profile", "cpu", "memory"),
    [("Consumption", "2.5", "5Gi"), ("Consumption", "4", "8Gi"), ("D4", "3.5", "12Gi")],
)
def test_workload_profiles_allow_larger_replicas(profile, cpu, memory):
    run = run_stack("aca", workloadProfile=profile, cpuLimit=cpu, cpuRequest=cpu, memoryLimit=memory)
    profiles = run.one(ENVIRONMENT).inputs["workloadProfiles"]
    assert profiles[0]["name"] == profiles[0]["workloadProfileType"] == "Consumption"
    expected = "Consumption" if profile == "Consumption" else profile.lower()
    assert app_of(run)["workloadProfileName"] == expected
    if profile != "Consumption":
        assert profiles[1]["name"] == "d4" and profiles[1]["workloadProfileType"] == "D4"
        assert (profiles[1]["minimumCount"], profiles[1]["maximumCount"]) == (1, 3)  # nodeMin/MaxCount
    assert app_of(run)["template"]["containers"][0]["resources"]["cpu"] == float(cpu)


def test_every_consumption_allocation_of_the_table_is_accepted():
    """The table of "Containers in Azure Container Apps" (Allocations): 0.25 vCPU / 0.5Gi ... 2.0 / 4.0Gi in a
    Consumption-only environment, written out here rather than derived from the code's rule. Every one is a
    valid allocation; those under the service's memory floor (model, batches, bodies: docs/memory.md) are
    refused for that reason, naming memoryLimit and the minimum, not for their shape."""
    table = [(0.25, "0.5Gi"), (0.5, "1Gi"), (0.75, "1.5Gi"), (1.0, "2Gi"), (1.25, "2.5Gi"), (1.5, "3Gi")]
    table += [(1.75, "3.5Gi"), (2.0, "4Gi")]
    for cpu, memory in table:
        cfg = mocks.stack_file_config("aca", ROOT)
        cfg.update(
            {
                f"aks-image-classifier:{k}": v
                for k, v in {"cpuLimit": str(cpu), "cpuRequest": str(cpu)}.items()
            }
        )
        cfg.update({"aks-image-classifier:memoryLimit": memory, "aks-image-classifier:memoryRequest": memory})
        from stacks.config import load_config, memory_bytes
        from stacks.config.workload import minimum_memory_limit

        stack = load_config(mocks.stack_file_config("aca", ROOT).get, stack="aca", is_secret=lambda k: False)
        floor = minimum_memory_limit(str(cpu), stack.workload.max_batch_size, stack.workload.max_queue)
        if memory_bytes(memory) < floor:
            refused = r"^aks-image-classifier:memoryLimit \(.*\) must be >= \d+Mi"
            with pytest.raises(ConfigError, match=refused):
                load_config(cfg.get, stack="aca", is_secret=lambda key: False)
            continue
        loaded = load_config(cfg.get, stack="aca", is_secret=lambda key: False)
        assert (loaded.container_app.cpu, loaded.container_app.memory_gib) == (cpu, float(memory[:-2]))
        assert container_app.memory_quantity(loaded.container_app.memory_gib) == memory


def test_the_bodies_fit_the_sdks_types_strictly(aca):
    """`tests.harness.azure_schema`: every key declared by the SDK's input types (generated from the
    Microsoft.App REST spec) and every number within the spec's bounds, for the default stack and for the
    variants with a canary, an API key, source ranges, URL fetch and a Dedicated profile."""
    from pulumi_azure_native import app, monitor

    variant = run_stack(
        "aca",
        stableRevision=aca.outputs["latest_revision"],
        canaryPercent="10",
        modelUri=MODEL_URI,
        modelSha256=SHA,
        allowedSourceRanges=["203.0.113.0/24"],
        imageUrlFetch="true",
        workloadProfile="D4",
    )
    for run in (aca, variant):
        assert azure_schema.check(run.one(APP).inputs, app.ContainerAppArgs) == []
        assert azure_schema.check(run.one(ENVIRONMENT).inputs, app.ManagedEnvironmentArgs) == []
        diagnostics = run.one("azure-native:monitor:DiagnosticSetting").inputs
        assert azure_schema.check(diagnostics, monitor.DiagnosticSettingArgs) == []


def test_the_strict_check_catches_what_the_api_would_refuse(aca):
    from pulumi_azure_native import app

    body = app_of(aca)
    probe = {**body["template"]["containers"][0]["probes"][0], "failureThreshold": 36}
    broken = {
        **body,
        "template": {
            **body["template"],
            "containers": [{**body["template"]["containers"][0], "probes": [probe]}],
        },
        "configuration": {**body["configuration"], "ingres": {}},
    }
    assert azure_schema.check(broken, app.ContainerAppArgs) == [
        "template.containers[0].probes[0].failureThreshold: 36 is outside [1, 10]",
        "configuration.ingres: not a property of ConfigurationArgs",
    ]


def test_image_for_container_apps_names_no_cpu_tier(aca):
    """Container Apps does not say which CPU a replica gets: the baked model is compiled for the Dockerfile's
    default tier (AVX-512 VNNI), not for a guess."""
    assert "MODEL_TARGET_CPU" not in aca.one("docker-build:index:Image").inputs["buildArgs"]
