"""Revision names and traffic splits of the Container App (`stacks.revisions`).

The rules modelled: Microsoft Learn "Revisions in Azure Container Apps", "Revision name suffix" (lower-case
letters, digits, dashes; starts with a letter; ends with a letter or digit; no `--`), and the API's
`ContainerAppInvalidRevisionName` message (microsoft/azure-container-apps#1443: "The length of the revision
name must not be more than a combined 54 characters with the container app name"); container app names are
2-32 characters (Azure "Resource naming rules", Microsoft.App/containerApps).
"""

from __future__ import annotations

import re

import pytest

from stacks import revisions

DIGEST = "sha256:" + "0123456789abcdef" * 4
OTHER_DIGEST = "sha256:" + "fedcba9876543210" * 4
TEMPLATE = {"env": {"MODEL_URI": "https://a.blob.core.windows.net/models/r/1/model.pt"}, "cpu": 1.0}
#: The documented rules, written independently of the module's own regular expression.
DOCUMENTED = re.compile(r"^[a-z][a-z0-9-]*[a-z0-9]$")


def documented_suffix(suffix: str) -> bool:
    return bool(DOCUMENTED.match(suffix)) and "--" not in suffix and len(suffix) <= 64


@pytest.mark.parametrize(
    ("suffix", "ok"),
    [
        ("r0123456789ab-1a2b3c", True),
        ("first-revision", True),
        ("a", True),
        ("0b699ef", False),  # starts with a digit (Azure/azure-cli-extensions#6449: refused)
        ("Upper", False),
        ("ends-", False),
        ("two--dashes", False),
        ("under_score", False),
        ("", False),
    ],
)
def test_suffix_rules(suffix, ok):
    assert revisions.is_revision_suffix(suffix) is ok
    assert documented_suffix(suffix) is ok or len(suffix) == 1


def test_suffix_follows_the_rules_and_fits_the_longest_app_name():
    suffix = revisions.revision_suffix(DIGEST, TEMPLATE)
    assert documented_suffix(suffix) and len(suffix) == revisions.SUFFIX_LENGTH == 20
    assert suffix.startswith("r0123456789ab-")  # the image digest is readable in the name
    longest = "a" * revisions.MAX_APP_NAME
    name = revisions.revision_name(longest, suffix)
    assert name == f"{longest}--{suffix}" and len(name) <= 54


def test_suffix_is_stable_and_changes_with_image_or_template():
    """The API refuses a suffix an existing revision has, and any template change makes a revision: the
    suffix must change exactly when the image or the rest of the template does."""
    same = revisions.revision_suffix(DIGEST, dict(reversed(list(TEMPLATE.items()))))
    assert same == revisions.revision_suffix(DIGEST, TEMPLATE)  # key order does not matter
    new_image = revisions.revision_suffix(OTHER_DIGEST, TEMPLATE)
    new_model = revisions.revision_suffix(DIGEST, {**TEMPLATE, "env": {"MODEL_URI": "https://a/models/r/2"}})
    assert len({same, new_image, new_model}) == 3


@pytest.mark.parametrize("digest", ["0123", "sha512:" + "0" * 64, "sha256:" + "G" * 64, "sha256:abc"])
def test_a_malformed_digest_is_refused(digest):
    with pytest.raises(ValueError, match="not an image digest"):
        revisions.revision_suffix(digest, TEMPLATE)


@pytest.mark.parametrize(
    ("app", "ok"),
    [("classifier", True), ("a" * 32, True), ("a" * 33, False), ("c--x", False), ("9app", False)],
)
def test_app_names(app, ok):
    assert revisions.is_app_name(app) is ok
    if not ok:
        with pytest.raises(ValueError):
            revisions.revision_name(app, "r1")


def test_traffic_split_names_both_revisions_and_sums_to_100():
    latest, stable = "classifier--r111111111111-aaaaaa", "classifier--r000000000000-bbbbbb"
    assert revisions.traffic_split(latest, 10, stable) == {stable: 90, latest: 10}
    assert revisions.traffic_split(latest, 0, stable) == {stable: 100, latest: 0}
    assert revisions.traffic_split(latest, 100, stable) == {latest: 100}  # promoted
    assert revisions.traffic_split(latest, 10, None) == {latest: 100}  # nothing to split with
    # Unchanged template: the stable revision is the latest one; a second entry would name it twice.
    assert revisions.traffic_split(stable, 10, stable) == {stable: 100}
    with pytest.raises(ValueError):
        revisions.traffic_split(latest, 101, stable)
