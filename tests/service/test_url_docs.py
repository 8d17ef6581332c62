"""docs/url-input.md states figures and names that come from the code: derive them and assert its text."""

from __future__ import annotations

from pathlib import Path

import pytest

from service import errors
from service.settings import Settings
from service.url_policy import MAX_URL_LENGTH, METADATA_ADDRESSES
from tests.service.test_url_fetch import HOSTILE

DOC = (Path(__file__).resolve().parents[2] / "docs" / "url-input.md").read_text()


@pytest.mark.parametrize("name", ["image_url_fetch", "image_url_timeout_s", "image_url_max_redirects",
                                  "max_body_bytes"])
def test_defaults_are_the_settings(name):
    default = Settings.model_fields[name].default
    if isinstance(default, bool):
        shown = str(default).lower()
    else:
        shown = f"{default:g}" if isinstance(default, float) else str(default)
    assert f"| `{name.upper()}` | `{shown}` |" in DOC


def test_every_metadata_address_is_named():
    for address in METADATA_ADDRESSES:
        assert f"`{address}`" in DOC


def test_limits_and_test_counts():
    assert f"at most {MAX_URL_LENGTH} characters" in DOC
    assert f"each hostile spelling above ({len(HOSTILE)} URLs," in DOC


@pytest.mark.parametrize("error", [errors.UrlRefused, errors.UrlFetchFailed, errors.UrlFetchTimeout,
                                   errors.UrlInputDisabled, errors.PayloadTooLarge,
                                   errors.UnsupportedMediaType])
def test_error_table_matches_the_classes(error):
    assert f"| {int(error.status_code)} | `{error.code}` |" in DOC
