"""Session-wide fixtures: the rendered Kubernetes manifests of every stack, and one checkov run over all
of them plus the service's Dockerfile (checkov takes seconds to start; one run instead of one per folder)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STACKS = ("dev", "prod", "local")
CHECKOV = Path(os.environ.get("CHECKOV", ROOT / ".venv-checkov" / "bin" / "checkov"))
# Every `python -m service` a test starts serves its metrics on a free port (METRICS_PORT=0), unless the
# test names one: the default 9090 would collide between the processes of parallel runs.
os.environ.setdefault("METRICS_PORT", "0")


@dataclass(frozen=True)
class CheckovResults:
    """One checkov report, split by the top-level folder each result's file lies in."""

    report: list[dict]

    def results(self, folder: str, kind: str) -> list[dict]:
        """``kind`` (passed_checks, failed_checks, skipped_checks) of the files under ``folder``/."""
        return [check for framework in self.report for check in framework["results"].get(kind, [])
                if check["file_path"].lstrip("/").startswith(f"{folder}/")]

    @property
    def parsing_errors(self) -> int:
        return sum(framework["summary"]["parsing_errors"] for framework in self.report)


@pytest.fixture(scope="session")
def rendered_manifests(tmp_path_factory) -> dict[str, Path]:
    """``stack`` -> folder of the objects ``python -m tools.render_manifests --stack <stack>`` writes."""
    from tools import render_manifests

    root = tmp_path_factory.mktemp("manifests")
    folders = {}
    for stack in STACKS:
        folders[stack] = root / stack
        render_manifests.render(stack, folders[stack], ROOT)
    return folders


@pytest.fixture(scope="session")
def checkov(rendered_manifests, tmp_path_factory) -> CheckovResults:
    """checkov (kubernetes + dockerfile frameworks) once over every stack's manifests (folder = stack
    name) and ``service/Dockerfile`` (folder ``docker``)."""
    if not CHECKOV.exists():
        pytest.fail(f"checkov not installed at {CHECKOV} (make install)")
    root = tmp_path_factory.mktemp("checkov")
    for stack, folder in rendered_manifests.items():
        shutil.copytree(folder, root / stack)
    (root / "docker").mkdir()
    shutil.copy(ROOT / "service" / "Dockerfile", root / "docker" / "Dockerfile")
    result = subprocess.run([str(CHECKOV), "-d", str(root), "--framework", "kubernetes", "dockerfile",
                             "--skip-download", "--compact", "-o", "json"],
                            capture_output=True, text=True, timeout=600)
    report = json.loads(result.stdout)
    return CheckovResults(report if isinstance(report, list) else [report])
