"""The model repository under Pulumi mocks: storage, identity federation, role scopes, the workload's wiring.

Rules modelled (what mocks do not check by themselves):
- AKS workload identity: the webhook mutates pods labelled `azure.workload.identity/use: "true"` whose service
  account is annotated `azure.workload.identity/client-id` (azure-workload-identity docs, "Service Account
  Labels and Annotations"); the federated credential's subject is `system:serviceaccount:<ns>:<sa>`, its
  audience `api://AzureADTokenExchange`, its issuer the OIDC issuer URL of the cluster (AKS docs).
- A RoleAssignment to a managed identity must say `ServicePrincipal` (Azure/azure-rest-api-specs#21664).
- Built-in role ids: Azure built-in roles page (Storage Blob Data Reader / Contributor).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stacks.config import ConfigError
from stacks.config import model as model_config
from stacks.model_repository import BLOB_DATA_CONTRIBUTOR_ROLE_ID, BLOB_DATA_READER_ROLE_ID
from tests.harness import stack_mocks as mocks
from tests.stacks.conftest import run_stack

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "azure-native:storage:StorageAccount"
BLOB_SERVICE = "azure-native:storage:BlobServiceProperties"
CONTAINER = "azure-native:storage:BlobContainer"
IDENTITY = "azure-native:managedidentity:UserAssignedIdentity"
FEDERATION = "azure-native:managedidentity:FederatedIdentityCredential"
ROLE = "azure-native:authorization:RoleAssignment"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE_ACCOUNT = "kubernetes:core/v1:ServiceAccount"
AZURE_ONLY = (ACCOUNT, BLOB_SERVICE, CONTAINER, IDENTITY, FEDERATION)
SHA_1 = "1" * 64
SHA_2 = "ab" * 32


def uri(run, path: str = "resnet/1/model.pt") -> str:
    return f"{run.outputs['model_repository_url']}/{path}"


def role(run, role_id: str):
    (found,) = [r for r in run.of_type(ROLE) if r.inputs["roleDefinitionId"].endswith(role_id)]
    return found.inputs


def repository_child(run, type_: str):
    """The one `type_` resource of the ModelRepository component (KEDA has an identity of its own)."""
    (found,) = [r for r in run.of_type(type_) if r.parent.endswith("ModelRepository::models")]
    return found


def template(run) -> dict:
    return run.one(DEPLOYMENT).inputs["spec"]["template"]


def env(run) -> dict[str, object]:
    (container,) = template(run)["spec"]["containers"]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


@pytest.fixture(scope="module")
def rolled():
    """dev serving a published version: modelUri, modelLabelsUri, modelSha256 set."""
    base = "https://aicmdevx7k2p9.blob.core.windows.net/models/resnet/2"
    return run_stack(
        "dev", modelUri=f"{base}/model.pt", modelLabelsUri=f"{base}/labels.txt", modelSha256=SHA_2
    )


def test_storage_account_only_entra_identities_can_use(dev, prod):
    account = dev.one(ACCOUNT).inputs
    assert account["allowSharedKeyAccess"] is False and account["allowBlobPublicAccess"] is False
    assert account["minimumTlsVersion"] == "TLS1_2" and account["enableHttpsTrafficOnly"] is True
    assert account["kind"] == "StorageV2"
    assert account["sku"] == {"name": "Standard_LRS"} and prod.one(ACCOUNT).inputs["sku"] == {
        "name": "Standard_ZRS"
    }
    names = {account["accountName"], prod.one(ACCOUNT).inputs["accountName"]}
    # Storage account names: 3-24 lower-case letters and digits, globally unique (Azure naming rules).
    assert len(names) == 2 and all(n.isalnum() and n.islower() and 3 <= len(n) <= 24 for n in names), names


def test_versioning_soft_delete_and_a_private_container(dev):
    service = dev.one(BLOB_SERVICE).inputs
    assert service["isVersioningEnabled"] is True and service["blobServicesName"] == "default"
    for policy in (service["deleteRetentionPolicy"], service["containerDeleteRetentionPolicy"]):
        assert policy["enabled"] is True and policy["days"] >= 1
    container = dev.one(CONTAINER)
    assert container.inputs["containerName"] == "models" and container.inputs["publicAccess"] == "None"
    assert container.inputs["accountName"] == dev.one(ACCOUNT).inputs["accountName"]
    assert dev.one(BLOB_SERVICE).urn in container.dependencies


def test_identity_is_federated_with_the_workload_service_account(dev):
    federation = repository_child(dev, FEDERATION).inputs
    sa = dev.one(SERVICE_ACCOUNT).inputs["metadata"]
    assert federation["issuer"] == mocks.OIDC_ISSUER_URL  # the cluster's OIDC issuer URL
    assert federation["subject"] == f"system:serviceaccount:{sa['namespace']}:{sa['name']}"
    assert federation["subject"] == "system:serviceaccount:classifier:classifier"
    assert federation["audiences"] == ["api://AzureADTokenExchange"]
    assert federation["resourceName"] == repository_child(dev, IDENTITY).state["name"]


def test_reader_role_goes_to_the_identity_on_the_container_only(dev):
    reader = role(dev, BLOB_DATA_READER_ROLE_ID)
    assert BLOB_DATA_READER_ROLE_ID == "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"
    assert reader["roleDefinitionId"] == (
        f"/subscriptions/{mocks.SUBSCRIPTION_ID}/providers/"
        f"Microsoft.Authorization/roleDefinitions/{BLOB_DATA_READER_ROLE_ID}"
    )
    assert reader["principalId"] == mocks.MODEL_IDENTITY_PRINCIPAL_ID
    assert reader["principalType"] == "ServicePrincipal"
    assert reader["scope"] == dev.one(CONTAINER).id and reader["scope"].endswith("/containers/models")


def publishers(run) -> dict[str, str]:
    """`{principalId: principalType}` of the Storage Blob Data Contributor assignments."""
    return {
        r.inputs["principalId"]: r.inputs["principalType"]
        for r in run.of_type(ROLE)
        if r.inputs["roleDefinitionId"].endswith(BLOB_DATA_CONTRIBUTOR_ROLE_ID)
    }


def test_configured_publishers_get_contributor_on_the_container(dev, prod):
    assert BLOB_DATA_CONTRIBUTOR_ROLE_ID == "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
    # Pulumi.dev.yaml: the dev deploy identity (a managed identity, so ServicePrincipal); prod: a group.
    assert publishers(dev) == {"00000000-0000-4000-8000-00000000de01": "ServicePrincipal"}
    assert publishers(prod) == {"00000000-0000-4000-8000-00000000a001": "Group"}
    assert role(dev, BLOB_DATA_CONTRIBUTOR_ROLE_ID)["scope"] == dev.one(CONTAINER).id
    assert mocks.DEPLOYER_OBJECT_ID not in publishers(dev) | publishers(prod)  # not whoever ran `up`


def test_the_deployer_publishes_only_on_the_opt_in_with_its_declared_type():
    opted = run_stack("dev", grantDeployer="true", deployerPrincipalType="User")
    assert publishers(opted)[mocks.DEPLOYER_OBJECT_ID] == "User"
    assert len(publishers(opted)) == 2  # the configured one stays


def test_service_account_annotation_pod_label_and_ordering(dev):
    sa = dev.one(SERVICE_ACCOUNT).inputs
    assert sa["metadata"]["annotations"] == {
        "azure.workload.identity/client-id": mocks.MODEL_IDENTITY_CLIENT_ID
    }
    assert sa["automountServiceAccountToken"] is False  # the webhook projects its own token volume
    tpl = template(dev)
    assert tpl["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    assert "azure.workload.identity/use" not in dev.one(DEPLOYMENT).inputs["spec"]["selector"]["matchLabels"]
    assert tpl["spec"]["serviceAccountName"] == sa["metadata"]["name"]
    deps = dev.one(DEPLOYMENT).dependencies
    assert repository_child(dev, FEDERATION).urn in deps
    assert any(
        r.urn in deps
        for r in dev.of_type(ROLE)
        if r.inputs["principalId"] == mocks.MODEL_IDENTITY_PRINCIPAL_ID
    )


def test_outputs_for_publishing(dev):
    account = dev.one(ACCOUNT).inputs["accountName"]
    assert dev.outputs["model_repository_url"] == f"https://{account}.blob.core.windows.net/models"
    assert dev.outputs["model_storage_account_url"] == f"https://{account}.blob.core.windows.net/"
    assert dev.outputs["model_identity_client_id"] == mocks.MODEL_IDENTITY_CLIENT_ID


def test_no_model_uri_means_the_baked_model_and_no_cache_volume(dev):
    assert not {"MODEL_URI", "MODEL_SHA256", "MODEL_CACHE_DIR"} & set(env(dev))
    assert [v["name"] for v in template(dev)["spec"]["volumes"]] == ["tmp"]


def test_model_uri_env_and_cache_volume(rolled):
    values = env(rolled)
    assert values["MODEL_URI"].endswith("/models/resnet/2/model.pt")
    assert values["MODEL_LABELS_URI"].endswith("/models/resnet/2/labels.txt")
    assert values["MODEL_SHA256"] == SHA_2 and values["MODEL_CACHE_DIR"] == "/var/cache/models"
    assert "AZURE_STORAGE_CONNECTION_STRING" not in values  # the pod authenticates with workload identity
    spec = template(rolled)["spec"]
    cache = next(v for v in spec["volumes"] if v["name"] == "model-cache")
    assert "emptyDir" in cache and cache["emptyDir"]["sizeLimit"]
    (container,) = spec["containers"]
    assert {"name": "model-cache", "mountPath": "/var/cache/models"} in container["volumeMounts"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_a_new_digest_changes_the_pod_template(rolled):
    # A Deployment rolls out when its pod template changes (Kubernetes Deployments docs, "Updating a
    # Deployment"): a new modelSha256 (or modelUri) must change it, the same values must not.
    again = run_stack("dev", **{k.split(":")[1]: v for k, v in _model_keys(rolled).items()})
    assert template(again) == template(rolled)
    rolled_back = run_stack(
        "dev", **{k.split(":")[1]: v for k, v in _model_keys(rolled).items()} | {"modelSha256": SHA_1}
    )
    assert template(rolled_back) != template(rolled)


def _model_keys(run) -> dict[str, str]:
    cfg = run.config.model
    return {
        "aks-image-classifier:modelUri": cfg.uri,
        "aks-image-classifier:modelLabelsUri": cfg.labels_uri,
        "aks-image-classifier:modelSha256": cfg.sha256,
    }


def test_model_repository_off_declares_no_storage(dev):
    off = run_stack("dev", modelRepository="false")
    assert not [r for r in off.resources if r.type in AZURE_ONLY and "ModelRepository" in r.parent]
    assert "annotations" not in off.one(SERVICE_ACCOUNT).inputs["metadata"]
    assert "azure.workload.identity/use" not in template(off)["metadata"]["labels"]
    assert "model_repository_url" not in off.outputs


def test_local_target_has_no_azure_storage_but_can_read_an_emulator(local):
    assert not [r for r in local.resources if r.type.startswith("azure-native:")]
    assert "azure.workload.identity/use" not in template(local)["metadata"]["labels"]
    url = "http://azurite.storage:10000/devstoreaccount1/models/resnet/1/model.pt"
    emulated = run_stack("local", modelUri=url)
    values = env(emulated)
    assert values["MODEL_URI"] == url
    assert values["AZURE_STORAGE_CONNECTION_STRING"] == {
        "secretKeyRef": {"name": "classifier-model-storage", "key": "connection-string", "optional": True}
    }


def test_model_file_is_a_build_argument(monkeypatch, tmp_path):
    (tmp_path / "mine.pt").write_bytes(b"model")
    (tmp_path / "mine.txt").write_text("a\n")
    monkeypatch.setattr(model_config, "MODEL_STORE", tmp_path)
    run = run_stack("dev", modelFile="mine.pt", modelLabelsFile="mine.txt")
    build_args = run.one("docker-build:index:Image").inputs["buildArgs"]
    assert build_args["MODEL_FILE"] == "mine.pt" and build_args["MODEL_LABELS_FILE"] == "mine.txt"
    assert "MODEL_URI" not in env(run)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"modelSha256": "abc"}, "aks-image-classifier:modelSha256 must be 64 hexadecimal digits"),
        ({"modelSha256": SHA_1}, "aks-image-classifier:modelSha256 needs aks-image-classifier:modelUri"),
        ({"modelUri": "https://example.com/model.pt"}, "aks-image-classifier:modelUri is not a blob URL"),
        (
            {"modelUri": "https://acct.blob.core.windows.net/Models/m.pt"},
            "aks-image-classifier:modelUri is not",
        ),
        (
            {"modelFile": "missing.pt"},
            "aks-image-classifier:modelFile must name a file in service/model-store/",
        ),
        ({"modelFile": "../README.md"}, "aks-image-classifier:modelFile must name a file"),
        ({"modelRepository": "yes"}, "aks-image-classifier:modelRepository must be true or false"),
        ({"deployerPrincipalType": "Robot"}, "aks-image-classifier:deployerPrincipalType must be one of"),
        ({"modelStorageSku": "Premium_LRS"}, "aks-image-classifier:modelStorageSku must be one of"),
        ({"calibrationUri": "https://acct.blob.core.windows.net/models/calibration/"},
         "aks-image-classifier:calibrationUri needs aks-image-classifier:modelUri"),
        ({"calibrationUri": "https://acct.blob.core.windows.net/models/calibration",
          "modelUri": "https://acct.blob.core.windows.net/models/m/1/m.pt"},
         "aks-image-classifier:calibrationUri is not a blob prefix ending in '/'"),
        ({"calibrationUri": "s3://bucket/calibration/", "modelUri": "https://acct.blob.core.windows.net/models/m/1/m.pt"},
         "aks-image-classifier:calibrationUri is not a blob prefix"),
    ],
)
def test_config_mistakes_name_the_key(overrides, message):
    with pytest.raises(ConfigError) as error:
        run_stack("dev", **overrides)
    assert str(error.value).startswith(message), error.value


def test_calibration_prefix_reaches_the_pod_that_quantizes_the_fetched_model(rolled):
    """calibrationUri -> CALIBRATION_URI next to MODEL_URI (read with the same workload identity, which has
    Storage Blob Data Reader on the whole `models` container); unset, the pod has no CALIBRATION_URI."""
    prefix = "https://aicmdevx7k2p9.blob.core.windows.net/models/calibration/"
    keys = {k.split(":")[1]: v for k, v in _model_keys(rolled).items()}
    values = env(run_stack("dev", **keys, calibrationUri=prefix))
    assert values["CALIBRATION_URI"] == prefix and values["MODEL_URI"] == keys["modelUri"]
    assert "CALIBRATION_URI" not in env(rolled)


def test_model_file_and_model_uri_together_are_refused(monkeypatch, tmp_path):
    (tmp_path / "mine.pt").write_bytes(b"model")
    monkeypatch.setattr(model_config, "MODEL_STORE", tmp_path)
    with pytest.raises(
        ConfigError, match=r"^aks-image-classifier:modelFile and aks-image-classifier:modelUri"
    ):
        run_stack("dev", modelFile="mine.pt", modelUri="https://acct.blob.core.windows.net/models/m/1/m.pt")


@pytest.mark.parametrize("stack", ["dev", "local"])
def test_checkov_and_strict_schema_with_a_model_uri(stack, tmp_path):
    url = {
        "dev": "https://aicmdevx7k2p9.blob.core.windows.net/models/resnet/2/model.pt",
        "local": "http://azurite.storage:10000/devstoreaccount1/models/resnet/2/model.pt",
    }[stack]
    run = run_stack(stack, modelUri=url, modelSha256=SHA_2)
    for index, obj in enumerate(mocks.kubernetes_objects(run)):
        (tmp_path / f"{index:02d}-{obj['kind'].lower()}.yaml").write_text(
            yaml.safe_dump(obj, sort_keys=False)
        )
    files = sorted(str(p) for p in tmp_path.glob("*.yaml"))
    strict = subprocess.run(
        [
            str(Path(sys.executable).parent / "kubernetes-validate"),
            "--strict",
            "--kubernetes-version",
            "1.34.0",
            *files,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert strict.returncode == 0, strict.stdout + strict.stderr
    checkov = os.environ.get("CHECKOV", str(ROOT / ".venv-checkov" / "bin" / "checkov"))
    result = subprocess.run(
        [
            checkov,
            "--framework",
            "kubernetes",
            "-d",
            str(tmp_path),
            "--skip-download",
            "--compact",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(result.stdout)
    report = report[0] if isinstance(report, list) else report
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert report["summary"]["failed"] == 0 and not failed, failed
