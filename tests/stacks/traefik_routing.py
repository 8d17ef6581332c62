"""A model of how Traefik v3 (chart 37.x, Traefik 3.6) picks the router for a plain or TLS request, built from
the chart values and the Ingress objects the program declares, plus the Ingress cert-manager creates for an
HTTP-01 challenge. Each step follows the named upstream source:

- chart `traefik/templates/_podtemplate.tpl`: `ports.<ep>.redirections.entryPoint` becomes
  `--entryPoints.<ep>.http.redirections.entryPoint.{to=:<exposedPort>,scheme,priority,permanent}`; `priority`
  is written only when it is non-zero (`{{- with .priority }}`).
- traefik `pkg/config/static/entrypoints.go` `RedirectEntryPoint.SetDefaults`: scheme https, permanent,
  priority `math.MaxInt - 1` when not given.
- traefik `pkg/provider/traefik/internal.go` `redirection`: one router `<ep>-to-<to>` on that entry point,
  rule ``HostRegexp(`^.+$`)``, the configured priority, service `noop@internal` behind a RedirectScheme
  middleware.
- traefik `pkg/provider/kubernetes/ingress/kubernetes.go` `loadRouter`: ``Host(`h`)`` and, for pathType
  Exact, ``Path(`p`)``, else ``PathPrefix(`p`)``, joined with ` && `; `router.entrypoints`,
  `router.priority` and `router.tls` annotations. A router without entry points listens on every entry
  point (none is marked `asDefault` in the chart values used here).
- traefik `pkg/muxer/http/mux.go` `AddRoute`: priority 0 means `len(rule)`; routes are tried in decreasing
  priority, the first match wins. A router with TLS serves only TLS connections, one without only plain ones.
- cert-manager `pkg/issuer/acme/http/ingress.go` `buildIngressResource` / `ingressPath`: the solver Ingress
  has the issuer's `ingressClassName`, the `ingressTemplate` annotations, host = the domain, one path
  `/.well-known/acme-challenge/<token>` of pathType ImplementationSpecific to the solver Service port 8089.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

MAX_INT = sys.maxsize  # Go's math.MaxInt on the 64-bit images Traefik ships
#: Chart defaults (traefik-helm-chart 37.4.0 values.yaml `ports.*.exposedPort`).
EXPOSED_PORTS = {"web": 80, "websecure": 443}
ACME_PATH = "/.well-known/acme-challenge/"
SOLVER_PORT = 8089
ENTRYPOINTS = "traefik.ingress.kubernetes.io/router.entrypoints"
PRIORITY = "traefik.ingress.kubernetes.io/router.priority"
TLS = "traefik.ingress.kubernetes.io/router.tls"


@dataclass(frozen=True)
class Router:
    name: str
    rule: str
    entry_points: tuple[str, ...]  # empty: every entry point
    service: str
    priority: int = 0
    tls: bool = False
    redirect_to: str | None = None  # `scheme://:port` of a RedirectScheme middleware

    @property
    def effective_priority(self) -> int:
        return self.priority or len(self.rule)


def chart_redirect_args(values: dict) -> list[str]:
    """The redirect flags the chart's pod template renders for `values`."""
    args = []
    for ep, config in (values.get("ports") or {}).items():
        redirect = ((config or {}).get("redirections") or {}).get("entryPoint")
        if not redirect:
            continue
        prefix = f"--entryPoints.{ep}.http.redirections.entryPoint"
        args.append(f"{prefix}.to=:{EXPOSED_PORTS[redirect['to']]}")
        if redirect.get("scheme"):
            args.append(f"{prefix}.scheme={redirect['scheme']}")
        if redirect.get("priority"):
            args.append(f"{prefix}.priority={int(redirect['priority'])}")
        if "permanent" in redirect:
            args.append(f"{prefix}.permanent={str(redirect['permanent']).lower()}")
    return args


