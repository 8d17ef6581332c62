"""Policy pack rules with passing and failing resource properties, and against the real dev stack."""

from __future__ import annotations

import copy

import pytest
from pulumi_policy import ResourceValidationArgs, Secret, StackValidationArgs
from pulumi_policy.policy import PolicyResource

from policy import rules
from tests.stacks.conftest import run_stack

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
LOGIN = "aicdev123456.azurecr.io"
GOOD_CONTAINER = {
    "name": "classifier",
    "image": f"{LOGIN}/aks-image-classifier/classifier:dev@sha256:" + "a" * 64,
    "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
    "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}},
}


def deployment(**container_changes):
    container = copy.deepcopy(GOOD_CONTAINER)
    for key, value in container_changes.items():
        if value is None:
            container.pop(key, None)
        else:
            container[key] = value
    return {"spec": {"template": {"spec": {"containers": [container]}}}}


def policy(name):
    return next(p for p in rules.POLICIES if p.name == name)


def validate(name, resource_type, props):
    """Run a resource policy the way the engine does; return the violation messages."""
    found = []
    args = ResourceValidationArgs(resource_type, props, f"urn:x::{resource_type}::r", "r", None, None)
    policy(name).validate(args, lambda message, urn=None: found.append(message))
    return found


def validate_stack(resources):
    found = []
    args = StackValidationArgs(
        [
            PolicyResource(t, p, f"urn:{i}", f"r{i}", None, None, None, [], {})
            for i, (t, p) in enumerate(resources)
        ]
    )
    policy("images-from-stack-registry").validate(args, lambda message, urn=None: found.append(message))
    return found


@pytest.mark.parametrize(
    ("props", "violations"),
    [
        ({"adminUserEnabled": False, "anonymousPullEnabled": False}, 0),
        ({}, 0),
        ({"adminUserEnabled": True, "anonymousPullEnabled": False}, 1),
        ({"adminUserEnabled": True, "anonymousPullEnabled": True}, 2),
    ],
)
def test_registry_admin_user_and_anonymous_pull(props, violations):
    found = validate("acr-admin-user-disabled", rules.ACR, props)
    assert len(found) == violations, found
    if violations:
        assert "admin user" in found[0]


@pytest.mark.parametrize(
    ("props", "ok"), [({"enableRBAC": True}, True), ({"enableRBAC": False}, False), ({}, False)]
)
def test_cluster_rbac(props, ok):
    assert (validate("aks-rbac-enabled", rules.AKS, props) == []) is ok


def test_good_container_passes_and_other_types_are_ignored():
    assert validate("containers-non-root-with-resources", DEPLOYMENT, deployment()) == []
    assert validate("containers-non-root-with-resources", "kubernetes:core/v1:Service", {"spec": {}}) == []


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"securityContext": None}, "runAsNonRoot"),
        ({"securityContext": {"runAsNonRoot": False}}, "runAsNonRoot"),
        ({"securityContext": {"runAsNonRoot": True, "runAsUser": 0}}, "runAsUser must not be 0"),
        ({"resources": None}, "requests must set cpu and memory"),
        (
            {"resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}},
            "limits must set cpu",
        ),
    ],
)
def test_bad_container_is_reported(changes, words):
    found = validate("containers-non-root-with-resources", DEPLOYMENT, deployment(**changes))
    assert any(words in message for message in found), found


def test_pod_level_non_root_counts_for_every_container():
    props = deployment(securityContext=None)
    props["spec"]["template"]["spec"]["securityContext"] = {"runAsNonRoot": True, "runAsUser": 10001}
    assert validate("containers-non-root-with-resources", DEPLOYMENT, props) == []


def test_images_only_from_the_stack_registry():
    acr = (rules.ACR, {"loginServer": LOGIN})
    assert validate_stack([acr, (DEPLOYMENT, deployment())]) == []
    found = validate_stack([acr, (DEPLOYMENT, deployment(image="docker.io/library/nginx:1.27"))])
    assert len(found) == 1 and "docker.io/library/nginx" in found[0]
    sneaky = deployment(image=f"{LOGIN}.evil.example/classifier:1")
    assert len(validate_stack([acr, (DEPLOYMENT, sneaky)])) == 1
    assert validate_stack([(DEPLOYMENT, deployment(image="nginx"))]) == [], (
        "no registry in the stack: not applicable"
    )


def test_kubeconfig_is_remediated_into_a_secret():
    remediate = policy("kubeconfig-secret").remediate
    args = ResourceValidationArgs(
        rules.K8S_PROVIDER, {"kubeconfig": "apiVersion: v1"}, "urn:p", "p", None, None
    )
    result = remediate(args)
    assert isinstance(result["kubeconfig"], Secret) and result["kubeconfig"].value == "apiVersion: v1"
    already = Secret("apiVersion: v1")
    assert rules.secret_kubeconfig({"kubeconfig": already})["kubeconfig"] is already
    assert (
        remediate(ResourceValidationArgs(rules.K8S_PROVIDER, {"context": "kind"}, "u", "p", None, None))
        is None
    )
    assert remediate(ResourceValidationArgs(rules.ACR, {"kubeconfig": "x"}, "u", "p", None, None)) is None


def test_container_apps_serve_https_and_pull_with_an_identity():
    app = run_stack("aca").one(rules.CONTAINER_APP).inputs
    assert validate("container-app-https-identity-pull", rules.CONTAINER_APP, app) == []
    insecure = copy.deepcopy(app)
    insecure["configuration"]["ingress"]["allowInsecure"] = True
    password = copy.deepcopy(app)
    password["configuration"]["registries"] = [{"server": LOGIN, "username": "u", "passwordSecretRef": "pw"}]
    assert "allowInsecure" in " ".join(
        validate("container-app-https-identity-pull", rules.CONTAINER_APP, insecure)
    )
    assert "managed identity" in " ".join(
        validate("container-app-https-identity-pull", rules.CONTAINER_APP, password)
    )
    acr = (rules.ACR, {"loginServer": LOGIN})
    foreign = copy.deepcopy(app)
    foreign["template"]["containers"][0]["image"] = "docker.io/library/nginx:1.27"
    assert len(validate_stack([acr, (rules.CONTAINER_APP, foreign)])) == 1


@pytest.mark.parametrize("stack", ["dev", "prod", "local", "aca"])
def test_the_real_stacks_pass_every_rule(stack):
    run = run_stack(stack)
    resources = [(r.type, {**r.inputs, **r.state}) for r in run.resources]
    for resource_type, props in resources:
        for name in (
            "acr-admin-user-disabled",
            "aks-rbac-enabled",
            "containers-non-root-with-resources",
            "container-app-https-identity-pull",
        ):
            assert validate(name, resource_type, props) == [], (name, resource_type)
    assert validate_stack(resources) == []
    if stack != "local":
        assert any(t == rules.ACR for t, _ in resources)


def test_pack_declares_the_seven_policies():
    assert {p.name for p in rules.POLICIES} == {
        "container-app-https-identity-pull",
        "acr-admin-user-disabled",
        "aks-rbac-enabled",
        "aks-api-server-authorized-ranges",
        "containers-non-root-with-resources",
        "images-from-stack-registry",
        "kubeconfig-secret",
    }
