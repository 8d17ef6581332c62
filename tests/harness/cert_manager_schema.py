"""Structural check of cert-manager `ClusterIssuer` / `Certificate` objects against the documented v1 API.

kubernetes-validate knows only built-in kinds, so cert-manager's custom resources get this check instead:
every field must be one the cert-manager v1 API reference documents (https://cert-manager.io/docs/
reference/api-docs/: `IssuerSpec`, `ACMEIssuer`, `ACMEChallengeSolver`, `ACMEChallengeSolverHTTP01`,
`ACMEChallengeSolverHTTP01Ingress`, `SecretKeySelector`, `CertificateSpec`, `IssuerReference`,
`CertificatePrivateKey`), with its JSON type, enum values and required fields. Fields the program does not
use are listed by name only (`ANY`: present is allowed, content not checked), so the check is strict about
typos and shapes where the program writes and lenient where it never does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ANY = object()


@dataclass(frozen=True)
class F:
    """A field: JSON type (`str`, `int`, `bool`, `dict`, `list`), required, nested schema or enum."""

    type: type
    required: bool = False
    schema: Any = None  # dict of fields (object), F (list item), or a frozenset (enum of strings)


_SECRET_KEY_SELECTOR = {"name": F(str, True), "key": F(str)}
_HTTP01_INGRESS = {
    "ingressClassName": F(str),
    "class": F(str),
    "name": F(str),
    "serviceType": F(str, schema=frozenset({"ClusterIP", "NodePort"})),
    "podTemplate": ANY,
    "ingressTemplate": ANY,
}
_SOLVER = {
    "selector": ANY,
    "http01": F(dict, schema={"ingress": F(dict, schema=_HTTP01_INGRESS), "gatewayHTTPRoute": ANY}),
    "dns01": ANY,
}
_ACME = {
    "server": F(str, True),
    "email": F(str),
    "preferredChain": F(str),
    "caBundle": F(str),
    "skipTLSVerify": F(bool),
    "externalAccountBinding": ANY,
    "privateKeySecretRef": F(dict, True, _SECRET_KEY_SELECTOR),
    "solvers": F(list, schema=F(dict, schema=_SOLVER)),
    "disableAccountKeyGeneration": F(bool),
    "enableDurationFeature": F(bool),
    "profile": F(str),
}
ISSUER_SPEC = {"acme": F(dict, schema=_ACME), "ca": ANY, "vault": ANY, "selfSigned": ANY, "venafi": ANY}
CERTIFICATE_SPEC = {
    "secretName": F(str, True),
    "issuerRef": F(dict, True, {"name": F(str, True), "kind": F(str), "group": F(str)}),
    "dnsNames": F(list, schema=F(str)),
    "commonName": F(str),
    "duration": F(str),
    "renewBefore": F(str),
    "renewBeforePercentage": F(int),
    "ipAddresses": F(list, schema=F(str)),
    "uris": F(list, schema=F(str)),
    "emailAddresses": F(list, schema=F(str)),
    "privateKey": F(
        dict,
        schema={
            "rotationPolicy": F(str, schema=frozenset({"Never", "Always"})),
            "encoding": F(str, schema=frozenset({"PKCS1", "PKCS8"})),
            "algorithm": F(str, schema=frozenset({"RSA", "ECDSA", "Ed25519"})),
            "size": F(int),
        },
    ),
    "usages": F(list, schema=F(str)),
    "isCA": F(bool),
    "subject": ANY,
    "literalSubject": F(str),
    "secretTemplate": ANY,
    "keystores": ANY,
    "otherNames": ANY,
    "signatureAlgorithm": F(str),
    "encodeUsagesInRequest": F(bool),
    "revisionHistoryLimit": F(int),
    "additionalOutputFormats": ANY,
    "nameConstraints": ANY,
}
SPECS = {
    ("cert-manager.io/v1", "ClusterIssuer"): ISSUER_SPEC,
    ("cert-manager.io/v1", "Certificate"): CERTIFICATE_SPEC,
}


def validate(obj: dict) -> list[str]:
    """Problems of one object (`apiVersion`, `kind`, `metadata`, `spec`); [] when it fits the API."""
    key = (obj.get("apiVersion"), obj.get("kind"))
    if key not in SPECS:
        return [f"{key[0]}/{key[1]} is not a cert-manager v1 kind this check knows"]
    problems = []
    if not (obj.get("metadata") or {}).get("name"):
        problems.append("metadata.name is required")
    if set(obj) - {"apiVersion", "kind", "metadata", "spec"}:
        problems.append(
            f"unknown top-level fields {sorted(set(obj) - {'apiVersion', 'kind', 'metadata', 'spec'})}"
        )
    return problems + _check(obj.get("spec"), F(dict, True, SPECS[key]), "spec")


def _check(value: Any, field: Any, path: str) -> list[str]:
    if field is ANY:
        return []
    expected = field.type
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        return [f"{path}: expected {expected.__name__}, got {type(value).__name__}"]
    if isinstance(field.schema, frozenset):
        return [] if value in field.schema else [f"{path}: {value!r} is not one of {sorted(field.schema)}"]
    if expected is list and field.schema is not None:
        return [p for i, item in enumerate(value) for p in _check(item, field.schema, f"{path}[{i}]")]
    if expected is dict and isinstance(field.schema, dict):
        problems = [f"{path}.{k}: unknown field" for k in value if k not in field.schema]
        for name, sub in field.schema.items():
            if name in value:
                problems += _check(value[name], sub, f"{path}.{name}")
            elif sub is not ANY and sub.required:
                problems.append(f"{path}.{name}: required")
        return problems
    return []
