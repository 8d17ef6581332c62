"""Rendered manifests (`python -m tools.render_manifests`): strict schema validation and checkov."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.conftest import STACKS
from tools import render_manifests
from tools.stack_mocks import stack_file_config

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def schema_version(stack: str) -> str:
    """The stack's Kubernetes version if kubernetes-validate has its schemas; else the nearest it has.

    A stack newer than the newest schema set is validated against the newest (and says so).
    """
    minor = int(str(stack_file_config(stack, ROOT)["aks-image-classifier:kubernetesVersion"]).split(".")[1])
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
    _, out = rendered
    kinds = {}
    for path in sorted(out.glob("*.yaml")):
        (obj,) = list(yaml.safe_load_all(path.read_text()))
        assert list(obj)[:3] == ["apiVersion", "kind", "metadata"], path.name
        kinds[obj["kind"]] = obj["apiVersion"]
    assert kinds == {
        "Namespace": "v1",
        "ServiceAccount": "v1",
        "Service": "v1",
        "Deployment": "apps/v1",
        "HorizontalPodAutoscaler": "autoscaling/v2",
        "PodDisruptionBudget": "policy/v1",
        "NetworkPolicy": "networking.k8s.io/v1",
    }


def test_kubernetes_validate_strict(rendered):
    stack, out = rendered
    files = sorted(str(p) for p in out.glob("*.yaml"))
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
    assert len(list(tmp_path.glob("*.yaml"))) == 7
    assert render_manifests.main(["--stack", "nope", "--out", str(tmp_path)]) == 2
    assert "Pulumi.nope.yaml" in capsys.readouterr().err
