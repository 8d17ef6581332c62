"""Alert and recording rules on the workspace (stacks/alert_rules.py), built from monitoring/rules.yaml.

Azure's shape is its own recommended rule groups (Azure/prometheus-collector `AddonBicepTemplate/
recommendedMetricAlerts.bicep`): `scopes` [workspace, cluster], `clusterName`, ISO 8601 `interval` and `for`,
a numeric `severity`, `resolveConfiguration`, `actions: [{actionGroupId}]`.
"""

from __future__ import annotations

import pytest
import yaml

from stacks import alert_rules
from stacks.config import ConfigError
from tests.stacks.conftest import run_stack

GROUP = "azure-native:alertsmanagement:PrometheusRuleGroup"
ACTION_GROUP = "azure-native:monitor:ActionGroup"
AMW = "azure-native:monitor:AzureMonitorWorkspace"
AKS = "azure-native:containerservice:ManagedCluster"


def file_groups() -> list[dict]:
    return yaml.safe_load(alert_rules.RULES_FILE.read_text())["groups"]


def declared(run) -> dict[str, dict]:
    return {g.inputs["ruleGroupName"]: g.inputs for g in run.of_type(GROUP)}


def latency_expression(run) -> str:
    (rule,) = [
        r for g in declared(run).values() for r in g["rules"] if r.get("alert") == alert_rules.LATENCY_ALERT
    ]
    return rule["expression"]


def test_every_group_and_rule_of_the_file_is_declared_in_order(dev):
    groups = declared(dev)  # resources register in any order; rules within a group keep the file's
    assert sorted(groups) == sorted(g["name"] for g in file_groups())
    for group in file_groups():
        names = [r.get("record") or r.get("alert") for r in groups[group["name"]]["rules"]]
        assert names == [r.get("record") or r.get("alert") for r in group["rules"]]
        assert groups[group["name"]]["interval"] == alert_rules.iso8601(group["interval"])


def test_groups_evaluate_on_the_workspace_for_this_cluster(dev):
    for group in declared(dev).values():
        assert group["scopes"] == [dev.one(AMW).id, dev.one(AKS).id]
        assert group["clusterName"] == dev.one(AKS).state["name"] and group["enabled"] is True


def test_the_latency_threshold_is_the_configured_objective_and_nothing_else_changes(dev, prod):
    """Pulumi.yaml's default 500 ms on dev, prod's 300, an override's 1234: the one number after `>`."""
    assert latency_expression(dev).endswith("> 0.5")
    assert latency_expression(prod).endswith("> 0.3")
    assert latency_expression(run_stack("dev", latencyObjectiveMs=1234)).endswith("> 1.234")
    original = {
        r.get("record") or r.get("alert"): r["expr"].strip() for g in file_groups() for r in g["rules"]
    }
    for group in declared(prod).values():
        for rule in group["rules"]:
            name = rule.get("record") or rule.get("alert")
            if name == alert_rules.LATENCY_ALERT:
                head = original[name].rsplit(">", 1)[0]
                assert rule["expression"] == f"{head}> 0.3" and original[name] != rule["expression"]
            else:
                assert rule["expression"] == original[name], name


def test_alerts_mail_the_configured_address_through_one_action_group(prod):
    group = prod.one(ACTION_GROUP)
    (receiver,) = group.inputs["emailReceivers"]
    assert receiver["emailAddress"] == prod.config.monitoring.alert_email == "ops@contoso.com"
    assert group.inputs["location"] == "global" and len(group.inputs["groupShortName"]) <= 12
    alerts = [r for g in declared(prod).values() for r in g["rules"] if "alert" in r]
    assert len(alerts) == sum(1 for g in file_groups() for r in g["rules"] if "alert" in r) > 0
    for rule in alerts:
        assert rule["actions"] == [{"actionGroupId": group.id}], rule["alert"]
        assert rule["severity"] in (0, 1, 2, 3) and rule["resolveConfiguration"]["autoResolved"] is True
    records = [r for g in declared(prod).values() for r in g["rules"] if "record" in r]
    assert records and not any("actions" in r or "severity" in r for r in records)


def test_without_an_address_the_rules_have_no_action_group():
    run = run_stack("dev", alertEmail="")
    assert not run.of_type(ACTION_GROUP)
    assert run.of_type(GROUP) and not any("actions" in r for g in declared(run).values() for r in g["rules"])


def test_another_namespace_is_substituted_into_the_selectors():
    run = run_stack("dev", namespace="vision")
    expressions = [r["expression"] for g in declared(run).values() for r in g["rules"]]
    assert any('namespace="vision"' in e for e in expressions)
    assert not any('namespace="classifier"' in e for e in expressions)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("alertEmail", "ops@example.com", "alertEmail must be a deliverable e-mail address"),
        ("alertEmail", "not-an-address", "alertEmail must be a deliverable e-mail address"),
        ("latencyObjectiveMs", "0", "latencyObjectiveMs must be >= 1"),
        ("latencyObjectiveMs", "fast", "latencyObjectiveMs must be an integer"),
    ],
)
def test_a_bad_setting_is_a_config_error_naming_the_key(key, value, message):
    with pytest.raises(ConfigError, match=f"^aks-image-classifier:{message}"):
        run_stack("dev", **{key: value})


def test_durations_become_iso8601():
    assert [alert_rules.iso8601(d) for d in ("1m", "90s", "1h30m", "2d", "1d12h")] == [
        "PT1M",
        "PT90S",
        "PT1H30M",
        "P2D",
        "P1DT12H",
    ]
    for bad in ("", "5ms", "1w", "0m", "five"):
        with pytest.raises(alert_rules.RulesError):
            alert_rules.iso8601(bad)


def test_objective_replaces_only_a_trailing_comparison():
    assert alert_rules.with_objective("p99 > 0.5", 250) == "p99 > 0.25"
    assert alert_rules.with_objective("max(x) by (a) >1e-1", 2000) == "max(x) by (a) >2"
    with pytest.raises(alert_rules.RulesError, match="does not end in"):
        alert_rules.with_objective("p99 > 0.5 and on() vector(1)", 250)


def test_a_rules_file_without_the_latency_alert_or_with_a_bad_rule_is_refused():
    group = {"name": "g", "rules": [{"record": "a:b:c", "expr": "sum(x)"}]}
    with pytest.raises(alert_rules.RulesError, match=alert_rules.LATENCY_ALERT):
        alert_rules.rule_groups([group], 500, "classifier", None)
    with pytest.raises(alert_rules.RulesError, match="neither 'record' nor 'alert'"):
        alert_rules.azure_rules({"name": "g", "rules": [{"expr": "x"}]}, 500, "classifier", None)
    page = {"name": "g", "rules": [{"alert": "A", "expr": "x > 1", "labels": {"severity": "page"}}]}
    with pytest.raises(alert_rules.RulesError, match="severity 'page'"):
        alert_rules.azure_rules(page, 500, "classifier", None)
