"""``UrlFetcher``: download the image a ``{"url": ...}`` request names, dialling only checked addresses.

Each hop (the URL, then at most ``IMAGE_URL_MAX_REDIRECTS`` redirects):
1. ``service.url_policy.parse_url`` canonicalises the URL and refuses what is not ``http``/``https``;
2. the host is resolved once (``getaddrinfo``; IP literals are not looked up) and every address is
   checked (``check_address``): one refused address refuses the URL, before any connection;
3. the request goes to a checked address: httpcore's connection pool is given a network backend
   (``PinnedBackend``) that dials that address for the URL's host, so there is no second lookup for DNS
   rebinding to change, while the ``Host`` header and TLS (SNI, certificate name) still use the host name;
4. a redirect's ``Location`` starts the next hop; any other status than 200 fails.
The body must be ``image/*``, at most ``MAX_BODY_BYTES`` (a larger ``Content-Length`` is refused before
reading, a longer stream is cut when it crosses the limit), and the whole fetch ends after
``IMAGE_URL_TIMEOUT_S``. No proxy variables and no cookies are used; ``Accept-Encoding: identity`` keeps
the bytes as sent (no decompression bomb).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable
from urllib.parse import urljoin

import httpcore

from service import __version__
from service.errors import PayloadTooLarge, UnsupportedMediaType, UrlFetchFailed, UrlFetchTimeout, UrlRefused
from service.settings import Settings
from service.url_policy import AllowList, IPAddress, Target, check_address, parse_url

#: ``host, port -> addresses``: the one lookup of a hop (injectable for tests).
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]
REDIRECTS = frozenset({301, 302, 303, 307, 308})
USER_AGENT = f"aks-image-classifier/{__version__} (image URL fetch)".encode()


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """The addresses ``getaddrinfo`` gives for ``host`` (TCP), duplicates dropped, order kept."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: dict[IPAddress, None] = {}
    for *_, sockaddr in infos:
        seen.setdefault(ipaddress.ip_address(sockaddr[0].split("%", 1)[0]), None)
    return list(seen)


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """httpcore network backend that connects ``host:port`` to one checked ``address`` only; any other
    destination is a ``ConnectError`` (the pool never dials what was not checked)."""

    def __init__(self, target: Target, address: IPAddress,
                 inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self.target, self.address = target, address
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options=None) -> httpcore.AsyncNetworkStream:
        if (host, port) != (self.target.host, self.target.port):
            raise httpcore.ConnectError(f"{host}:{port} was not checked")
        return await self.inner.connect_tcp(str(self.address), port, timeout=timeout,
                                            local_address=local_address, socket_options=socket_options)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options=None) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are never dialled")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class UrlFetcher:
    """Fetch image bytes by URL under the settings' policy (module docstring).

    ``resolver`` and ``backend`` (the backend ``PinnedBackend`` wraps) and ``ssl_context`` (default:
    httpcore's, certifi's CA bundle) are injectable for tests.
    """

    def __init__(self, allowed: AllowList, *, max_bytes: int, timeout_s: float, max_redirects: int,
                 resolver: Resolver = system_resolver, backend: httpcore.AsyncNetworkBackend | None = None,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.allowed, self.max_bytes, self.timeout_s = allowed, max_bytes, timeout_s
        self.max_redirects, self.resolver = max_redirects, resolver
        self.backend, self.ssl_context = backend, ssl_context

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs) -> UrlFetcher:
        """From ``IMAGE_URL_ALLOWED_HOSTS``, ``MAX_BODY_BYTES``, ``IMAGE_URL_TIMEOUT_S`` and
        ``IMAGE_URL_MAX_REDIRECTS``."""
        return cls(AllowList.parse(settings.image_url_allowed_hosts), max_bytes=settings.max_body_bytes,
                   timeout_s=settings.image_url_timeout_s, max_redirects=settings.image_url_max_redirects,
                   **kwargs)

    async def fetch(self, url: str) -> bytes:
        """The image bytes at ``url``. Raises ``UrlRefused`` (400), ``UrlFetchFailed`` (422),
        ``PayloadTooLarge`` (413), ``UnsupportedMediaType`` (415), ``UrlFetchTimeout`` (504)."""
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._follow(url)
        except (TimeoutError, httpcore.TimeoutException):
            raise UrlFetchTimeout(f"fetching the image URL took over {self.timeout_s:g} s "
                                  "(IMAGE_URL_TIMEOUT_S)") from None

    async def _follow(self, url: str) -> bytes:
        for _hop in range(self.max_redirects + 1):
            target = parse_url(url)
            addresses = await self._checked_addresses(target)
            location = None
            for i, address in enumerate(addresses):
                try:
                    result = await self._get(target, address)
                except httpcore.ConnectError:
                    if i == len(addresses) - 1:
                        raise UrlFetchFailed(f"could not connect to {target.host_header}") from None
                    continue
                if isinstance(result, bytes):
                    return result
                location = result
                break
            url = urljoin(target.url, location)
        raise UrlRefused(f"more than {self.max_redirects} redirects (IMAGE_URL_MAX_REDIRECTS)")

    async def _checked_addresses(self, target: Target) -> list[IPAddress]:
        """The hop's one lookup, every address checked (``UrlRefused`` if any is refused)."""
        if target.address is not None:
            addresses = [target.address]
        else:
            try:
                addresses = await self.resolver(target.host, target.port)
            except OSError:
                raise UrlFetchFailed(f"host {target.host!r} did not resolve") from None
            if not addresses:
                raise UrlFetchFailed(f"host {target.host!r} has no address")
        for address in addresses:
            check_address(target, address, self.allowed)
        return addresses

    async def _get(self, target: Target, address: IPAddress) -> bytes | str:
        """GET ``target`` from ``address``: the body, or a redirect's ``Location``."""
        per_operation = {name: self.timeout_s for name in ("connect", "read", "write", "pool")}
        url = httpcore.URL(scheme=target.scheme, host=target.host, port=target.port, target=target.target)
        headers = [(b"Host", target.host_header.encode()), (b"User-Agent", USER_AGENT),
                   (b"Accept", b"image/*"), (b"Accept-Encoding", b"identity")]
        async with httpcore.AsyncConnectionPool(
                ssl_context=self.ssl_context, network_backend=PinnedBackend(target, address, self.backend),
                max_connections=1, retries=0) as pool:
            try:
                async with pool.stream("GET", url, headers=headers,
                                       extensions={"timeout": per_operation}) as response:
                    return await self._read(target, response)
            except (httpcore.ConnectError, httpcore.TimeoutException):
                raise
            except httpcore.NetworkError as exc:
                raise UrlFetchFailed(f"{target.host_header}: connection failed "
                                     f"({type(exc).__name__})") from None
            except httpcore.ProtocolError as exc:
                raise UrlFetchFailed(f"{target.host_header}: invalid HTTP response ({exc})") from None

    async def _read(self, target: Target, response: httpcore.Response) -> bytes | str:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in response.headers}
        if response.status in REDIRECTS:
            if "location" not in headers:
                raise UrlFetchFailed(f"HTTP {response.status} redirect without a Location header")
            return headers["location"]
        if response.status != 200:
            raise UrlFetchFailed(f"the image URL answered HTTP {response.status}")
        media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if not media_type.startswith("image/"):
            raise UnsupportedMediaType(f"the image URL's Content-Type is {media_type or '(none)'!r}, "
                                       "not image/*")
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise PayloadTooLarge(f"the image URL's body is {declared} bytes, over the {self.max_bytes}-byte "
                                  "limit (MAX_BODY_BYTES)")
        chunks, size = [], 0
        async for chunk in response.aiter_stream():
            size += len(chunk)
            if size > self.max_bytes:
                raise PayloadTooLarge(f"the image URL's body is over the {self.max_bytes}-byte limit "
                                      "(MAX_BODY_BYTES)")
            chunks.append(chunk)
        if not size:
            raise UrlFetchFailed("the image URL's body is empty")
        return b"".join(chunks)
