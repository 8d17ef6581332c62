"""docs/monitoring.md states the rules file's names and thresholds and the metrics port: each is derived
here from the code (rules.yaml, Settings) and must appear in the doc as written."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from service.settings import Settings
from tests.monitoring.conftest import RULES

DOC = (Path(__file__).resolve().parents[2] / "docs" / "monitoring.md").read_text()


def _rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def test_every_recording_rule_is_in_the_doc():
    for rule in (r for r in _rules() if "record" in r):
        assert f"| `{rule['record']}` |" in DOC, rule["record"]


def test_every_alert_row_matches_the_rule():
    for rule in (r for r in _rules() if "alert" in r):
        [row] = [line for line in DOC.splitlines() if line.startswith(f"| `{rule['alert']}` |")]
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[2] == rule.get("for", "0m") and cells[3] == rule["labels"]["severity"], row
        if threshold := re.search(r"> ([0-9.]+)$", rule["expr"].strip()):
            assert f"> {threshold.group(1)}" in cells[1], row


def test_metrics_port_default(monkeypatch):
    monkeypatch.delenv("METRICS_PORT", raising=False)
    port = Settings().metrics_port
    assert f"`METRICS_PORT` (default `{port}`, container port name `metrics`)" in DOC