def redirect_routers(args: list[str]) -> list[Router]:
    """The internal provider's redirect routers for the static configuration `args`."""
    found: dict[str, dict[str, str]] = {}
    for arg in args:
        match = re.fullmatch(r"--entryPoints\.(\w+)\.http\.redirections\.entryPoint\.(\w+)=(.*)", arg)
        if match:
            found.setdefault(match.group(1), {})[match.group(2)] = match.group(3)
    routers = []
    for ep, fields in found.items():
        to = fields["to"]
        routers.append(
            Router(
                name=f"{ep}-to-{to.lstrip(':')}",
                rule="HostRegexp(`^.+$`)",
                entry_points=(ep,),
                service="noop@internal",
                priority=int(float(fields["priority"])) if "priority" in fields else MAX_INT - 1,
                redirect_to=f"{fields.get('scheme', 'https')}://{to}",
            )
        )
    return routers


def ingress_routers(ingress: dict) -> list[Router]:
    """Traefik's routers for one `networking.k8s.io/v1` Ingress (object as the API server gets it)."""
    annotations = (ingress.get("metadata") or {}).get("annotations") or {}
    entry_points = tuple(ep.strip() for ep in annotations.get(ENTRYPOINTS, "").split(",") if ep.strip())
    routers = []
    for rule in ingress["spec"].get("rules") or []:
        for path in (rule.get("http") or {}).get("paths") or []:
            parts = [f"Host(`{rule['host']}`)"] if rule.get("host") else []
            matcher = "Path" if path.get("pathType") == "Exact" else "PathPrefix"
            parts.append(f"{matcher}(`{path['path']}`)")
            backend = path["backend"]["service"]
            routers.append(
                Router(
                    name=f"{ingress['metadata']['name']}-{path['path']}",
                    rule=" && ".join(parts),
                    entry_points=entry_points,
                    service=f"{backend['name']}:{int(backend['port']['number'])}",
                    priority=int(annotations.get(PRIORITY, 0)),
                    tls=annotations.get(TLS) == "true",
                )
            )
    return routers


def solver_ingress(issuer_spec: dict, domain: str, token: str) -> dict:
    """The Ingress cert-manager creates to answer one HTTP-01 challenge of a `ClusterIssuer` spec."""
    http01 = issuer_spec["acme"]["solvers"][0]["http01"]["ingress"]
    template = (http01.get("ingressTemplate") or {}).get("metadata") or {}
    path = {
        "path": f"{ACME_PATH}{token}",
        "pathType": "ImplementationSpecific",
        "backend": {"service": {"name": "cm-acme-http-solver-x", "port": {"number": SOLVER_PORT}}},
    }
    return {
        "metadata": {"name": "cm-acme-http-solver", "annotations": dict(template.get("annotations") or {})},
        "spec": {
            "ingressClassName": http01["ingressClassName"],
            "rules": [{"host": domain, "http": {"paths": [path]}}],
        },
    }


def _matches(rule: str, host: str, path: str) -> bool:
    for part in rule.split(" && "):
        match = re.fullmatch(r"(\w+)\(`(.*)`\)", part)
        assert match, f"matcher outside the model: {part}"
        kind, value = match.groups()
        if kind == "Host":
            ok = host.lower() == value.lower()
        elif kind == "HostRegexp":
            ok = re.search(value, host) is not None
        elif kind == "PathPrefix":
            ok = path.startswith(value)
        elif kind == "Path":
            ok = path == value
        else:
            raise AssertionError(f"matcher outside the model: {kind}")
        if not ok:
            return False
    return True


def route(routers: list[Router], entry_point: str, host: str, path: str, tls: bool = False) -> Router | None:
    """The router Traefik picks for a request on `entry_point` (None: 404)."""
    candidates = [
        r
        for r in routers
        if (not r.entry_points or entry_point in r.entry_points)
        and r.tls == tls
        and _matches(r.rule, host, path)
    ]
    candidates.sort(key=lambda r: r.effective_priority, reverse=True)
    return candidates[0] if candidates else None
