"""The workflow files, parsed once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
NAMES = ("ci", "container", "deploy")


def load(path: Path) -> dict[str, Any]:
    """A workflow as a dict; YAML 1.1 reads the key `on` as True, so it is put back under "on"."""
    document = yaml.safe_load(path.read_text())
    if True in document:
        document["on"] = document.pop(True)
    return document


@pytest.fixture(scope="session")
def workflows() -> dict[str, dict[str, Any]]:
    found = {p.stem: load(p) for p in sorted(WORKFLOWS.glob("*.yml"))}
    assert set(found) == set(NAMES), sorted(found)
    return found


def steps_using(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    """The steps of `job` that use `action` (`owner/repo`, any ref)."""
    return [s for s in job.get("steps", []) if s.get("uses", "").split("@")[0] == action]


def run_text(job: dict[str, Any]) -> str:
    """Every `run:` script of `job`, joined."""
    return "\n".join(s.get("run", "") for s in job.get("steps", []))
