"""HTTPS (prod's default): Traefik + cert-manager, a Let's Encrypt ClusterIssuer, an Ingress for the
cloudapp FQDN, a ClusterIP classifier Service; dev keeps the plain-HTTP LoadBalancer."""

from __future__ import annotations

import copy

from stacks import tls
from tests.stacks import traefik_routing as traefik
from tests.stacks.conftest import run_stack

INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
ISSUER = "kubernetes:cert-manager.io/v1:ClusterIssuer"
CERTIFICATE = "kubernetes:cert-manager.io/v1:Certificate"
RELEASE = "kubernetes:helm.sh/v3:Release"
SERVICE = "kubernetes:core/v1:Service"
FQDN = "aic-prod-classifier.westeurope.cloudapp.azure.com"


def releases(run):
    return {r.inputs["chart"]: r.inputs for r in run.of_type(RELEASE)}


def test_prod_serves_https_on_the_cloudapp_name(prod):
    assert prod.outputs["endpoint"] == f"https://{FQDN}/"
    ingress = prod.one(INGRESS).inputs
    spec = ingress["spec"]
    assert spec["ingressClassName"] == tls.INGRESS_CLASS
    assert spec["tls"] == [{"hosts": [FQDN], "secretName": "classifier-tls"}]
    (rule,) = spec["rules"]
    assert rule["host"] == FQDN
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "classifier", "port": {"number": 80}}
    assert (
        ingress["metadata"]["annotations"]["traefik.ingress.kubernetes.io/router.entrypoints"] == "websecure"
    )


def test_certificate_comes_from_lets_encrypt_over_http01(prod):
    acme = prod.one(ISSUER).inputs["spec"]["acme"]
    assert acme["server"] == "https://acme-v02.api.letsencrypt.org/directory"
    assert acme["email"] == "ops@contoso.com"
    (solver,) = acme["solvers"]
    assert solver["http01"]["ingress"]["ingressClassName"] == "traefik"
    certificate = prod.one(CERTIFICATE).inputs["spec"]
    assert certificate["dnsNames"] == [FQDN] and certificate["secretName"] == "classifier-tls"
    assert certificate["issuerRef"] == {
        "name": "letsencrypt",
        "kind": "ClusterIssuer",
        "group": "cert-manager.io",
    }


def test_charts_are_pinned_and_the_issuer_waits_for_cert_manager_crds(prod):
    charts = releases(prod)
    assert charts["cert-manager"]["version"] == tls.CERT_MANAGER_VERSION
    assert charts["cert-manager"]["values"] == {"crds": {"enabled": True}}
    assert charts["traefik"]["version"] == tls.TRAEFIK_VERSION
    (cert_manager,) = [r for r in prod.of_type(RELEASE) if r.inputs["chart"] == "cert-manager"]
    assert cert_manager.urn in prod.one(ISSUER).dependencies
    assert cert_manager.urn in prod.one(CERTIFICATE).dependencies


def test_ingress_controller_gets_the_dns_label_and_redirects_plain_http(prod):
    values = releases(prod)["traefik"]["values"]
    assert values["service"]["annotations"] == {
        "service.beta.kubernetes.io/azure-dns-label-name": "aic-prod-classifier"
    }
    redirect = values["ports"]["web"]["redirections"]["entryPoint"]
    assert redirect == {"to": "websecure", "scheme": "https", "permanent": True, "priority": 1}


def test_classifier_service_is_internal_when_tls_is_on(prod, dev):
    assert prod.one(SERVICE).inputs["spec"]["type"] == "ClusterIP"
    assert "annotations" not in prod.one(SERVICE).inputs["metadata"]
    assert dev.one(SERVICE).inputs["spec"]["type"] == "LoadBalancer"


def test_dev_keeps_plain_http_without_ingress_or_charts(dev):
    assert dev.config.security.tls is False
    assert not dev.of_type(INGRESS) and not dev.of_type(ISSUER) and not dev.of_type(RELEASE)
    assert dev.outputs["endpoint"].startswith("http://")


