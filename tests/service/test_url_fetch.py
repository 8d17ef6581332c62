"""``UrlFetcher`` against loopback servers: a photo from an allowed host, the checked address dialled
(one lookup), every hostile spelling and redirect refused with no connection made, byte, type and time
limits. Threat model: OWASP Server-Side Request Forgery Prevention Cheat Sheet."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time

import httpcore
import pytest

from service.errors import PayloadTooLarge, UnsupportedMediaType, UrlFetchFailed, UrlFetchTimeout, UrlRefused
from service.url_fetch import UrlFetcher, system_resolver
from service.url_policy import AllowList
from tests.service.loopback import ImageServer, Listener

MAX_BYTES = 200_000
ALLOWED_NAME = "images.test"  # resolved by the tests' resolver only (.test is reserved, RFC 6761)


class CountingBackend(httpcore.AnyIOBackend):
    """The real backend, recording every address dialled."""

    def __init__(self) -> None:
        self.dialled: list[str] = []

    async def connect_tcp(self, host, port, **kwargs):
        self.dialled.append(host)
        return await super().connect_tcp(host, port, **kwargs)


class Resolver:
    """``images.test`` -> the ``answers`` in turn (a rebinding DNS server), anything else -> the system's."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = [[ipaddress.ip_address(a) for a in answer] for answer in answers]
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int):
        self.calls.append((host, port))
        if host == ALLOWED_NAME:
            return self.answers[min(len(self.calls), len(self.answers)) - 1]
        return await system_resolver(host, port)


@pytest.fixture(scope="module")
def server(jpeg):
    with ImageServer(jpeg, big=MAX_BYTES + 100_000) as image_server:
        yield image_server


@pytest.fixture
def listener():
    spy = Listener()
    yield spy
    spy.close()


@pytest.fixture
def backend() -> CountingBackend:
    return CountingBackend()


def make(backend, resolver=None, allowed=(ALLOWED_NAME,), timeout_s=5.0, redirects=3) -> UrlFetcher:
    return UrlFetcher(AllowList.parse(list(allowed)), max_bytes=MAX_BYTES, timeout_s=timeout_s,
                      max_redirects=redirects, resolver=resolver or Resolver(["127.0.0.1"]), backend=backend)


def fetch(fetcher: UrlFetcher, url: str) -> bytes:
    return asyncio.run(fetcher.fetch(url))


def test_photo_from_an_allowed_host_dials_the_checked_address_once(server, backend, jpeg, monkeypatch):
    looked_up = []
    real = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo",
                        lambda host, *a, **k: looked_up.append(host) or real(host, *a, **k))
    # A rebinding DNS server: the second answer would be an internal address.
    resolver = Resolver(["127.0.0.1"], ["10.0.0.1"])
    url = f"http://{ALLOWED_NAME}:{server.port}/photo.jpg"
    assert fetch(make(backend, resolver), url) == jpeg
    assert resolver.calls == [(ALLOWED_NAME, server.port)]  # one lookup
    assert backend.dialled == ["127.0.0.1"]  # the checked address, not a new lookup
    assert ALLOWED_NAME not in looked_up  # no lookup below the fetcher either
    assert server.requests[-1] == ("/photo.jpg", f"{ALLOWED_NAME}:{server.port}")  # original Host header


