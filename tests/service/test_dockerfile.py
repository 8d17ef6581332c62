"""service/Dockerfile: hadolint and checkov (dockerfile framework) report nothing; the key facts hold."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "service" / "Dockerfile"
HADOLINT = Path(sys.executable).parent / "hadolint"


def test_hadolint_reports_nothing():
    if not HADOLINT.exists():
        pytest.fail(f"hadolint not installed at {HADOLINT} (make install)")
    result = subprocess.run([str(HADOLINT), "--format", "json", str(DOCKERFILE)], capture_output=True,
                            text=True, timeout=120)
    findings = json.loads(result.stdout or "[]")
    assert findings == [], findings
    assert result.returncode == 0, result.stderr


def test_checkov_dockerfile_checks_pass(checkov):
    # checkov ran once over the manifests and the Dockerfile, in folder docker/ (tests/conftest.py)
    failed = [c["check_id"] for c in checkov.results("docker", "failed_checks")]
    assert failed == []
    assert len(checkov.results("docker", "passed_checks")) > 10  # the checks really ran


def test_dockerfile_essentials():
    text = DOCKERFILE.read_text()
    stages = re.findall(r"^FROM (\S+) AS (\S+)", text, flags=re.M)
    assert [image for image, _ in stages] == ["python:3.11-slim-bookworm"] * 2  # multi-stage
    assert "--index-url https://download.pytorch.org/whl/cpu" in text  # CPU-only wheels
    assert re.search(r"^USER 10001", text, flags=re.M)  # non-root
    assert "python -m service --prefetch" in text  # weights baked in by the service's own loader
    for arg in ("MODEL_ARCH", "MODEL_WEIGHTS", "MODEL_FILE"):
        assert f"ARG {arg}" in text
    assert re.search(r"^HEALTHCHECK .*\n.*service.healthcheck", text, flags=re.M)
    assert "EXPOSE 8080" in text
    # Every file the image copies exists in the build context (service/).
    for source in re.findall(r"^COPY (?!--from)(\S+)", text, flags=re.M):
        matches = list((DOCKERFILE.parent).glob(source.rstrip("/")))
        assert matches, source
    assert (DOCKERFILE.parent / ".dockerignore").exists()
