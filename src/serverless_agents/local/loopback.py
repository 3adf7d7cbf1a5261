"""Who may talk to the local servers (`up`'s HTTP API and its emulated AWS endpoint): the developer's own
machine, not a web page the developer happens to have open.

A browser lets any page send requests to `http://127.0.0.1:<port>`; two things keep such a page out:

- the `Origin` a browser puts on a cross-origin request (and on any POST) must be a local one
  (`http://localhost:*`, `http://127.0.0.1:*`, `http://[::1]:*`), else the request is refused before it
  reaches anything: a page elsewhere can neither read an answer (CORS) nor cause a write (a "simple"
  `text/plain` POST needs no preflight);
- the `Host` header must name this server by a loopback name and its port. A DNS-rebinding page (its own
  name made to resolve to 127.0.0.1) sends requests as same-origin, without `Origin`, but its `Host` is
  its own name.

Clients that are not browsers (boto3, the AWS CLI, curl, the adapter) send a local `Host` and no `Origin`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

#: Names that always mean this machine (RFC 6761: `localhost` and every name under it).
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_WILDCARD_BINDS = frozenset({"0.0.0.0", "::", ""})
_HOST = re.compile(r"(?:\[(?P<v6>[0-9a-fA-F:.]+)\]|(?P<name>[A-Za-z0-9.-]+))(?::(?P<port>[0-9]{1,5}))?")
_ORIGIN = re.compile(r"http://(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::[0-9]{1,5})?")


class LocalPeers:
    """The Host and Origin checks of one local server, listening on `bound_host`:`port`."""

    def __init__(self, bound_host: str, port: int, extra_hosts: Iterable[str] = ()) -> None:
        self.port = port
        names = set(LOOPBACK_NAMES) | {h.lower() for h in extra_hosts}
        if bound_host not in _WILDCARD_BINDS:
            names.add(bound_host.strip("[]").lower())
        self.names = frozenset(names)

    def host_problem(self, host: str | None) -> str | None:
        """Why a request with this `Host` header is refused, or None."""
        expected = f"localhost:{self.port} or 127.0.0.1:{self.port}"
        host = (host or "").strip()
        match = _HOST.fullmatch(host)
        if match is None:
            return f"the Host header must name this local server ({expected})"
        name = (match["v6"] or match["name"]).lower().rstrip(".")
        port = int(match["port"]) if match["port"] else 80
        if not self._is_local(name) or port != self.port:
            return f"Host {host[:80]!r} is not this local server ({expected}): refused (DNS rebinding)"
        return None

    def origin_problem(self, origin: str | None) -> str | None:
        """Why a request from this `Origin` is refused, or None (no Origin: no browser's cross-site call)."""
        if origin is None:
            return None
        match = _ORIGIN.fullmatch(origin.strip())
        if match is None or not self._is_local(match["host"].strip("[]").lower()):
            local = "http://localhost:*, http://127.0.0.1:*"
            return f"Origin {origin[:80]!r} is not a local page ({local}): refused"
        return None

    def _is_local(self, name: str) -> bool:
        return name in self.names or name.endswith(".localhost")
