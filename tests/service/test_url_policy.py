"""service.url_policy on any input (hypothesis): a URL is either refused with UrlRefused (a 400) or parsed
into a target whose parts are safe to put on the wire; never another exception (a 500)."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from service.url_policy import SCHEMES, UrlRefused, parse_url

_HOSTISH = st.text(alphabet=st.sampled_from("0123456789abcdefxX.:[]%@-_\\/ \uff10\u3002\u2460\u00e9"),
                   max_size=30)


@settings(max_examples=400, deadline=None)
@given(scheme=st.sampled_from(["http", "https", "HTTP", "ftp", ""]), host=_HOSTISH,
       rest=st.text(max_size=20))
def test_any_url_is_parsed_or_refused(scheme, host, rest):
    try:
        target = parse_url(f"{scheme}://{host}/{rest}")
    except UrlRefused:
        return
    assert target.scheme in SCHEMES and 0 < target.port < 65536
    assert target.target.isascii() and not re.search(r"[\x00-\x20\x7f]", target.target)
    assert re.fullmatch(r"[a-z0-9._:\[\]-]+", target.host_header)  # nothing that could split a header
    assert parse_url(f"{target.scheme}://{target.host_header}{target.target}").host == target.host
