"""The one HTTP client for agents that call URLs a task template names (the webhook agent, and any other).

A template's author chooses the URL, and the agent adds its secrets to the request: without care, a
template could send them anywhere, or make the agent call what only its network can reach (the instance
metadata service, a database on a private subnet). So a call goes through two steps:

1. `OutboundClient.destination(url)` parses the URL once, strictly, refusing what parsers disagree on
   (user info, backslashes, control characters, odd IPv4 spellings such as `2130706433` or `0x7f.1`,
   IPv6 zone ids), checks the host against `allowed_hosts`, resolves it once and checks every address it
   resolves to: loopback, link-local (169.254.169.254), private, shared, multicast, reserved, unspecified
   and cloud metadata addresses (IPv4, IPv6, and IPv4 inside IPv6) are refused unless the manifest lists
   their network in `allow_private_networks`.
2. `OutboundClient.send(destination, ...)` connects to one of those checked addresses, never resolving
   the name again, with the request built from the parsed parts (the Host header, TLS SNI and certificate
   check use the host name). Redirects are not followed: a 3xx is the answer. The body read is bounded
   in size, and the whole call in time.

The caller fills in secrets between the two steps, after the destination passed. Errors are one line:
`DestinationRefused` (a bad or forbidden URL: the task cannot succeed) names the field, and
`DestinationUnavailable` (no answer: may pass) says what failed; neither quotes the URL, its path or
query, nor a header.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import ipaddress
import re
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from serverless_agents.exceptions import DestinationRefused, DestinationUnavailable, ManifestError
from serverless_agents.masking import excerpt

if TYPE_CHECKING:
    import ssl

    import urllib3

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: (host name, port) -> the addresses it resolves to.
Resolver = Callable[[str, int], Sequence[str]]

MAX_URL = 8192
MAX_BODY = 1024 * 1024
DEFAULT_PORTS = {"http": 80, "https": 443}
#: Where cloud platforms answer with credentials: AWS IMDS and ECS / EKS credential endpoints.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "169.254.170.23", "fd00:ec2::254", "fd00:ec2::23")
)
_SHARED = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_PORT = re.compile(r"[0-9]{1,5}")
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_DOTTED_QUAD = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
#: A last label that makes a host an IPv4 address to URL parsers and to inet_aton (WHATWG URL, "ends in
#: a number"): decimal, octal or hex.
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")
#: Characters sent as they are in a request target; others (space, non-ASCII, quotes) are %-encoded.
_TARGET_SAFE = "/?&=%:@!$'()*+,;~-._[]"


@dataclass(frozen=True)
class Destination:
    """Where a request goes, as checked: connect only to `addresses`."""

    scheme: str
    #: Lowercase host name, or the IP address (IPv6 without brackets).
    host: str
    port: int
    #: The request target: path and query, %-encoded where needed.
    target: str
    addresses: tuple[str, ...]

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    def with_query(self, fields: Mapping[str, str]) -> Destination:
        """The same destination with `fields` added to the query string."""
        if not fields:
            return self
        separator = "&" if "?" in self.target else "?"
        return dataclasses.replace(self, target=f"{self.target}{separator}{urlencode(fields)}")


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    #: At most the client's `max_bytes`.
    body: bytes
    truncated: bool


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class OutboundClient:
    """Guarded HTTP calls; one per agent instance (its connection pools live as long as the container)."""

    def __init__(
        self,
        allowed_hosts: Sequence[str] | None = None,
        allowed_networks: Sequence[IPNetwork] = (),
        resolver: Resolver = system_resolver,
        max_bytes: int = MAX_BODY,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.allowed_hosts = [_pattern(p) for p in allowed_hosts] if allowed_hosts else None
        self.allowed_networks = tuple(allowed_networks)
        self.resolver = resolver
        self.max_bytes = max_bytes
        #: The certificates trusted for https (a private CA); by default the system's.
        self.tls_context = tls_context
        self._pools: urllib3.PoolManager | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any], resolver: Resolver = system_resolver) -> OutboundClient:
        """From an agent's manifest `config`: `allowed_hosts` and `allow_private_networks`."""
        hosts = config.get("allowed_hosts")
        if hosts is not None and not (isinstance(hosts, list) and all(isinstance(h, str) for h in hosts)):
            raise ManifestError("config.allowed_hosts: a list of host names (`*.example.com` for subdomains)")
        networks = config.get("allow_private_networks") or []
        if not (isinstance(networks, list) and all(isinstance(n, str) for n in networks)):
            raise ManifestError(
                "config.allow_private_networks: a list of networks (`10.1.0.0/16`) or addresses"
            )
        try:
            parsed = [ipaddress.ip_network(n.strip("[]"), strict=False) for n in networks]
        except ValueError as e:
            raise ManifestError(f"config.allow_private_networks: {e}") from None
        return cls(hosts, parsed, resolver)

    def destination(self, url: str, field: str = "url") -> Destination:
        """Parse and check `url`; raises DestinationRefused or, when the name does not resolve,
        DestinationUnavailable. Nothing is sent."""
        scheme, host, port, target = _parse(url, field)
        self._check_host(host, field)
        if _ip(host) is not None:
            addresses = [host]
        else:
            try:
                addresses = list(self.resolver(host, port))
            except (OSError, UnicodeError) as e:
                raise DestinationUnavailable(f"cannot resolve {host!r}: {_reason(e)}") from None
            if not addresses:
                raise DestinationUnavailable(f"cannot resolve {host!r}: no address")
        for address in addresses:
            self._check_address(host, address, field)
        return Destination(scheme, host, port, target, tuple(addresses))

    def send(
        self,
        destination: Destination,
        method: str,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout: float,
    ) -> Answer:
        """One request to one of the destination's addresses (the next one if connecting fails)."""
        import urllib3

        # A Destination is a plain value: whoever built it, only what passes the checks is called.
        self._check_host(destination.host, "url")
        for address in destination.addresses:
            self._check_address(destination.host, address, "url")
        headers = {k: v for k, v in headers.items() if k.lower() != "host"}
        headers["Host"] = destination.host_header
        deadline = time.monotonic() + timeout
        failure = ""
        for address in destination.addresses:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            pool = self._pool(destination, address)
            try:
                response = pool.urlopen(
                    method,
                    destination.target,
                    body=body,
                    headers=headers,
                    redirect=False,
                    retries=False,
                    assert_same_host=False,
                    timeout=urllib3.Timeout(total=remaining),
                    preload_content=False,
                )
            except urllib3.exceptions.NewConnectionError as e:
                failure = f"cannot connect to {destination.host} ({address}): {_reason(e)}"
                continue  # nothing was sent: the next address may answer
            except urllib3.exceptions.TimeoutError:
                raise DestinationUnavailable(f"no answer within {timeout:g} s") from None
            except urllib3.exceptions.HTTPError as e:
                raise DestinationUnavailable(f"cannot connect to {destination.host}: {_reason(e)}") from None
            return self._read(response, deadline, timeout)
        raise DestinationUnavailable(failure or f"no answer within {timeout:g} s")

    def _read(self, response: urllib3.BaseHTTPResponse, deadline: float, timeout: float) -> Answer:
        import urllib3

        chunks: list[bytes] = []
        size = 0
        complete = False
        try:
            while size <= self.max_bytes:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise DestinationUnavailable(f"no answer within {timeout:g} s")
                # A server sending a byte at a time must not stretch the call past its deadline.
                sock = getattr(getattr(response, "connection", None), "sock", None)
                if sock is not None:
                    sock.settimeout(remaining)
                chunk = response.read1(min(64 * 1024, self.max_bytes + 1 - size))
                if not chunk:
                    complete = True
                    break
                chunks.append(chunk)
                size += len(chunk)
        except urllib3.exceptions.TimeoutError:
            raise DestinationUnavailable(f"no answer within {timeout:g} s") from None
        except urllib3.exceptions.HTTPError as e:
            raise DestinationUnavailable(f"the answer was cut off: {_reason(e)}") from None
        finally:
            if not complete:
                response.close()  # unread bytes left: this connection cannot serve another request
            response.release_conn()
        content = b"".join(chunks)
        return Answer(response.status, response.headers, content[: self.max_bytes], not complete)

    def _pool(self, destination: Destination, address: str) -> urllib3.HTTPConnectionPool:
        import urllib3

        if self._pools is None:
            self._pools = urllib3.PoolManager(retries=False, num_pools=32)
        # The socket goes to the checked address; TLS still verifies the certificate for the host name.
        tls: dict[str, Any] = {"server_hostname": destination.host, "assert_hostname": destination.host}
        if self.tls_context is not None:
            tls["ssl_context"] = self.tls_context
        return self._pools.connection_from_host(
            address,
            destination.port,
            destination.scheme,
            pool_kwargs=tls if destination.scheme == "https" else None,
        )

    def _check_host(self, host: str, field: str) -> None:
        if self.allowed_hosts is not None and not any(_matches(host, p) for p in self.allowed_hosts):
            raise DestinationRefused(field, f"host {host!r} is not in this agent's allowed_hosts")

    def _check_address(self, host: str, address: str, field: str) -> None:
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            raise DestinationUnavailable(f"cannot resolve {host!r}: not an address: {address!r}") from None
        kind = non_public_kind(ip)
        if kind is None or any(_in(ip, net) for net in self.allowed_networks):
            return
        where = f"{host} is" if host == address else f"host {host!r} resolves to {ip}, which is"
        raise DestinationRefused(
            field,
            f"{where} a {kind} address; an agent calls one only if config.allow_private_networks lists it",
        )


