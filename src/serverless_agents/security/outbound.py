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

The caller fills in secrets between the two steps, after the destination passed. Each secret goes only
where the manifest lets it (`secrets.<name>.destinations`: host, path prefix, the parts of the request):
`check_secrets` finds every remembered secret a request carries, in any spelling the masking knows
(`serverless_agents.security.masking.secret_names`), in the host, path, query, headers and body, and refuses
the request before connecting if one is anywhere not declared for it. `destination` checks the host and
target already (a secret in a host name would leave in the DNS lookup); `send` checks the whole request.
The same function guards other HTTP clients an agent uses (`httpx_event_hooks`, for SDKs built on
httpx such as openai's). An agent with secrets and no `allowed_hosts` calls only the hosts its secrets name.

Addresses are judged by the project's own table of non-public networks (`NON_PUBLIC_NETWORKS`, from
IANA's special-purpose address registries), not by `ipaddress`'s `is_private` / `is_global`, whose
tables differ between Python versions (3.11 counts 192.0.0.192 and fec0::/10 as public).

One deadline bounds the whole call: connecting, sending, the response headers and the body. urllib3's
timeouts are per socket operation, so a server sending its headers a byte at a time would never trip
them; at the deadline a timer shuts the call's socket down, which ends any read in progress.

Errors are one line:
`DestinationRefused` (a bad or forbidden URL: the task cannot succeed) names the field, and
`DestinationUnavailable` (no answer: may pass) says what failed; neither quotes the URL, its path or
query, nor a header.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import functools
import ipaddress
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlencode

from serverless_agents.deployment.compiled_manifest import HOST_LABEL
from serverless_agents.exceptions import DestinationRefused, DestinationUnavailable, ManifestError
from serverless_agents.security.masking import excerpt, secret_names
from serverless_agents.security.secrets import agent_secret_destinations

if TYPE_CHECKING:
    import ssl

    import urllib3

    from serverless_agents.deployment.manifest import SecretDestination

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
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
#: What is not the public internet, by kind: IANA's IPv4 and IPv6 Special-Purpose Address Registries
#: (every block not marked globally reachable; the few anycast services inside 192.0.0.0/24 and
#: 2001::/23 that are, are refused with their block: no agent calls them), plus multicast, IPv4's class E,
#: the deprecated site-local fec0::/10, and all of IPv6 outside 2000::/3 (global unicast). IPv4 inside
#: IPv6 (mapped, 6to4, Teredo, NAT64) is judged by the IPv4 address. The project's own table, the same on
#: every Python: `ipaddress`'s changes between versions.
NON_PUBLIC_NETWORKS: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(network), kind)
    for network, kind in (
        ("0.0.0.0/32", "unspecified"),
        ("0.0.0.0/8", "this-network"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "shared (carrier-grade NAT)"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "IETF protocol assignment"),
        ("192.0.2.0/24", "documentation"),
        ("192.88.99.0/24", "reserved (6to4 relay anycast)"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("255.255.255.255/32", "broadcast"),
        ("240.0.0.0/4", "reserved"),
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("64:ff9b:1::/48", "local-use translation"),
        ("100::/64", "discard-only"),
        ("100:0:0:1::/64", "dummy"),
        ("2001::/23", "IETF protocol assignment"),
        ("2001:db8::/32", "documentation"),
        ("3fff::/20", "documentation"),
        ("5f00::/16", "segment routing"),
        ("fc00::/7", "private"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local"),
        ("ff00::/8", "multicast"),
    )
)
_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_PORT = re.compile(r"[0-9]{1,5}")
_LABEL = re.compile(HOST_LABEL)
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
        secret_destinations: Mapping[str, Sequence[SecretDestination]] | None = None,
    ) -> None:
        self.allowed_hosts = [_pattern(p) for p in allowed_hosts] if allowed_hosts else None
        #: name -> where that secret may go; by default the running agent's, from the manifest.
        self.secret_destinations = secret_destinations
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
        # Before any lookup: a secret in the host name would leave in the DNS query. The host as written,
        # since `host` is lowercased and a secret may not be.
        _no_secret_in_host(_split_authority(url.partition("//")[2])[0])
        check_secrets(host, target, (), None, self._destinations())
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
        check_secrets(destination.host, destination.target, headers.items(), body, self._destinations())
        headers["Host"] = destination.host_header
        late = DestinationUnavailable(f"no answer within {timeout:g} s")
        with _Deadline(timeout) as deadline:
            failure = ""
            for address in destination.addresses:
                remaining = deadline.remaining()
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
                    if deadline.expired:
                        raise late from None
                    failure = f"cannot connect to {destination.host} ({address}): {_reason(e)}"
                    continue  # nothing was sent: the next address may answer
                except urllib3.exceptions.TimeoutError:
                    raise late from None
                except urllib3.exceptions.HTTPError as e:
                    if deadline.expired:  # the deadline shut the socket down mid-read
                        raise late from None
                    raise DestinationUnavailable(
                        f"cannot connect to {destination.host}: {_reason(e)}"
                    ) from None
                return self._read(response, deadline, late)
            raise DestinationUnavailable(failure) if failure else late

    def _destinations(self) -> Mapping[str, Sequence[SecretDestination]]:
        if self.secret_destinations is None:
            return agent_secret_destinations()
        return self.secret_destinations

    def _read(
        self, response: urllib3.BaseHTTPResponse, deadline: _Deadline, late: DestinationUnavailable
    ) -> Answer:
        import urllib3

        chunks: list[bytes] = []
        size = 0
        complete = False
        try:
            while size <= self.max_bytes:
                remaining = deadline.remaining()
                if remaining <= 0:
                    raise late
                # A server sending a byte at a time must not stretch the call past its deadline.
                sock = getattr(getattr(response, "connection", None), "sock", None)
                if sock is not None:
                    sock.settimeout(remaining)
                chunk = response.read1(min(64 * 1024, self.max_bytes + 1 - size))
                if deadline.expired:  # the end read may be the deadline's shutdown, not the server's
                    raise late
                if not chunk:
                    complete = True
                    break
                chunks.append(chunk)
                size += len(chunk)
        except urllib3.exceptions.TimeoutError:
            raise late from None
        except urllib3.exceptions.HTTPError as e:
            if deadline.expired:
                raise late from None
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
            self._pools.pool_classes_by_scheme = _deadline_pool_classes()
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
        if self.allowed_hosts is not None:
            if not any(_matches(host, p) for p in self.allowed_hosts):
                raise DestinationRefused(field, f"host {host!r} is not in this agent's allowed_hosts")
            return
        destinations = self._destinations()
        # An agent with secrets reaches no host its secrets do not name, unless config says which.
        if destinations and host not in {d.host for ds in destinations.values() for d in ds}:
            raise DestinationRefused(
                field,
                f"host {host!r} is not one its secrets' destinations name; an agent with secrets calls "
                "other hosts only if config.allowed_hosts lists them",
            )

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


