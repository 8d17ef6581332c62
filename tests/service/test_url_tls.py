"""HTTPS image URLs: the fetcher dials the checked address yet does TLS for the URL's host name (SNI and
certificate verification), so pinning the address does not weaken HTTPS. A throwaway CA (trustme)."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl

import pytest
import trustme

from service.errors import UrlFetchFailed
from service.url_fetch import UrlFetcher
from service.url_policy import AllowList
from tests.service.loopback import ImageServer

NAME = "images.test"


async def resolve(host: str, port: int):
    assert host == NAME
    return [ipaddress.ip_address("127.0.0.1")]


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _server(ca: trustme.CA, jpeg: bytes, cert_name: str) -> ImageServer:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(cert_name).configure_cert(context)
    return ImageServer(jpeg, big=1_000_000, tls=context)


def _fetcher(ca: trustme.CA) -> UrlFetcher:
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return UrlFetcher(AllowList.parse([NAME]), max_bytes=1_000_000, timeout_s=5, max_redirects=0,
                      resolver=resolve, ssl_context=client)


def test_https_to_the_checked_address_verifies_the_host_name(ca, jpeg):
    with _server(ca, jpeg, NAME) as server:
        data = asyncio.run(_fetcher(ca).fetch(f"https://{NAME}:{server.port}/photo.jpg"))
        assert data == jpeg
        assert server.server_names == [NAME]  # SNI is the host name, not 127.0.0.1
        assert server.requests == [("/photo.jpg", f"{NAME}:{server.port}")]


def test_a_certificate_for_another_name_is_refused(ca, jpeg):
    with _server(ca, jpeg, "other.test") as server:
        with pytest.raises(UrlFetchFailed, match="could not connect"):
            asyncio.run(_fetcher(ca).fetch(f"https://{NAME}:{server.port}/photo.jpg"))
        assert server.requests == []  # no request was sent over the unverified connection