HOSTILE = [
    # (URL, reason in the message); {port} is a listener on 127.0.0.1 that must see no connection.
    ("http://127.0.0.1:{port}/", "loopback"),
    ("http://2130706433:{port}/", "loopback"),  # decimal
    ("http://0x7f000001:{port}/", "loopback"),  # hex
    ("http://0177.0.0.1:{port}/", "loopback"),  # octal
    ("http://0x7f.0.0.1:{port}/", "loopback"),
    ("http://127.1:{port}/", "loopback"),  # short form
    ("http://0177.1:{port}/", "loopback"),
    ("http://127.0.0.1.:{port}/", "loopback"),  # trailing dot
    ("http://\uff11\uff12\uff17\u3002\uff10\u3002\uff10\u3002\uff11:{port}/", "loopback"),  # full-width
    ("http://\u2460\u2461\u2466.0.0.1:{port}/", "loopback"),  # circled digits (IDNA maps them)
    ("http://localhost:{port}/", "loopback"),  # a name that resolves to loopback
    ("http://LocalHost.:{port}/", "loopback"),
    ("http://[::1]:{port}/", "loopback"),
    ("http://[::ffff:127.0.0.1]:{port}/", "loopback"),  # IPv4-mapped IPv6
    ("http://[::ffff:7f00:1]:{port}/", "loopback"),
    ("http://[0:0:0:0:0:ffff:127.0.0.1]:{port}/", "loopback"),
    ("http://[::127.0.0.1]:{port}/", "loopback"),  # IPv4-compatible IPv6
    ("http://[64:ff9b::127.0.0.1]:{port}/", "loopback"),  # NAT64
    ("http://[2002:7f00:1::]:{port}/", "loopback"),  # 6to4
    ("http://0:{port}/", "unspecified"),  # 0.0.0.0: Linux delivers it to the loopback interface
    ("http://0.0.0.0:{port}/", "unspecified"),
    ("http://[::]:{port}/", "unspecified"),
    ("http://169.254.169.254/latest/meta-data/", "metadata"),
    ("http://0xa9fea9fe/metadata/instance", "metadata"),  # 169.254.169.254 in hex
    ("http://[::ffff:169.254.169.254]/", "metadata"),
    ("http://[fd00:ec2::254]/latest/meta-data/", "metadata"),
    ("http://168.63.129.16/machine?comp=goalstate", "metadata"),  # Azure WireServer
    ("http://10.0.0.1/", "private"),
    ("http://172.16.0.1/", "private"),
    ("http://192.168.1.1/", "private"),
    ("http://[fc00::1]/", "private"),
    ("http://100.64.0.1/", "not globally routable"),  # carrier-grade NAT (RFC 6598)
    ("http://169.254.1.1/", "link-local"),
    ("http://[fe80::1]/", "link-local"),
    ("http://224.0.0.1/", "multicast"),
    ("http://[ff02::1]/", "multicast"),
    ("http://240.0.0.1/", "reserved"),
    ("file:///etc/passwd", "scheme"),
    ("gopher://127.0.0.1:{port}/_", "scheme"),
    ("ftp://127.0.0.1:{port}/", "scheme"),
    ("data:image/png;base64,iVBORw0KGgo=", "scheme"),
    ("//127.0.0.1:{port}/", "scheme"),
    ("http://images.test@127.0.0.1:{port}/", "credentials"),
    ("http://127.0.0.1:{port}\\@images.test/", "backslash"),
    ("http://images.test:{port}/\r\nX-Injected: 1", "control characters"),
    ("http://[fe80::1%25lo]:{port}/", "zone"),
    ("http://[::ffff:127.0.0.1]images.test:{port}/", "invalid host"),
    ("http://256.0.0.1:{port}/", "invalid IPv4"),
    ("http://1.2.3.4.5:{port}/", "invalid IPv4"),
    ("http://%31%32%37.0.0.1:{port}/", "invalid IPv4"),  # percent-encoded host: refused, never decoded
    ("http://%6c%6fcalhost:{port}/", "invalid host name"),
]


