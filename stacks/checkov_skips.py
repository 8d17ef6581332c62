"""Accepted checkov findings on Azure resources, declared next to the resource they concern.

A component calls `skip_arm_checks(resource, {"CKV_AZURE_X": "reason"})` right after declaring an
azure-native resource; `tools.render_arm` writes the map into the resource's ARM `metadata.checkov` list,
which checkov's ARM framework reads as inline suppressions (checkov `arm/context_parser.py`
`collect_skip_comments`: each entry `"<CHECK_ID>:<reason>"`). Checkov skips never go into Azure tags.

The map is keyed by the resource's URN, so it is per stack and per resource; it is written when the URN
resolves (always, an empty map included, so a later run of the same stack replaces an older one).
"""

from __future__ import annotations

from collections.abc import Mapping

import pulumi

_SKIPS: dict[str, dict[str, str]] = {}


def skip_arm_checks(resource: pulumi.CustomResource, skips: Mapping[str, str]) -> None:
    """Record `{check id: reason}` as accepted for `resource`. Raises ValueError for an empty reason."""
    frozen = dict(skips)
    for check, reason in frozen.items():
        if not check.startswith("CKV_") or not reason.strip():
            raise ValueError(f"checkov skip {check!r} needs a CKV_ id and a reason")
    resource.urn.apply(lambda urn: _SKIPS.__setitem__(urn, frozen))


def arm_skips(urn: str) -> dict[str, str]:
    """The skips recorded for the resource with URN `urn` (empty if none)."""
    return dict(_SKIPS.get(urn, {}))
