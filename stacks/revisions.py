"""Container Apps revisions: names derived from what a revision runs, and the traffic split between two.

Rules (Microsoft Learn, "Revisions in Azure Container Apps", section "Revision name suffix"; the API's own
`ContainerAppInvalidRevisionName` message, microsoft/azure-container-apps#1443): a revision is named
`<app>--<suffix>`; the suffix consists of lower-case letters, digits and dashes, starts with a letter, ends
with a letter or digit and has no `--`; the revision name is at most 54 characters together with the app name.
A container app name is 2-32 such characters ("Resource naming rules": Microsoft.App/containerApps), so a
20-character suffix always fits.

A suffix must be new for every new template (the API refuses a suffix that an existing revision has, and every
change to `properties.template` makes a revision: "Revision-scope changes"), and the same for an unchanged one
(or every `pulumi up` would make a revision). So it is computed from the template: `r<12 hex of the image
digest>-<6 hex of SHA-256 of the rest of the template>`. An image rebuilt to the same digest with the same
settings keeps its revision; a new image or a new model (MODEL_URI, MODEL_SHA256 are template env) makes a new
one."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

#: Revision suffix and label rules ("Revision name suffix"), checked by `is_revision_suffix`.
_SUFFIX = re.compile(r"^[a-z](?:[a-z0-9-]*[a-z0-9])?$")
#: Container app names: 2-32 lower-case letters, digits and dashes, starting with a letter, ending with a
#: letter or digit, no `--` (Azure "Resource naming rules", Microsoft.App/containerApps).
_APP_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")
MAX_APP_NAME = 32
#: Longest revision name: app name + "--" + suffix (the API's ContainerAppInvalidRevisionName message).
MAX_REVISION_NAME = 54
DIGEST_HEX = 12
TEMPLATE_HEX = 6
SUFFIX_LENGTH = 1 + DIGEST_HEX + 1 + TEMPLATE_HEX
SEPARATOR = "--"


def is_revision_suffix(suffix: str) -> bool:
    """True if `suffix` follows the revision suffix rules (letters, digits, dashes; no `--`)."""
    return bool(_SUFFIX.match(suffix)) and SEPARATOR not in suffix


def is_app_name(name: str) -> bool:
    """True if `name` is a valid container app name (2-32 characters, see `_APP_NAME`)."""
    return bool(_APP_NAME.match(name)) and SEPARATOR not in name


def template_hash(template: Any) -> str:
    """SHA-256 (hex) of a template's settings, JSON with sorted keys (lists keep their order)."""
    return hashlib.sha256(json.dumps(template, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def revision_suffix(image_digest: str, template: Any) -> str:
    """`r<12 hex of the image digest>-<6 hex of template_hash(template)>` (20 characters).

    `image_digest`: `sha256:<64 hex>` as the registry reports it. `template`: every other revision-scope
    setting (env, resources, probes, scale, volumes) as plain JSON values. Raises ValueError for a digest that
    is not `sha256:` + hex.
    """
    algorithm, _, hexdigest = image_digest.partition(":")
    if algorithm != "sha256" or not re.fullmatch(r"[0-9a-f]{64}", hexdigest):
        raise ValueError(f"not an image digest (sha256:<64 hex>): {image_digest!r}")
    suffix = f"r{hexdigest[:DIGEST_HEX]}-{template_hash(template)[:TEMPLATE_HEX]}"
    assert is_revision_suffix(suffix) and len(suffix) == SUFFIX_LENGTH
    return suffix


def revision_name(app_name: str, suffix: str) -> str:
    """`<app>--<suffix>`; ValueError if either part breaks its rules or the name exceeds 54 characters."""
    if not is_app_name(app_name):
        raise ValueError(f"not a container app name: {app_name!r}")
    if not is_revision_suffix(suffix):
        raise ValueError(f"not a revision suffix: {suffix!r}")
    name = f"{app_name}{SEPARATOR}{suffix}"
    if len(name) > MAX_REVISION_NAME:
        raise ValueError(f"revision name {name!r} is longer than {MAX_REVISION_NAME} characters")
    return name


def traffic_split(latest: str, canary_percent: int, stable: str | None) -> dict[str, int]:
    """`{revision name: percent}` for ingress: `latest` (this deployment's revision) gets `canary_percent`,
    `stable` the rest. With no stable revision, or when `stable` is `latest` (the template has not changed
    since it), the latest revision takes 100. Weights are integers summing to 100."""
    if not 0 <= canary_percent <= 100:
        raise ValueError(f"canary percent must be 0-100, got {canary_percent}")
    if stable is None or stable == latest or canary_percent == 100:
        return {latest: 100}
    return {stable: 100 - canary_percent, latest: canary_percent}
