"""Which image URLs the service may fetch: URL parsing and the address checks against server-side request
forgery (OWASP "Server-Side Request Forgery Prevention Cheat Sheet", case 2: any public URL).

- ``parse_url``: only ``http``/``https``, no credentials, no whitespace/control characters/backslashes (where
  URL parsers disagree), the host in one canonical spelling: IDNA (UTS #46) to ASCII, lower case, no trailing
  dot, and a host that ends in a number parsed as IPv4 the way browsers do (WHATWG URL standard, "IPv4
  parser"), so ``2130706433``, ``0x7f000001``, ``0177.0.0.1`` and ``127.1`` all become ``127.0.0.1``.
- ``address_problem``: why an address may not be dialled (loopback, private, link-local, multicast,
  unspecified, reserved, cloud metadata, not globally routable), after unwrapping an IPv4 address embedded in
  IPv6 (IPv4-mapped ``::ffff:0:0/96``, IPv4-compatible ``::/96``, 6to4 ``2002::/16``, NAT64 ``64:ff9b::/96``
  and ``64:ff9b:1::/48``, Teredo).
- ``AllowList`` (``IMAGE_URL_ALLOWED_HOSTS``): host names, IP addresses or CIDRs that skip the address-class
  check; cloud metadata addresses are refused even then.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import idna

from service.errors import UrlRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SCHEMES = {"http": 80, "https": 443}
#: Longest URL accepted (characters): the de facto limit of browsers and CDNs (RFC 9110 section 4.1
#: recommends senders and recipients support at least 8000; image URLs are far shorter).
MAX_URL_LENGTH = 2048
#: Instance metadata and platform endpoints: AWS/GCP/Azure IMDS (IPv4 and AWS's IPv6), Azure's WireServer
#: (168.63.129.16, a public address that every Azure VM reaches), Alibaba Cloud and Oracle Cloud metadata.
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "fd00:ec2::254", "168.63.129.16", "100.100.100.200", "192.0.0.192"))
#: IPv6 prefixes whose last 32 bits are an IPv4 address (RFC 6052 NAT64 well-known and local-use prefixes).
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_FORBIDDEN_CHARS = re.compile(r"[\x00-\x20\x7f\\]")
_HOST_NAME = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)(\.(?!-)[a-z0-9_-]{1,63}(?<!-))*$")
_NUMBER = re.compile(r"^(0[xX][0-9a-fA-F]*|[0-9]+)$")
#: Characters of a request target left as they are (RFC 3986 unreserved, sub-delims, ":@/?" and "%").
_TARGET_SAFE = "/?:@!$&'()*+,;=%-._~"


@dataclass(frozen=True)
class Target:
    """One URL to fetch: ``host`` is canonical (ASCII lower-case name, or ``address`` for an IP literal),
    ``target`` the path and query sent in the request line."""

    url: str
    scheme: str
    host: str
    port: int
    target: str
    address: IPAddress | None

    @property
    def host_header(self) -> str:
        """The ``Host`` header: ``host``, ``[v6]`` for IPv6, ``:port`` unless the scheme's default."""
        host = f"[{self.host}]" if isinstance(self.address, ipaddress.IPv6Address) else self.host
        return host if self.port == SCHEMES[self.scheme] else f"{host}:{self.port}"