def check_secrets(
    host: str,
    target: str,
    headers: Iterable[tuple[str, str]],
    body: bytes | None,
    destinations: Mapping[str, Sequence[SecretDestination]],
) -> None:
    """Refuse (DestinationRefused naming `secrets.<name>`) a request to `host` for `target` (path and
    query) that carries a remembered secret anywhere its `destinations` do not declare: another host,
    outside the path prefix, another part of the request. A secret never goes in a host name. Every
    HTTP client an agent uses calls this before connecting (`OutboundClient.send`, `httpx_event_hooks`)."""
    path, _, query = target.partition("?")
    parts = [("path", path), ("query", query), *(("header", f"{k}: {v}") for k, v in headers)]
    if body:
        parts.append(("body", body.decode("utf-8", errors="replace")))
    _no_secret_in_host(host)
    for part, text in parts:
        for name in sorted(secret_names(text)):
            declared = destinations.get(name, ())
            if not any(d.host == host and part in d.parts and _under(path, d.path) for d in declared):
                raise DestinationRefused(f"secrets.{name}", _not_declared(part, host, declared))


def _no_secret_in_host(host: str) -> None:
    names = secret_names(host)
    if names:
        raise DestinationRefused(f"secrets.{min(names)}", "a secret never goes in a host name")


def _not_declared(part: str, host: str, declared: Sequence[SecretDestination]) -> str:
    if not declared:
        return (
            f"the request to {host} carries it in the {part}, and agents.toml declares no destinations "
            'for it (name = { id = "...", destinations = [{ host = "...", in = ["header"] }] })'
        )
    allowed = "; ".join(f"{d.host}{d.path} in the {' or '.join(sorted(d.parts))}" for d in declared)
    return f"the request to {host} carries it in the {part}, outside what agents.toml declares: {allowed}"


#: Path spellings a server may read as another path than the text shows: escaped dots, slashes and
#: backslashes (`%2e%2e%2f`), and dot segments.
_AMBIGUOUS_PATH = re.compile(r"%(?:2e|2f|5c)", re.IGNORECASE)


