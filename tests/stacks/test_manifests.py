"""Rendered manifests (`python -m tools.render_manifests`): strict schema validation and checkov."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from stacks.config import load_config
from tests.conftest import STACKS
from tests.harness import cert_manager_schema, crd_schema
from tests.harness.stack_mocks import stack_file_config
from tools import render_manifests

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
BUILT_IN_KINDS = {
    "Namespace": "v1",
    "ServiceAccount": "v1",
    "Service": "v1",
    "Deployment": "apps/v1",
    "PodDisruptionBudget": "policy/v1",
    "NetworkPolicy": "networking.k8s.io/v1",
}
#: The local target scales with the CPU HPA; azure with KEDA (which makes the HPA itself) and is scraped by
#: managed Prometheus: custom resources checked against their CRDs' schemas (tests/harness/crd_schema.py).
LOCAL_KINDS = {"HorizontalPodAutoscaler": "autoscaling/v2"}
CRD_KINDS = {
    "ScaledObject": "keda.sh/v1alpha1",
    "TriggerAuthentication": "keda.sh/v1alpha1",
    "PodMonitor": "azmonitoring.coreos.com/v1",
}
#: With `tls` on (prod): the Ingress, and cert-manager's custom resources (checked by cert_manager_schema).
TLS_KINDS = {"Ingress": "networking.k8s.io/v1"}
CERT_MANAGER_KINDS = {"ClusterIssuer": "cert-manager.io/v1", "Certificate": "cert-manager.io/v1"}
EXPECTED_KINDS = {
    "dev": {**BUILT_IN_KINDS, **CRD_KINDS},
    "local": {**BUILT_IN_KINDS, **LOCAL_KINDS},
    "prod": {**BUILT_IN_KINDS, **CRD_KINDS, **TLS_KINDS, **CERT_MANAGER_KINDS},
}


def objects(out: Path) -> list[tuple[Path, dict]]:
    return [(path, yaml.safe_load(path.read_text())) for path in sorted(out.glob("*.yaml"))]


def schema_version(stack: str) -> str:
    """The stack's Kubernetes version if kubernetes-validate has its schemas; else the nearest it has.

    A stack newer than the newest schema set is validated against the newest (and says so).
    """
    values = stack_file_config(stack, ROOT)
    minor = load_config(values.get, stack=stack, is_secret=lambda key: True).manifest_minor
    schemas = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    available = sorted(
        {int(d.name.split(".")[1]) for d in schemas.iterdir() if d.name.endswith("-local-strict")}
    )
    chosen = min(max(minor, available[0]), available[-1])
    if chosen != minor:
        print(f"kubernetes-validate has no 1.{minor} schemas; validating {stack} against 1.{chosen}")
    return f"1.{chosen}.0"


@pytest.fixture(params=STACKS)
def rendered(request, rendered_manifests) -> tuple[str, Path]:
    """(stack, its rendered folder), rendered once per session (tests/conftest.py)."""
    return request.param, rendered_manifests[request.param]


def test_one_file_per_object_with_real_kinds(rendered):
    stack, out = rendered
    kinds = {}
    for path in sorted(out.glob("*.yaml")):
        (obj,) = list(yaml.safe_load_all(path.read_text()))
        assert list(obj)[:3] == ["apiVersion", "kind", "metadata"], path.name
        kinds[obj["kind"]] = obj["apiVersion"]
    assert kinds == EXPECTED_KINDS[stack]


def test_kubernetes_validate_strict(rendered):
    stack, out = rendered
    custom = {**CERT_MANAGER_KINDS, **CRD_KINDS}
    files = [str(p) for p, obj in objects(out) if obj["kind"] not in custom]
    result = subprocess.run(
        [
            str(VENV_BIN / "kubernetes-validate"),
            "--strict",
            "--kubernetes-version",
            schema_version(stack),
            *files,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") == len(files)


def test_cert_manager_resources_fit_the_documented_v1_api(rendered):
    """kubernetes-validate has no schema for custom resources: check them against cert-manager's v1 API."""
    stack, out = rendered
    custom = [(p, obj) for p, obj in objects(out) if obj["kind"] in CERT_MANAGER_KINDS]
    assert len(custom) == (2 if stack == "prod" else 0)
    for path, obj in custom:
        assert cert_manager_schema.validate(obj) == [], path.name