@pytest.mark.parametrize(("template", "reason"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_url_is_refused_with_no_connection(template, reason, listener, backend):
    with pytest.raises(UrlRefused, match=reason):
        fetch(make(backend), template.format(port=listener.port))
    assert backend.dialled == []
    assert listener.connections() == 0


def test_the_listener_does_see_a_connection(listener):
    """The spy of the test above can fail: a real connection is counted."""
    socket.create_connection(("127.0.0.1", listener.port), timeout=5).close()
    assert listener.connections() == 1


def test_an_allowed_name_never_reaches_a_metadata_address(backend):
    resolver = Resolver(["169.254.169.254"])  # the allowed name's DNS answers the metadata address
    with pytest.raises(UrlRefused, match="cloud metadata"):
        fetch(make(backend, resolver), f"http://{ALLOWED_NAME}/latest/meta-data/")
    assert backend.dialled == []


def test_one_refused_address_refuses_the_host(backend, listener):
    resolver = Resolver(["8.8.8.8", "127.0.0.1"])  # a public and an internal answer
    with pytest.raises(UrlRefused, match=r"resolves to 127\.0\.0\.1: a loopback"):
        fetch(make(backend, resolver, allowed=()), f"http://{ALLOWED_NAME}:{listener.port}/")
    assert backend.dialled == [] and listener.connections() == 0


@pytest.mark.parametrize(("location", "reason"), [
    ("http://127.0.0.1:{port}/", "loopback"),
    ("http://2130706433:{port}/", "loopback"),
    ("http://[::ffff:127.0.0.1]:{port}/", "loopback"),
    ("http://169.254.169.254/latest/meta-data/", "metadata"),
    ("file:///etc/passwd", "scheme"),
])
def test_redirect_from_an_allowed_host_to_a_refused_one_is_refused(server, backend, listener, location,
                                                                   reason):
    target = location.format(port=listener.port)
    url = f"http://{ALLOWED_NAME}:{server.port}/redirect?to={target}"
    with pytest.raises(UrlRefused, match=reason):
        fetch(make(backend), url)
    assert server.requests[-1][0].startswith("/redirect")  # the allowed hop was fetched
    assert backend.dialled == ["127.0.0.1"]  # only the allowed server
    assert listener.connections() == 0


def test_a_non_ascii_path_is_sent_percent_encoded(server, backend):
    with pytest.raises(UrlFetchFailed, match="HTTP 404"):
        fetch(make(backend), f"http://{ALLOWED_NAME}:{server.port}/caf\u00e9.jpg?q=\u00fc")
    assert server.requests[-1][0] == "/caf%C3%A9.jpg?q=%C3%BC"


def test_redirects_are_followed_up_to_the_limit(server, backend, jpeg):
    base = f"http://{ALLOWED_NAME}:{server.port}"
    assert fetch(make(backend, redirects=3), f"{base}/chain/2") == jpeg  # 3 redirects: 2, 1, 0 -> photo
    with pytest.raises(UrlRefused, match="more than 3 redirects"):
        fetch(make(backend, redirects=3), f"{base}/chain/3")
    with pytest.raises(UrlRefused, match="more than 0 redirects"):
        fetch(make(backend, redirects=0), f"{base}/chain/0")


@pytest.mark.parametrize("path", ["/declared-big", "/streamed-big"])
def test_a_body_over_max_body_bytes_is_refused(server, backend, path):
    with pytest.raises(PayloadTooLarge, match=f"over the {MAX_BYTES}-byte limit"):
        fetch(make(backend), f"http://{ALLOWED_NAME}:{server.port}{path}")


def test_only_image_content_types_are_accepted(server, backend):
    with pytest.raises(UnsupportedMediaType, match="'text/html', not image"):
        fetch(make(backend), f"http://{ALLOWED_NAME}:{server.port}/html")


def test_an_http_error_or_no_server_fails_cleanly(server, backend, listener):
    with pytest.raises(UrlFetchFailed, match="HTTP 404"):
        fetch(make(backend), f"http://{ALLOWED_NAME}:{server.port}/missing")
    closed = Listener()
    port = closed.port
    closed.close()  # nothing listens there now
    with pytest.raises(UrlFetchFailed, match="could not connect"):
        fetch(make(backend), f"http://{ALLOWED_NAME}:{port}/photo.jpg")

    async def unknown(host, port):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    with pytest.raises(UrlFetchFailed, match="did not resolve"):
        fetch(make(backend, unknown), f"http://{ALLOWED_NAME}:{server.port}/photo.jpg")


def test_a_stalled_server_times_out(server, backend):
    server.release.clear()
    server.stalled.clear()
    started = time.monotonic()
    try:
        with pytest.raises(UrlFetchTimeout, match=r"over 0\.5 s"):
            fetch(make(backend, timeout_s=0.5), f"http://{ALLOWED_NAME}:{server.port}/stall")
        assert server.stalled.is_set()  # the server really held the body back
        assert time.monotonic() - started < 15  # ended by the fetcher, not by the server's 30 s bound
    finally:
        server.release.set()
