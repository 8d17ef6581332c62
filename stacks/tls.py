"""HTTPS for the classifier: Traefik ingress + cert-manager with a Let's Encrypt HTTP-01 ClusterIssuer.

The endpoint is `https://<dnsLabel>.<region>.cloudapp.azure.com`: Azure gives the ingress controller's
LoadBalancer public IP that name when the Service carries `service.beta.kubernetes.io/azure-dns-label-name`
(AKS docs, "Use a public standard load balancer": DNS label annotation). cert-manager requests the
certificate from Let's Encrypt, solving HTTP-01 through a temporary Ingress of the same class, and renews
it before expiry (cert-manager default: 2/3 of the lifetime). Port 80 redirects to 443 (permanent) at the
Traefik entry point, so no request, the API key included, reaches the service over plain HTTP.

The redirect must not swallow the HTTP-01 challenge. Traefik turns an entry-point redirection into one more
router on that entry point, rule ``HostRegexp(`^.+$`)``, whose priority defaults to `math.MaxInt - 1`
(traefik `pkg/provider/traefik/internal.go` `redirection`, `pkg/config/static/entrypoints.go`
`RedirectEntryPoint.SetDefaults`), above every router whose priority is left at its default, the length of
its rule (`pkg/muxer/http/mux.go` `AddRoute`). cert-manager's solver Ingress
(`/.well-known/acme-challenge/<token>`, pathType ImplementationSpecific, which Traefik's Ingress provider
makes a `PathPrefix` rule: `pkg/provider/kubernetes/ingress/kubernetes.go` `loadRouter`) would lose to it,
and Let's Encrypt would follow the redirect to a 443 where only the classifier's TLS router answers. So
the redirect router gets priority `REDIRECT_PRIORITY` (1: the chart writes
`--entryPoints.web.http.redirections.entryPoint.priority` only for a non-zero value, `_podtemplate.tpl`),
below any Ingress rule, and the solver Ingress is pinned to the `web` entry point through the issuer's
`ingressTemplate`. No other router listens on `web` (the classifier's Ingress is `websecure` only), so
everything but the challenge is still redirected.

Why Traefik and not NGINX: the community ingress-nginx controller reached end of life in March 2026 (no
releases, no security fixes: kubernetes.dev/blog/2025/11/12/ingress-nginx-retirement), and the AKS
application routing add-on's managed NGINX is supported only through November 2026 (Microsoft Learn,
"Managed NGINX ingress with the application routing add-on"); Traefik is maintained and implements the
Ingress API that cert-manager's HTTP-01 solver uses. Both charts are pinned (bump deliberately).
Under Pulumi mocks a Helm `Release` renders no objects; its chart values are what the tests can see.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

CERT_MANAGER_CHART = "cert-manager"
CERT_MANAGER_VERSION = "v1.19.2"
CERT_MANAGER_REPO = "https://charts.jetstack.io"
TRAEFIK_CHART = "traefik"
TRAEFIK_VERSION = "37.4.0"
TRAEFIK_REPO = "https://traefik.github.io/charts"
INGRESS_CLASS = "traefik"
ISSUER = "letsencrypt"
#: Let's Encrypt's production ACME v2 directory (letsencrypt.org/docs/acme-protocol-updates).
ACME_SERVER = "https://acme-v02.api.letsencrypt.org/directory"
DNS_LABEL_ANNOTATION = "service.beta.kubernetes.io/azure-dns-label-name"
#: Traefik Ingress annotations (Traefik "Kubernetes Ingress" routing docs, `router.*` annotations).
ENTRYPOINTS_ANNOTATION = "traefik.ingress.kubernetes.io/router.entrypoints"
TLS_ANNOTATION = "traefik.ingress.kubernetes.io/router.tls"
#: The chart's entry points: `web` (Service port 80) and `websecure` (443) (traefik-helm-chart values.yaml).
WEB, WEBSECURE = "web", "websecure"
#: Priority of the web -> websecure redirect router: the lowest the chart writes (it skips 0), so any router
#: on `web` with a rule (the ACME solver's) wins and everything else is redirected.
REDIRECT_PRIORITY = 1


def cloudapp_fqdn(dns_label: str, region: str) -> str:
    """`<label>.<region>.cloudapp.azure.com`: the name Azure gives a public IP with that DNS label."""
    return f"{dns_label}.{region.lower().replace(' ', '')}.cloudapp.azure.com"


@dataclass
class TlsArgs:
    """`dns_label`, `region` (e.g. westeurope), `contact_email` (ACME account); the backend Service
    `service_name`:`service_port` in `namespace`; `source_ranges`: CIDRs the load balancer admits (empty:
    all; Let's Encrypt must reach port 80 for HTTP-01)."""

    dns_label: str
    region: str
    contact_email: str
    namespace: pulumi.Input[str]
    service_name: pulumi.Input[str]
    service_port: int
    app_name: str
    source_ranges: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)