def _under(path: str, prefix: str) -> bool:
    """Whether `path` is `prefix` or below it, at a segment boundary, as any server would read it."""
    if prefix == "/":
        return True
    if _AMBIGUOUS_PATH.search(path):
        return False
    decoded = unquote(path)
    if any(segment.split(";", 1)[0] in (".", "..") for segment in decoded.split("/")):
        return False
    base = prefix.rstrip("/")
    return decoded == base or decoded.startswith(base + "/")


def httpx_event_hooks(
    secret_destinations: Mapping[str, Sequence[SecretDestination]] | None = None,
) -> dict[str, list[Callable[[Any], Awaitable[None]]]]:
    """Event hooks for an httpx `AsyncClient` (or its fork httpx2's), for SDKs that make their own HTTP
    calls (openai's): `AsyncClient(event_hooks=httpx_event_hooks())`. Each request, redirects included
    and whatever transport or proxy sends it, is checked with `check_secrets` before it is sent; a
    refusal raises DestinationRefused out of the SDK's call (an SDK may wrap it: see its `__cause__`).
    Only the secrets rule: the SDK keeps its own addresses and deadlines."""

    async def check(request: Any) -> None:
        body = await request.aread()
        target = request.url.raw_path.decode("ascii", errors="replace")
        destinations = agent_secret_destinations() if secret_destinations is None else secret_destinations
        check_secrets(request.url.host, target, request.headers.multi_items(), body, destinations)

    return {"request": [check]}


_current_call = threading.local()


class _Deadline:
    """One call's overall deadline. The connections serving the call register as they connect and send
    (`_deadline_pool_classes`); when the deadline passes, their sockets are shut down, which ends a read
    in progress however slowly the server sends."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds
        self.expired = False
        self._done = False
        self._connections: list[Any] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(seconds, 0.0), self._expire)
        self._timer.daemon = True

    def remaining(self) -> float:
        return self.end - time.monotonic()

    def watch(self, connection: Any) -> None:
        with self._lock:
            self._connections.append(connection)
            expired = self.expired
        if expired:
            _shut_down(connection)

    def _expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.expired = True
            connections = list(self._connections)
        for connection in connections:
            _shut_down(connection)

    def __enter__(self) -> _Deadline:
        _current_call.deadline = self
        self._timer.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._timer.cancel()
        with self._lock:
            self._done = True
            self._connections = []
        _current_call.deadline = None


def _shut_down(connection: Any) -> None:
    sock = getattr(connection, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed
            sock.shutdown(socket.SHUT_RDWR)


def _watched_by_the_deadline(connection: Any) -> None:
    deadline: _Deadline | None = getattr(_current_call, "deadline", None)
    if deadline is not None:
        deadline.watch(connection)


@functools.cache
def _deadline_pool_classes() -> dict[str, type[urllib3.HTTPConnectionPool]]:
    """urllib3's pools, with connections that register with the calling thread's `_Deadline` when they
    connect (before the TLS handshake) and when they send a request (a pooled connection reused)."""
    import urllib3
    from urllib3.connection import HTTPConnection, HTTPSConnection

    class Watched:
        def connect(self) -> None:
            _watched_by_the_deadline(self)
            super().connect()  # type: ignore[misc]

        def request(self, *args: Any, **kwargs: Any) -> None:
            _watched_by_the_deadline(self)
            super().request(*args, **kwargs)  # type: ignore[misc]

    class WatchedHTTPConnection(Watched, HTTPConnection):
        pass

    class WatchedHTTPSConnection(Watched, HTTPSConnection):
        pass

    class HTTPPool(urllib3.HTTPConnectionPool):
        ConnectionCls = WatchedHTTPConnection

    class HTTPSPool(urllib3.HTTPSConnectionPool):
        ConnectionCls = WatchedHTTPSConnection

    return {"http": HTTPPool, "https": HTTPSPool}


def non_public_kind(ip: IPAddress) -> str | None:
    """What kind of non-public address `ip` is ("loopback", "cloud metadata", ...), None if public."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = [ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())]
        if ip in _NAT64:
            embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        for v4 in embedded:
            if v4 is not None and (kind := non_public_kind(v4)):
                return kind
        if ip.ipv4_mapped is not None or ip in _NAT64:
            return None
    if ip in METADATA_ADDRESSES:
        return "cloud metadata"
    kind = next((kind for network, kind in NON_PUBLIC_NETWORKS if _in(ip, network)), None)
    if kind is None and isinstance(ip, ipaddress.IPv6Address) and ip not in _GLOBAL_UNICAST:
        return "reserved"
    return kind


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
