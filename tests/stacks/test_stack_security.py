"""The API key as a secret end to end, source ranges, and their rendered manifests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stacks.config import ConfigError
from tests.harness import stack_mocks as mocks
from tests.stacks.conftest import ROOT, run_stack

API_KEY = "k3y-" + "x" * 28
SECRET_KEY = "aks-image-classifier:apiKey"


@pytest.fixture(scope="module")
def keyed():
    config = mocks.stack_file_config("dev", ROOT) | {
        SECRET_KEY: API_KEY,
        "aks-image-classifier:allowedSourceRanges": ["203.0.113.0/24"],
    }
    return mocks.run_program(config, "dev", secret_keys=(SECRET_KEY,))


def env(run):
    (c,) = run.one("kubernetes:apps/v1:Deployment").inputs["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e for e in c["env"]}


def test_api_key_is_a_secret_from_config_to_the_kubernetes_secret(keyed):
    assert keyed.api_key_is_secret is True
    secret = keyed.one("kubernetes:core/v1:Secret")
    assert secret.inputs["type"] == "Opaque"
    assert secret.inputs["stringData"] == {"api-key": API_KEY}
    assert mocks.is_secret(secret.raw_inputs["stringData"]) or mocks.is_secret(
        secret.raw_inputs["stringData"]["api-key"]
    )
    ref = env(keyed)["API_KEY"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": secret.inputs["metadata"]["name"], "key": "api-key"}
    assert "value" not in env(keyed)["API_KEY"]
    assert API_KEY not in json.dumps(keyed.outputs)
    assert "kubeconfig" in keyed.secret_outputs


def test_no_api_key_means_no_secret_and_no_env(dev):
    assert dev.of_type("kubernetes:core/v1:Secret") == []
    assert "API_KEY" not in env(dev)


@pytest.mark.parametrize("key", ["short", " padded-key-with-spaces-1234 "])
def test_weak_api_key_is_rejected_naming_the_key(key):
    config = {**mocks.stack_file_config("dev", ROOT), SECRET_KEY: key}
    with pytest.raises(ConfigError, match=r"^aks-image-classifier:apiKey must be at least 16"):
        mocks.run_program(config, "dev", secret_keys=(SECRET_KEY,))


def test_plaintext_api_key_is_refused_naming_the_key():
    """`apiKey` cannot be declared `secret: true` (the CLI would then require it in every stack), so the
    program refuses a value the stack file holds unencrypted."""
    with pytest.raises(ConfigError, match=r"^aks-image-classifier:apiKey is stored in plain text.*--secret"):
        run_stack("dev", apiKey="a-long-enough-api-key-1234")


def test_allowed_source_ranges_reach_the_load_balancer(keyed, dev):
    assert keyed.one("kubernetes:core/v1:Service").inputs["spec"]["loadBalancerSourceRanges"] == [
        "203.0.113.0/24"
    ]
    assert "loadBalancerSourceRanges" not in dev.one("kubernetes:core/v1:Service").inputs["spec"]


@pytest.mark.parametrize("cidr", ["203.0.113.0/33", "10.0.0.1/8", "example.com"])
def test_invalid_source_range_names_the_key(cidr):
    with pytest.raises(ConfigError, match=r"^aks-image-classifier:allowedSourceRanges"):
        run_stack("dev", allowedSourceRanges=[cidr])


def test_rendered_secret_manifests_hide_the_key_and_pass_validation_and_checkov(keyed, tmp_path):
    for i, obj in enumerate(mocks.kubernetes_objects(keyed)):
        (tmp_path / f"{i:02d}-{obj['kind'].lower()}.yaml").write_text(yaml.safe_dump(obj, sort_keys=False))
    text = "".join(p.read_text() for p in tmp_path.glob("*.yaml"))
    assert API_KEY not in text
    secret = yaml.safe_load(next(tmp_path.glob("*-secret.yaml")).read_text())
    assert secret["stringData"] == {"api-key": mocks.REDACTED}
    validate = subprocess.run(
        [
            str(Path(sys.executable).parent / "kubernetes-validate"),
            "--strict",
            "-k",
            "1.33.0",
            *map(str, sorted(tmp_path.glob("*.yaml"))),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert validate.returncode == 0, validate.stdout + validate.stderr
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
    assert report["summary"]["failed"] == 0, [c["check_id"] for c in report["results"]["failed_checks"]]
    skipped = {
        c["check_id"]: c["check_result"]["suppress_comment"] for c in report["results"]["skipped_checks"]
    }
    assert set(skipped) == {"CKV_K8S_35"} and "secretKeyRef" in skipped["CKV_K8S_35"]
