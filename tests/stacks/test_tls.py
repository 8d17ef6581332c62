"""HTTPS (prod's default): Traefik + cert-manager, a Let's Encrypt ClusterIssuer, an Ingress for the
cloudapp FQDN, a ClusterIP classifier Service; dev keeps the plain-HTTP LoadBalancer."""

from __future__ import annotations

from stacks import tls
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
    assert acme["solvers"] == [{"http01": {"ingress": {"ingressClassName": "traefik"}}}]
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
    assert redirect == {"to": "websecure", "scheme": "https", "permanent": True}


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
