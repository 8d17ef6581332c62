"""Recording and alert rules on the managed Prometheus workspace, built from the plain rules file.

`monitoring/rules.yaml` is a Prometheus rules file (`groups: [{name, interval, rules: [...]}]`), the one
`promtool check rules` / `test rules` judge in the test suite. Each group becomes one
`Microsoft.AlertsManagement/prometheusRuleGroups` resource (API 2023-03-01), the shape of Azure's own
recommended rule groups (Azure/prometheus-collector `AddonBicepTemplate/recommendedMetricAlerts.bicep`:
`scopes` = [workspace, cluster], `clusterName`, `interval` and `for` as ISO 8601 durations, `severity`,
`resolveConfiguration`, `actions: [{actionGroupId}]`). Alerts go to an action group that e-mails
`alertEmail`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi_azure_native import alertsmanagement, monitor

RULES_FILE = Path(__file__).resolve().parent.parent / "monitoring" / "rules.yaml"
#: The alert whose threshold is the p99 latency objective (seconds, the one number after `>`).
LATENCY_ALERT = "ImageClassifierLatencyHigh"
#: The namespace the rules file's selectors name (Pulumi.yaml's default `namespace`).
RULES_NAMESPACE = "classifier"
#: Azure Monitor alert severities: 0 Critical, 1 Error, 2 Warning, 3 Informational, 4 Verbose (Azure Monitor
#: docs, "Azure Monitor alerts overview"); keyed by the Prometheus convention's `severity` label.
SEVERITIES = {"critical": 0, "error": 1, "warning": 2, "info": 3}
#: An alert resolves once its expression has been false this long (the recommended groups' `timeToResolve`).
TIME_TO_RESOLVE = "PT10M"
#: Action group short names are at most 12 characters (shown in SMS and e-mail subjects).
SHORT_NAME = "classifier"
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_THRESHOLD = re.compile(r">\s*([0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?)\s*$")


class RulesError(ValueError):
    """The rules file cannot become Azure rule groups (shape, duration or threshold); names the rule."""


def iso8601(duration: str) -> str:
    """A Prometheus duration (`1m`, `1h30m`, `2d`) as ISO 8601 (`PT1M`, `PT1H30M`, `P2D`).

    Raises RulesError for units Azure's durations cannot take here (`ms`, `w`, `y`) or a malformed value."""
    match = _DURATION.match(duration)
    if not duration or not match:
        raise RulesError(f"duration {duration!r} is not d/h/m/s (Prometheus duration syntax)")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    time = "".join(f"{v}{u}" for v, u in ((hours, "H"), (minutes, "M"), (seconds, "S")) if v)
    if not days and not time:
        raise RulesError(f"duration {duration!r} is zero")
    return "P" + (f"{days}D" if days else "") + (f"T{time}" if time else "")


def with_objective(expression: str, objective_ms: int) -> str:
    """`expression` with its trailing `> <number>` (seconds) replaced by `objective_ms` / 1000 s.

    Raises RulesError when the expression does not end in one such comparison."""
    match = _THRESHOLD.search(expression)
    if not match:
        raise RulesError(f"{LATENCY_ALERT}: expression does not end in '> <seconds>': {expression!r}")
    return f"{expression[: match.start(1)]}{objective_ms / 1000:g}"


def load_groups(path: Path = RULES_FILE) -> list[dict[str, Any]]:
    """The `groups` of a Prometheus rules file, as parsed YAML. Raises RulesError if there are none."""
    groups = (yaml.safe_load(path.read_text()) or {}).get("groups") or []
    if not groups:
        raise RulesError(f"{path}: no rule groups")
    return groups


def azure_rules(
    group: dict[str, Any], objective_ms: int, namespace: str, action_group_id: pulumi.Input[str] | None
) -> list[dict[str, Any]]:
    """One rules-file group's rules as `PrometheusRule` inputs (camelCase keys, as ARM takes them).

    `namespace` replaces the file's `namespace="classifier"` selectors; the `LATENCY_ALERT` threshold becomes
    `objective_ms`; alerts get `action_group_id` (none when `alertEmail` is empty)."""
    rules = []
    for rule in group.get("rules") or []:
        expression = (
            str(rule["expr"]).strip().replace(f'namespace="{RULES_NAMESPACE}"', f'namespace="{namespace}"')
        )
        out: dict[str, Any] = {"expression": expression}
        for key in ("labels", "annotations"):
            if rule.get(key):
                out[key] = {k: str(v) for k, v in rule[key].items()}
        if "record" in rule:
            out["record"] = rule["record"]
        elif "alert" in rule:
            name = rule["alert"]
            if name == LATENCY_ALERT:
                out["expression"] = with_objective(expression, objective_ms)
            severity = (rule.get("labels") or {}).get("severity", "warning")
            if severity not in SEVERITIES:
                raise RulesError(f"{name}: severity {severity!r} is not one of {', '.join(SEVERITIES)}")
            out.update(
                alert=name,
                enabled=True,
                severity=SEVERITIES[severity],
                resolveConfiguration={"autoResolved": True, "timeToResolve": TIME_TO_RESOLVE},
            )
            if rule.get("for"):
                out["for"] = iso8601(str(rule["for"]))
            if action_group_id is not None:
                out["actions"] = [{"actionGroupId": action_group_id}]
        else:
            raise RulesError(f"{group.get('name')}: a rule with neither 'record' nor 'alert'")
        rules.append(out)
    return rules