def test_keda_and_pod_monitor_objects_validate_against_their_crds(rendered):
    """kedacore/keda v2.20.2 `config/crd/bases` and the managed Prometheus add-on's PodMonitor CRD."""
    stack, out = rendered
    custom = [(p, obj) for p, obj in objects(out) if obj["kind"] in CRD_KINDS]
    assert sorted(obj["kind"] for _, obj in custom) == ([] if stack == "local" else sorted(CRD_KINDS))
    for path, obj in custom:
        assert obj["apiVersion"] == CRD_KINDS[obj["kind"]]
        assert crd_schema.validate(obj) == [], path.name


def test_crd_validation_refuses_what_the_api_server_would(rendered_manifests):
    """The check can fail: an unknown field, a number where KEDA's trigger metadata takes strings, a
    TriggerAuthentication provider KEDA does not know, a PodMonitor without its required selector."""
    found = {obj["kind"]: obj for _, obj in objects(rendered_manifests["dev"]) if obj["kind"] in CRD_KINDS}
    scaled = found["ScaledObject"]
    typo = {**scaled, "spec": {**scaled["spec"], "minReplicas": 1}}
    assert crd_schema.validate(typo) == [
        "spec: Additional properties are not allowed ('minReplicas' was unexpected)"
    ]
    queue, cpu = scaled["spec"]["triggers"]
    number = {**scaled, "spec": {**scaled["spec"], "triggers": [{**queue, "metadata": {"threshold": 16}},
    cpu]}}
    assert crd_schema.validate(number) == ["spec.triggers.0.metadata.threshold: 16 is not of type 'string'"]
    auth = found["TriggerAuthentication"]
    provider = {**auth, "spec": {"podIdentity": {"provider": "azure-pod-identity"}}}
    assert [e.split(":")[0] for e in crd_schema.validate(provider)] == ["spec.podIdentity.provider"]
    monitor = found["PodMonitor"]
    bare = {**monitor, "spec": {"podMetricsEndpoints": monitor["spec"]["podMetricsEndpoints"]}}
    assert crd_schema.validate(bare) == ["spec: 'selector' is a required property"]


def test_cert_manager_schema_check_catches_wrong_fields():
    issuer = {
        "apiVersion": "cert-manager.io/v1",
        "kind": "ClusterIssuer",
        "metadata": {"name": "le"},
        "spec": {"acme": {"server": "https://acme", "privateKeySecretRef": {"name": "k"}, "solvers": []}},
    }
    assert cert_manager_schema.validate(issuer) == []
    typo = {**issuer, "spec": {"acme": {**issuer["spec"]["acme"], "emial": "a@b.org"}}}
    assert cert_manager_schema.validate(typo) == ["spec.acme.emial: unknown field"]
    solver = {"http01": {"ingress": {"ingressClass": "traefik"}}}
    bad_solver = {**issuer, "spec": {"acme": {**issuer["spec"]["acme"], "solvers": [solver]}}}
    assert cert_manager_schema.validate(bad_solver) == [
        "spec.acme.solvers[0].http01.ingress.ingressClass: unknown field"
    ]
    no_key = {**issuer, "spec": {"acme": {"server": "https://acme"}}}
    assert cert_manager_schema.validate(no_key) == ["spec.acme.privateKeySecretRef: required"]
    certificate = {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {"name": "c"},
        "spec": {"secretName": "s", "issuerRef": {"name": "le"}, "privateKey": {"algorithm": "DSA"}},
    }
    assert cert_manager_schema.validate(certificate) == [
        "spec.privateKey.algorithm: 'DSA' is not one of ['ECDSA', 'Ed25519', 'RSA']"
    ]


def test_checkov_finds_nothing_unannotated(rendered, checkov):
    stack, _ = rendered  # checkov ran once over every stack's folder (tests/conftest.py)
    failed = [(c["check_id"], c["resource"]) for c in checkov.results(stack, "failed_checks")]
    assert not failed, failed
    passed = checkov.results(stack, "passed_checks")
    assert len(passed) > 50 and checkov.parsing_errors == 0
    for skipped in checkov.results(stack, "skipped_checks"):
        assert skipped["check_result"].get("suppress_comment", "").strip(), skipped["check_id"]
    print(f"checkov {stack}: {len(passed)} passed")


def test_cli_writes_the_default_folder_and_rejects_unknown_stacks(tmp_path, capsys):
    assert render_manifests.main(["--stack", "dev", "--out", str(tmp_path)]) == 0
    assert len(list(tmp_path.glob("*.yaml"))) == 9  # test_one_file_per_object_with_real_kinds: dev
    assert render_manifests.main(["--stack", "nope", "--out", str(tmp_path)]) == 2
    assert "Pulumi.nope.yaml" in capsys.readouterr().err