def test_allowed_source_ranges_move_to_the_ingress_load_balancer():
    run = run_stack("prod", allowedSourceRanges=["198.51.100.0/24"])
    values = releases(run)["traefik"]["values"]
    assert values["service"]["spec"] == {"loadBalancerSourceRanges": ["198.51.100.0/24"]}
    assert "loadBalancerSourceRanges" not in run.one(SERVICE).inputs["spec"]


def test_tls_can_be_turned_on_for_dev():
    run = run_stack("dev", tls="true", dnsLabel="aic-dev-1", tlsContactEmail="me@contoso.com")
    assert run.outputs["endpoint"] == "https://aic-dev-1.westeurope.cloudapp.azure.com/"
    assert run.one(INGRESS).inputs["spec"]["rules"][0]["host"] == "aic-dev-1.westeurope.cloudapp.azure.com"


TOKEN = "Zm9vYmFyLXRva2VuLTEyMw"


def routers_of(run, values=None):
    """Traefik's routers for a run: the chart's redirect, the program's Ingress, the HTTP-01 solver's."""
    values = releases(run)["traefik"]["values"] if values is None else values
    issuer = run.one(ISSUER).inputs["spec"]
    return (
        traefik.redirect_routers(traefik.chart_redirect_args(values))
        + traefik.ingress_routers(run.one(INGRESS).inputs)
        + traefik.ingress_routers(traefik.solver_ingress(issuer, FQDN, TOKEN))
    )


def test_http01_challenge_on_port_80_reaches_the_solver_not_the_redirect(prod):
    # Let's Encrypt fetches http://<domain>/.well-known/acme-challenge/<token> on port 80 (RFC 8555 8.3).
    routers = routers_of(prod)
    picked = traefik.route(routers, tls.WEB, FQDN, f"/.well-known/acme-challenge/{TOKEN}")
    assert picked is not None and picked.redirect_to is None
    assert picked.service == f"cm-acme-http-solver-x:{traefik.SOLVER_PORT}"


def test_everything_else_on_port_80_is_still_redirected_to_https(prod):
    routers = routers_of(prod)
    for path in ("/", "/v2/models/resnet50/infer", "/predict", "/.well-known/other"):
        picked = traefik.route(routers, tls.WEB, FQDN, path)
        assert picked is not None and picked.redirect_to == "https://:443", path
    # Another Host on port 80 gets the redirect too (no router but the redirect listens on `web`).
    assert traefik.route(routers, tls.WEB, "20.50.100.7", "/predict").redirect_to == "https://:443"
    # Over TLS, the classifier's router serves the same paths.
    served = traefik.route(routers, tls.WEBSECURE, FQDN, "/v2/models/resnet50/infer", tls=True)
    assert served is not None and served.service == "classifier:80"


def test_the_model_sees_the_redirect_swallow_the_challenge_at_traefiks_default_priority(prod):
    # Without `priority` the redirect router gets math.MaxInt - 1 (RedirectEntryPoint.SetDefaults), above the
    # solver router's len(rule): the challenge would be redirected to 443, where no router serves it.
    values = copy.deepcopy(releases(prod)["traefik"]["values"])
    del values["ports"]["web"]["redirections"]["entryPoint"]["priority"]
    routers = routers_of(prod, values)
    picked = traefik.route(routers, tls.WEB, FQDN, f"/.well-known/acme-challenge/{TOKEN}")
    assert picked.redirect_to == "https://:443"
    over_tls = traefik.route(routers, tls.WEBSECURE, FQDN, f"/.well-known/acme-challenge/{TOKEN}", tls=True)
    assert over_tls.service == "classifier:80"  # the classifier answers 404, not the solver


def test_solver_ingress_is_pinned_to_the_plain_http_entry_point(prod):
    ingress = traefik.solver_ingress(prod.one(ISSUER).inputs["spec"], FQDN, TOKEN)
    assert ingress["metadata"]["annotations"] == {"traefik.ingress.kubernetes.io/router.entrypoints": "web"}
    (router,) = traefik.ingress_routers(ingress)
    assert router.entry_points == ("web",) and router.tls is False
    # Traefik's Ingress provider: ImplementationSpecific -> PathPrefix (loadRouter's default matcher).
    assert router.rule == f"Host(`{FQDN}`) && PathPrefix(`/.well-known/acme-challenge/{TOKEN}`)"