def rule_groups(
    groups: list[dict[str, Any]], objective_ms: int, namespace: str, action_group_id: pulumi.Input[str] | None
) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """(group, its `azure_rules`) for every group. Raises RulesError when no group has `LATENCY_ALERT`: the
    `latencyObjectiveMs` setting would then change nothing."""
    converted = [(g, azure_rules(g, objective_ms, namespace, action_group_id)) for g in groups]
    if not any(rule.get("alert") == LATENCY_ALERT for _, rules in converted for rule in rules):
        raise RulesError(f"no alert named {LATENCY_ALERT} carries the latency objective")
    return converted


def _rule_args(rule: dict[str, Any]) -> alertsmanagement.PrometheusRuleArgs:
    resolve = rule.get("resolveConfiguration")
    return alertsmanagement.PrometheusRuleArgs(
        expression=rule["expression"],
        record=rule.get("record"),
        alert=rule.get("alert"),
        enabled=rule.get("enabled"),
        severity=rule.get("severity"),
        for_=rule.get("for"),
        labels=rule.get("labels"),
        annotations=rule.get("annotations"),
        resolve_configuration=alertsmanagement.PrometheusRuleResolveConfigurationArgs(
            auto_resolved=resolve["autoResolved"], time_to_resolve=resolve["timeToResolve"]
        )
        if resolve
        else None,
        actions=[
            alertsmanagement.PrometheusRuleGroupActionArgs(action_group_id=a["actionGroupId"])
            for a in rule.get("actions", [])
        ]
        or None,
    )


@dataclass
class AlertRulesArgs:
    """`workspace_id`: the Azure Monitor workspace the rules evaluate on; `cluster_id` / `cluster_name`
    narrow them to this cluster's series; `latency_objective_ms`: the p99 objective; `alert_email`: who the
    action group e-mails (None: rules without actions); `namespace`: the workload's namespace."""

    resource_group_name: pulumi.Input[str]
    location: pulumi.Input[str]
    workspace_id: pulumi.Input[str]
    cluster_id: pulumi.Input[str]
    cluster_name: pulumi.Input[str]
    latency_objective_ms: int
    alert_email: str | None
    namespace: str
    rules_file: Path = RULES_FILE


class AlertRules(pulumi.ComponentResource):
    """An action group (e-mail) and one Prometheus rule group per group of the rules file.

    Outputs: `action_group_id` (None without `alert_email`), `rule_group_names`.
    """

    def __init__(self, name: str, args: AlertRulesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aks-image-classifier:alert_rules:AlertRules", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.action_group = None
        if args.alert_email is not None:
            self.action_group = monitor.ActionGroup(
                f"{name}-email",
                resource_group_name=args.resource_group_name,
                location="global",  # action groups are global resources (Azure Monitor "Action groups")
                group_short_name=SHORT_NAME,
                enabled=True,
                email_receivers=[
                    monitor.MicrosoftCommonEmailReceiverArgs(
                        name="on-call", email_address=args.alert_email, use_common_alert_schema=True
                    )
                ],
                opts=child,
            )
        action_group_id = self.action_group.id if self.action_group is not None else None
        self.groups = []
        groups = load_groups(args.rules_file)
        for group, rules in rule_groups(groups, args.latency_objective_ms, args.namespace, action_group_id):
            self.groups.append(
                alertsmanagement.PrometheusRuleGroup(
                    f"{name}-{group['name']}",
                    rule_group_name=group["name"],
                    resource_group_name=args.resource_group_name,
                    location=args.location,
                    description=f"{group['name']} from monitoring/rules.yaml",
                    scopes=[args.workspace_id, args.cluster_id],
                    cluster_name=args.cluster_name,
                    enabled=True,
                    interval=iso8601(str(group.get("interval", "1m"))),
                    rules=[_rule_args(rule) for rule in rules],
                    opts=child,
                )
            )
        self.action_group_id = action_group_id
        self.rule_group_names = [g["name"] for g in groups]
        self.register_outputs({"action_group_id": action_group_id, "rule_group_names": self.rule_group_names})
