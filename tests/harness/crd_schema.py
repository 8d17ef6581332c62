"""Validate custom resources against their CRD's own `openAPIV3Schema`, vendored in tests/harness/data/crds/.

Each data file holds one CRD version's schema as published (`source`: the file and commit it was read from).
The schema becomes a JSON Schema the way the API server applies a structural schema with strict field
validation (`kubectl apply --validate=strict`, the default since Kubernetes 1.27; "Field validation" in the
Kubernetes API concepts): an object that lists `properties` admits no other field unless it says
`x-kubernetes-preserve-unknown-fields` or gives `additionalProperties`; `x-kubernetes-int-or-string` admits an
integer or a string. kubernetes-validate builds its strict schemas the same way (additionalProperties false).
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

DATA = Path(__file__).resolve().parent / "data" / "crds"


def strict(schema: Any) -> Any:
    """`schema` (an openAPIV3Schema node) with unknown fields refused, recursively."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: strict(value) for key, value in schema.items()}
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    preserve = out.pop("x-kubernetes-preserve-unknown-fields", False)
    if "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


@cache
def crd(kind: str) -> dict[str, Any]:
    """The vendored document for `kind` (file `<kind lowercased>.json`): source, apiVersion, schema."""
    return json.loads((DATA / f"{kind.lower()}.json").read_text())


def validate(obj: dict[str, Any]) -> list[str]:
    """Every schema violation of `obj` as `path: message`; [] when it is valid. Raises KeyError-like
    FileNotFoundError for a kind with no vendored CRD, ValueError for an apiVersion the CRD does not serve."""
    document = crd(obj["kind"])
    if obj["apiVersion"] != document["apiVersion"]:
        raise ValueError(f"{obj['kind']}: {obj['apiVersion']} is not {document['apiVersion']}")
    schema = strict(copy.deepcopy(document["openAPIV3Schema"]))
    validator = jsonschema.Draft4Validator(schema)
    return sorted(
        f"{'.'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
        for error in validator.iter_errors(obj)
    )