class Tls(pulumi.ComponentResource):
    """Ingress controller, certificate manager, issuer, certificate and the Ingress of the classifier.

    Pass the Kubernetes provider in `opts.providers`. Outputs: `fqdn`, `endpoint` (`https://<fqdn>/`).
    """

    def __init__(self, name: str, args: TlsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aks-image-classifier:tls:Tls", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.fqdn = cloudapp_fqdn(args.dns_label, args.region)
        self.cert_manager = k8s.helm.v3.Release(
            f"{name}-cert-manager",
            name="cert-manager",
            chart=CERT_MANAGER_CHART,
            version=CERT_MANAGER_VERSION,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=CERT_MANAGER_REPO),
            namespace="cert-manager",
            create_namespace=True,
            values={"crds": {"enabled": True}},
            opts=child,
        )
        self.traefik = k8s.helm.v3.Release(
            f"{name}-traefik",
            name="traefik",
            chart=TRAEFIK_CHART,
            version=TRAEFIK_VERSION,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=TRAEFIK_REPO),
            namespace="traefik",
            create_namespace=True,
            values=traefik_values(args.dns_label, args.source_ranges),
            opts=child,
        )
        after_crds = pulumi.ResourceOptions(parent=self, depends_on=[self.cert_manager])
        self.issuer = k8s.apiextensions.CustomResource(
            f"{name}-issuer",
            api_version="cert-manager.io/v1",
            kind="ClusterIssuer",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=ISSUER),
            spec=issuer_spec(args.contact_email),
            opts=after_crds,
        )
        secret_name = f"{args.app_name}-tls"
        self.certificate = k8s.apiextensions.CustomResource(
            f"{name}-certificate",
            api_version="cert-manager.io/v1",
            kind="Certificate",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=args.app_name, namespace=args.namespace, labels=args.labels or None
            ),
            spec={
                "secretName": secret_name,
                "dnsNames": [self.fqdn],
                "issuerRef": {"name": ISSUER, "kind": "ClusterIssuer", "group": "cert-manager.io"},
                "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.cert_manager, self.issuer]),
        )
        self.ingress = k8s.networking.v1.Ingress(
            f"{name}-ingress",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=args.app_name,
                namespace=args.namespace,
                labels=args.labels or None,
                annotations={
                    # HTTPS only: the router listens on the TLS entry point (port 80 only redirects).
                    ENTRYPOINTS_ANNOTATION: WEBSECURE,
                    TLS_ANNOTATION: "true",
                },
            ),
            spec=k8s.networking.v1.IngressSpecArgs(
                ingress_class_name=INGRESS_CLASS,
                tls=[k8s.networking.v1.IngressTLSArgs(hosts=[self.fqdn], secret_name=secret_name)],
                rules=[
                    k8s.networking.v1.IngressRuleArgs(
                        host=self.fqdn,
                        http=k8s.networking.v1.HTTPIngressRuleValueArgs(
                            paths=[
                                k8s.networking.v1.HTTPIngressPathArgs(
                                    path="/",
                                    path_type="Prefix",
                                    backend=k8s.networking.v1.IngressBackendArgs(
                                        service=k8s.networking.v1.IngressServiceBackendArgs(
                                            name=args.service_name,
                                            port=k8s.networking.v1.ServiceBackendPortArgs(
                                                number=args.service_port
                                            ),
                                        )
                                    ),
                                )
                            ]
                        ),
                    )
                ],
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.traefik]),
        )
        self.endpoint: pulumi.Output[str] = pulumi.Output.from_input(f"https://{self.fqdn}/")
        self.register_outputs({"fqdn": self.fqdn, "endpoint": self.endpoint})


def issuer_spec(contact_email: str) -> dict:
    """ClusterIssuer spec: Let's Encrypt production, HTTP-01 through an Ingress of class `traefik` whose
    router listens on the plain-HTTP `web` entry point only (cert-manager API reference, `ACMEIssuer`,
    `ACMEChallengeSolverHTTP01Ingress` and its `ingressTemplate`: annotations copied onto the solver
    Ingress)."""
    solver_ingress = {
        "ingressClassName": INGRESS_CLASS,
        "ingressTemplate": {"metadata": {"annotations": {ENTRYPOINTS_ANNOTATION: WEB}}},
    }
    return {
        "acme": {
            "server": ACME_SERVER,
            "email": contact_email,
            "privateKeySecretRef": {"name": f"{ISSUER}-account-key"},
            "solvers": [{"http01": {"ingress": solver_ingress}}],
        }
    }


def traefik_values(dns_label: str, source_ranges: tuple[str, ...] = ()) -> dict:
    """Traefik chart values (traefik-helm-chart `values.yaml`): the Azure DNS label on its LoadBalancer
    Service, a permanent redirect from the `web` (80) to the `websecure` (443) entry point at priority
    `REDIRECT_PRIORITY` (below the ACME solver's router, see the module docstring), its own IngressClass,
    and the Ingress status published from the Service (so cert-manager sees the address)."""
    service: dict = {"annotations": {DNS_LABEL_ANNOTATION: dns_label}}
    if source_ranges:
        service["spec"] = {"loadBalancerSourceRanges": list(source_ranges)}
    return {
        "service": service,
        "ports": {
            WEB: {
                "redirections": {
                    "entryPoint": {
                        "to": WEBSECURE,
                        "scheme": "https",
                        "permanent": True,
                        "priority": REDIRECT_PRIORITY,
                    }
                }
            },
        },
        "ingressClass": {"enabled": True, "isDefaultClass": False, "name": INGRESS_CLASS},
        "providers": {"kubernetesIngress": {"publishedService": {"enabled": True}}},
        "ingressRoute": {"dashboard": {"enabled": False}},
    }