def non_public_kind(ip: IPAddress) -> str | None:
    """What kind of non-public address `ip` is ("loopback", "cloud metadata", ...), None if public."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = [ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())]
        if ip in _NAT64:
            embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        for v4 in embedded:
            if v4 is not None and (kind := non_public_kind(v4)):
                return kind
        if ip.ipv4_mapped is not None:
            return None
    checks = (
        (ip in METADATA_ADDRESSES, "cloud metadata"),
        (ip.is_unspecified, "unspecified"),
        (ip.is_loopback, "loopback"),
        (ip.is_link_local, "link-local"),
        (ip.is_multicast, "multicast"),
        (isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED, "shared (carrier-grade NAT)"),
        (ip.is_private, "private"),
        (ip.is_reserved, "reserved"),
        (not ip.is_global, "non-public"),
    )
    return next((kind for hit, kind in checks if hit), None)


def _in(ip: IPAddress, network: IPNetwork) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.version == network.version and ip in network


def _parse(url: str, field: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, request target); every refusal names `field` and never quotes the URL."""

    def refuse(problem: str) -> DestinationRefused:
        return DestinationRefused(field, problem)

    if not isinstance(url, str) or not url:
        raise refuse("an http(s) URL is required")
    if len(url) > MAX_URL:
        raise refuse(f"longer than {MAX_URL} characters")
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in url):
        raise refuse("holds a control character (a line break, a tab, ...)")
    if "\\" in url:
        raise refuse("holds a backslash, which URL parsers read differently; write / or %5C")
    scheme, colon, rest = url.partition(":")
    if not colon or not _SCHEME.fullmatch(scheme):
        raise refuse("an http(s) URL, such as https://host/path")
    scheme = scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise refuse(f"the scheme must be http or https, not {scheme!r}")
    if not rest.startswith("//"):
        raise refuse(f"an http(s) URL with a host: {scheme}://host/path")
    authority, target = _split_authority(rest[2:])
    if "@" in authority:
        raise refuse("user info (user@host) is not allowed in the URL; send credentials in a header")
    host, port = _host_and_port(authority, scheme, refuse)
    return scheme, host, port, target


