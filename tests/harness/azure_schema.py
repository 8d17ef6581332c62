"""A strict check of an azure-native resource body against the installed SDK's input types.

The azure-native Python SDK is generated from the Azure REST API specs: each input type is a class whose
properties carry the ARM (camelCase) name (`@pulumi.getter(name=...)`), the property's type in its annotation
(`pulumi.Input[Optional['ContainerAppProbeArgs']]`, `Sequence[...]`), and the spec's numeric bounds in its
docstring ("Minimum value is 1. Maximum value is 10."). `check(body, Args)` walks a resource's inputs
(what the mocks record) along those classes and returns every key the type does not declare and every number
outside its bounds: what Kubernetes' `--strict` schemas are to the manifests, for ARM bodies (mocks accept
anything, the API does not).
"""

from __future__ import annotations

import importlib
import re
from typing import Any

_BOUNDS = re.compile(r"Minimum value is (-?\d+)\. Maximum value is (-?\d+)")
_ARGS = re.compile(r"'(\w+Args)'")


def _properties(args_type: type) -> dict[str, property]:
    """`{ARM name: property}` of an SDK input type (its own and its bases')."""
    found: dict[str, property] = {}
    for klass in reversed(args_type.__mro__):
        for value in vars(klass).values():
            if isinstance(value, property) and value.fget is not None:
                found[getattr(value.fget, "_pulumi_name", value.fget.__name__)] = value
    return found


def _nested(prop: property, module: Any) -> type | None:
    """The input type a property holds (directly or as list/map elements), or None for a scalar."""
    annotation = str(prop.fget.__annotations__.get("return", ""))
    match = _ARGS.search(annotation)
    return getattr(module, match.group(1)) if match else None


def check(body: dict[str, Any], args_type: type, path: str = "") -> list[str]:
    """Every undeclared key and out-of-bounds number in `body` (camelCase), as `path: problem` lines."""
    module = importlib.import_module(args_type.__module__.rsplit(".", 1)[0])
    properties = _properties(args_type)
    problems = []
    for key, value in body.items():
        where = f"{path}.{key}" if path else key
        prop = properties.get(key)
        if prop is None:
            problems.append(f"{where}: not a property of {args_type.__name__}")
            continue
        bounds = _BOUNDS.search(prop.__doc__ or prop.fget.__doc__ or "")
        if bounds and isinstance(value, int | float) and not isinstance(value, bool):
            low, high = int(bounds.group(1)), int(bounds.group(2))
            if not low <= value <= high:
                problems.append(f"{where}: {value} is outside [{low}, {high}]")
        nested = _nested(prop, module)
        if nested is None:
            continue
        items = value if isinstance(value, list) else [value]
        for i, item in enumerate(items):
            if isinstance(item, dict):
                problems += check(item, nested, f"{where}[{i}]" if isinstance(value, list) else where)
    return problems
