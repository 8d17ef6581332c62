"""Observability on Azure: the alert rules' latency objective and e-mail address, KEDA's queue target."""

from __future__ import annotations

from dataclasses import dataclass

from stacks.config.reader import ConfigError, Reader
from stacks.config.security import _EMAIL, _FORBIDDEN_CONTACT

#: The p99 objective's bounds, ms: a minute is the longest request the service lets wait (REQUEST_TIMEOUT_MS).
LATENCY_OBJECTIVE_MS = (1, 60_000)


@dataclass(frozen=True)
class MonitoringSettings:
    """Managed Prometheus alerting and KEDA scaling (target azure).

    `latency_objective_ms`: the p99 objective of the inference routes (ms) the latency alert compares with;
    `alert_email`: the action group's address (None: rules without an action group); `queue_per_pod`: images
    waiting per replica KEDA scales to (`inference_queue_depth` summed over the pods, divided by this)."""

    latency_objective_ms: int
    alert_email: str | None
    queue_per_pod: int


def monitoring_settings(r: Reader, max_queue: int) -> MonitoringSettings:
    """`latencyObjectiveMs` (1-60000), `alertEmail` (a deliverable address, or empty), `scaleQueuePerPod`
    (1..`maxQueue`: a target above one pod's queue bound is never reached, 503s come first).
    Raises ConfigError naming the key."""
    email = r.str("alertEmail")
    if email is not None and (
        not _EMAIL.match(email) or _FORBIDDEN_CONTACT.search(email.rsplit("@", 1)[-1].lower())
    ):
        raise ConfigError(
            f"{r.key('alertEmail')} must be a deliverable e-mail address (not a reserved domain such as "
            f"example.com), or empty for no action group; got {email!r}"
        )
    low, high = LATENCY_OBJECTIVE_MS
    return MonitoringSettings(
        latency_objective_ms=r.int("latencyObjectiveMs", minimum=low, maximum=high),
        alert_email=email,
        queue_per_pod=r.int("scaleQueuePerPod", minimum=1, maximum=max_queue),
    )