def _split_authority(rest: str) -> tuple[str, str]:
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, target = rest[:end], rest[end:].partition("#")[0]
    if not target.startswith("/"):
        target = "/" + target
    return authority, quote(target, safe=_TARGET_SAFE)


def _host_and_port(
    authority: str, scheme: str, refuse: Callable[[str], DestinationRefused]
) -> tuple[str, int]:
    if authority.startswith("["):
        literal, bracket, port_part = authority[1:].partition("]")
        if not bracket:
            raise refuse("an IPv6 address in brackets lacks its closing ]")
        if "%" in literal:
            raise refuse("IPv6 zone ids (%...) are not allowed")
        try:
            host = str(ipaddress.IPv6Address(literal))
        except ValueError:
            raise refuse(f"[{literal}] is not an IPv6 address") from None
        if port_part and not port_part.startswith(":"):
            raise refuse("only :port may follow an IPv6 address in brackets")
        port_text: str | None = port_part[1:] if port_part else None
    else:
        if authority.count(":") > 1:
            raise refuse("the host holds more than one ':' (an IPv6 address goes in brackets)")
        name, colon, after = authority.partition(":")
        host, port_text = _host_name(name, refuse), (after if colon else None)
    if port_text is None:
        return host, DEFAULT_PORTS[scheme]
    if not _PORT.fullmatch(port_text) or not 1 <= int(port_text) <= 65535:
        raise refuse("the port must be a number from 1 to 65535")
    return host, int(port_text)


def _host_name(name: str, refuse: Callable[[str], DestinationRefused]) -> str:
    if not name:
        raise refuse("the URL has no host")
    if not name.isascii():
        raise refuse("the host name is not ASCII; write an internationalized name in punycode (xn--...)")
    host = name.lower()
    host = host[:-1] if host.endswith(".") else host
    labels = host.split(".")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        if not _DOTTED_QUAD.fullmatch(host):
            raise refuse(
                f"{name!r} is not an IPv4 address in dotted decimal (a.b.c.d); other spellings are refused"
            )
        return host
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise refuse(f"{name!r} is not a valid host name")
    return host


def _ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _pattern(pattern: str) -> str | IPAddress:
    """An `allowed_hosts` entry: an IP address (compared as one) or a host name pattern."""
    text = pattern.strip().lower()
    address = _ip(text[1:-1] if text.startswith("[") and text.endswith("]") else text)
    return address if address is not None else text.rstrip(".")


def _matches(host: str, pattern: str | IPAddress) -> bool:
    if isinstance(pattern, str):
        return fnmatch.fnmatchcase(host, pattern)
    return _ip(host) == pattern


def _reason(error: BaseException) -> str:
    """The innermost cause of a connection failure, in a few words ("connection refused")."""
    while error.__cause__ is not None or (error.__context__ is not None and not error.__suppress_context__):
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    return excerpt(" ".join(str(error).split()), 200) or type(error).__name__