def parse_url(url: str) -> Target:
    """Parse and canonicalise ``url``; raises ``UrlRefused`` (400) naming what is not allowed."""
    if len(url) > MAX_URL_LENGTH:
        raise UrlRefused(f"URL is longer than {MAX_URL_LENGTH} characters")
    if _FORBIDDEN_CHARS.search(url):
        raise UrlRefused("URL contains whitespace, control characters or a backslash")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlRefused(f"malformed URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise UrlRefused(f"scheme {parts.scheme or '(none)'!r} is not allowed: use http or https")
    if "@" in parts.netloc:
        raise UrlRefused("credentials in the URL (user@host) are not allowed")
    if port == 0:
        raise UrlRefused("port 0 is not allowed")
    raw_host = parts.netloc.rsplit(":", 1)[0] if not parts.netloc.startswith("[") else parts.netloc
    host, address = canonical_host(raw_host)
    # Non-ASCII in the path or query is sent percent-encoded (UTF-8), as browsers do; "%" stays as given.
    target = quote((parts.path or "/") + (f"?{parts.query}" if parts.query else ""), safe=_TARGET_SAFE)
    return Target(url, scheme, host, port or SCHEMES[scheme], target, address)


def canonical_host(raw: str) -> tuple[str, IPAddress | None]:
    """``(host, address)`` of a URL's host part (``[v6]`` with brackets, or a name or IPv4 in any
    spelling); ``address`` is set for IP literals. Raises ``UrlRefused`` for an invalid host."""
    if raw.startswith("["):
        inside, _, rest = raw[1:].partition("]")
        if rest and not re.fullmatch(r":[0-9]*", rest):
            raise UrlRefused(f"invalid host {raw!r}")
        if "%" in inside:
            raise UrlRefused("IPv6 zone identifiers are not allowed")
        try:
            address = ipaddress.IPv6Address(inside)
        except ValueError:
            raise UrlRefused(f"invalid IPv6 address {inside!r}") from None
        return str(address), address
    host = raw
    if not host.isascii():
        try:  # UTS #46 maps full-width digits and dots too: "１２７。０。０。１" -> "127.0.0.1"
            host = idna.encode(host, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            raise UrlRefused(f"invalid international host name: {exc}") from None
    host = host.lower()
    if host.endswith("."):
        host = host[:-1]
    if not host:
        raise UrlRefused("URL has no host")
    if _NUMBER.match(host.rsplit(".", 1)[-1]):
        address = whatwg_ipv4(host)
        return str(address), address
    if len(host) > 253 or not _HOST_NAME.match(host):
        raise UrlRefused(f"invalid host name {host!r}")
    return host, None


def whatwg_ipv4(host: str) -> ipaddress.IPv4Address:
    """Parse a host that ends in a number as IPv4 (WHATWG URL standard, "IPv4 parser"): 1 to 4 parts,
    each decimal, ``0x`` hex or ``0``-prefixed octal; the last part fills the remaining bytes. Raises
    ``UrlRefused`` when it is not a valid IPv4 address (as browsers refuse such URLs)."""
    parts = host.split(".")
    numbers = []
    for part in parts:
        if len(parts) > 4 or not part:
            raise UrlRefused(f"invalid IPv4 address {host!r}")
        try:
            if part[:2].lower() == "0x":
                numbers.append(int(part[2:] or "0", 16))
            elif len(part) > 1 and part.startswith("0"):
                numbers.append(int(part[1:], 8))
            else:
                numbers.append(int(part, 10))
        except ValueError:
            raise UrlRefused(f"invalid IPv4 address {host!r}") from None
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(numbers)):
        raise UrlRefused(f"invalid IPv4 address {host!r}")
    value = last + sum(n << (8 * (3 - i)) for i, n in enumerate(head))
    return ipaddress.IPv4Address(value)


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, 6to4, NAT64, Teredo), else None."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped:
        return address.ipv4_mapped
    if address.sixtofour:
        return address.sixtofour
    if address.teredo:
        return address.teredo[1]  # the client's address (de-obfuscated by ipaddress)
    packed = int(address)
    if any(address in net for net in _NAT64) or (address in _IPV4_COMPATIBLE and packed > 1):
        return ipaddress.IPv4Address(packed & 0xFFFFFFFF)
    return None


def address_problem(address: IPAddress) -> str | None:
    """Why ``address`` may not be dialled, e.g. ``"loopback"``; None for a globally routable unicast
    address. An IPv6 address with an embedded IPv4 (``embedded_ipv4``) is judged by both."""
    if address in METADATA_ADDRESSES:
        return "cloud metadata"
    inner = embedded_ipv4(address)
    if inner is not None:
        problem = address_problem(inner)
        return f"{problem} (IPv4 {inner} inside IPv6)" if problem else None
    for name, flag in (("unspecified", address.is_unspecified), ("loopback", address.is_loopback),
                       ("link-local", address.is_link_local), ("multicast", address.is_multicast),
                       ("reserved", address.is_reserved), ("private", address.is_private)):
        if flag:
            return name
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "site-local"
    return None if address.is_global else "not globally routable"


@dataclass(frozen=True)
class AllowList:
    """``IMAGE_URL_ALLOWED_HOSTS``: host names (exact, canonical) and networks whose addresses skip the
    address-class check (never the metadata check)."""

    names: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, entries: list[str]) -> AllowList:
        """From ``["images.internal", "10.1.2.3", "fd00::/8"]``; raises ``ValueError`` naming a bad entry."""
        names, networks = set(), []
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            try:
                host, address = canonical_host(entry)
            except UrlRefused as exc:
                raise ValueError(f"{entry!r} is not a host name, IP address or CIDR: {exc.message}") from None
            if address is not None:
                networks.append(ipaddress.ip_network(address))
            else:
                names.add(host)
        return cls(frozenset(names), tuple(networks))

    def allows(self, target: Target, address: IPAddress) -> bool:
        """Whether ``address`` (one that ``target``'s host resolved to) is allowed by this list."""
        if target.host in self.names:
            return True
        candidates = [address] + ([inner] if (inner := embedded_ipv4(address)) else [])
        return any(a.version == net.version and a in net for a in candidates for net in self.networks)


def check_address(target: Target, address: IPAddress, allowed: AllowList) -> None:
    """Raise ``UrlRefused`` (400) when ``target`` may not be fetched from ``address``."""
    if address in METADATA_ADDRESSES or embedded_ipv4(address) in METADATA_ADDRESSES:
        raise UrlRefused(f"host {target.host!r} is {address}: a cloud metadata address")
    if allowed.allows(target, address):
        return
    problem = address_problem(address)
    if problem:
        shown = target.host if target.address is not None else f"{target.host!r} resolves to {address}"
        raise UrlRefused(f"{shown}: a {problem} address; only public addresses are fetched unless "
                         "IMAGE_URL_ALLOWED_HOSTS names the host")
