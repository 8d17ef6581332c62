"""The docs stay true: every config key `Pulumi.yaml` declares and every service setting (`Settings` field,
read from the upper-case environment variable of the same name) is documented in README.md or docs/*.md,
written as code (`key`, `ENV_NAME`)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from service.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def _documented() -> set[str]:
    """The text of every `code span` in README.md and docs/*.md."""
    text = "\n".join(p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])
    return set(re.findall(r"`([^`\n]+)`", text))


DOCUMENTED = _documented()
PULUMI_KEYS = sorted(yaml.safe_load((ROOT / "Pulumi.yaml").read_text()).get("config") or {})
SETTINGS = sorted(name.upper() for name in Settings.model_fields)


def test_the_lists_are_not_empty():
    # a Pulumi.yaml without a config block or a renamed Settings would make the tests below vacuous
    assert len(PULUMI_KEYS) > 20 and "apiKey" in PULUMI_KEYS
    assert len(SETTINGS) > 20 and "MODEL_PATH" in SETTINGS


@pytest.mark.parametrize("key", PULUMI_KEYS)
def test_every_pulumi_config_key_is_documented(key):
    short = key.split(":")[-1]
    names = {key, short, f"aks-image-classifier:{short}"}
    assert names & DOCUMENTED, f"`{short}` is not in README.md or docs/"


@pytest.mark.parametrize("name", SETTINGS)
def test_every_service_setting_is_documented(name):
    assert name in DOCUMENTED, f"`{name}` is not in README.md or docs/"
