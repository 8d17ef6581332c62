"""Probe numbers of the classifier container on every stack: liveness tolerant of a saturated pod,
readiness quick.

The kubelet restarts a container once its liveness probe has failed ``failureThreshold`` times in a row,
one try every ``periodSeconds``, a try failing when no answer comes within ``timeoutSeconds``; a failing
readiness probe only takes the pod out of the Service's endpoints (kubernetes.io, "Configure Liveness,
Readiness and Startup Probes"; probe fields in the core/v1 Probe API reference).
"""

from __future__ import annotations

import pytest

from tests.stacks.conftest import run_stack

DEPLOYMENT = "kubernetes:apps/v1:Deployment"


@pytest.fixture(scope="module", params=["dev", "prod", "local"])
def container(request) -> dict:
    (c,) = run_stack(request.param).one(DEPLOYMENT).inputs["spec"]["template"]["spec"]["containers"]
    return c


def test_liveness_gives_a_saturated_pod_a_minute(container):
    live = container["livenessProbe"]
    assert live["httpGet"] == {"path": "/healthz", "port": "http"}
    assert (live["periodSeconds"], live["timeoutSeconds"], live["failureThreshold"]) == (10, 5, 6)
    # 60 s of silence before a restart; each try waits 5 s for an event loop behind a throttled CPU.
    assert live["periodSeconds"] * live["failureThreshold"] >= 60
    assert live["timeoutSeconds"] < live["periodSeconds"]  # tries never overlap


def test_readiness_stays_quick_and_fails_before_liveness(container):
    ready, live = container["readinessProbe"], container["livenessProbe"]
    assert ready["httpGet"] == {"path": "/readyz", "port": "http"}
    assert (ready["periodSeconds"], ready["timeoutSeconds"], ready["failureThreshold"]) == (5, 2, 2)
    # A slow pod leaves the endpoints (10 s) long before the kubelet would restart it (60 s).
    out_of_endpoints_s = ready["periodSeconds"] * ready["failureThreshold"]
    assert out_of_endpoints_s < live["periodSeconds"] * live["failureThreshold"]
