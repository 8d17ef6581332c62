"""monitoring/rules.yaml: promtool checks it and runs its unit tests (rules_test.yaml: every alert firing
and not firing on synthetic series); its shape is what the stack's prometheusRuleGroups read."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "monitoring" / "rules.yaml"
RULE_TESTS = Path(__file__).with_name("rules_test.yaml")
#: Debian's `prometheus` package (.ci/system-packages installs it).
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"

pytestmark = pytest.mark.skipif(not Path(PROMTOOL).exists(),
                                reason="promtool missing: apt-get install prometheus")


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60, check=False)


def rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def test_promtool_check_rules() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_promtool_test_rules() -> None:
    result = promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    """Each alert of rules.yaml has a promtool case where it fires and one where it does not."""
    cases = [case for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
             for case in test.get("alert_rule_test", [])]
    for name in (rule["alert"] for rule in rules() if "alert" in rule):
        kinds = {bool(case.get("exp_alerts")) for case in cases if case["alertname"] == name}
        assert kinds == {True, False}, f"{name}: needs a firing and a not-firing case"


def test_broken_rules_fail_promtool(tmp_path) -> None:
    """The check is not vacuous: promtool refuses a rules file with a PromQL syntax error."""
    broken = tmp_path / "rules.yaml"
    broken.write_text(RULES.read_text().replace("> 0.05", "> > 0.05", 1))
    assert promtool("check", "rules", str(broken)).returncode != 0


def test_latency_objective_is_one_literal() -> None:
    """The stack rewrites the p99 objective (seconds) in one place: the latency alert's expression is
    `<recorded p99> > <number>` and that number is the rule's only literal."""
    [alert] = [rule for rule in rules() if rule.get("alert") == "ImageClassifierLatencyHigh"]
    match = re.fullmatch(r"(\S+) > ([0-9.]+)", alert["expr"])
    assert match and match.group(1) == "namespace_job:inference_request_duration_seconds:p99_5m"
    assert float(match.group(2)) == 0.5
    assert RULES.read_text().count(f"p99_5m > {match.group(2)}") == 1


def test_rules_have_what_azure_rule_groups_need() -> None:
    """Microsoft.AlertsManagement/prometheusRuleGroups: each rule is a `record` or an `alert` with an
    `expr`; alerts carry a `severity` label (the stack maps it to the rule's severity 0-4) and a `summary`."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    assert {group["interval"] for group in groups} == {"1m"}
    for rule in rules():
        assert ("record" in rule) != ("alert" in rule) and rule["expr"].strip()
        if "alert" in rule:
            assert rule["labels"]["severity"] in {"critical", "warning"}
            assert rule["annotations"]["summary"]
