"""Paths an agent may hand to fsspec, by allow-list: the one check before any fsspec call in the project.

A task template chooses the path (FileSensor's `path` input), and fsspec opens whatever a URL names: the
Lambda's own files (`/proc/self/environ`, `file:///etc/hostname`), its memory, or a connection to any
host (`ftp://169.254.169.254:80/`), through chains of wrappers (`simplecache::ftp://10.1.2.3/`). Asked
"does it exist?", each becomes an oracle: of the Lambda's files, or of the ports its network reaches. So:

- `s3://bucket/key` is always allowed (read with boto3, never fsspec: a `::` in it is part of the key),
  parsed by `s3uri.parse_s3_uri`:
  a bucket of at most 255 characters and a key of at most 1,024 UTF-8 bytes (S3's limit). The path is then
  also the task's `watch` key in the tasks table's index, which DynamoDB bounds at 2,048 bytes.
- other protocols only when the agent's manifest `config.protocols` names them (`["gcs", "https"]`);
  a chain (`a::b://...`) only when every link's protocol is named;
- local ones never, named or not: bare paths, `file://`, `local://`, `memory://`, `data:`; nor those that
  read URLs out of their data (`reference://`); a wrapper (`simplecache`, `zip`, ...) never last;
- http(s) only unchained, read without following redirects (`exists_options`);
- a protocol whose URL names a network host (`_HOST_PROTOCOLS`: http, ftp, sftp, ...) has that host
  checked by the outbound rules (`outbound.OutboundClient.destination`): `config.allowed_hosts` if set,
  and never a loopback, private, link-local or metadata address unless `config.allow_private_networks`
  lists it. The check resolves the name once; fsspec resolves it again when it connects, so a name whose
  answers change (DNS rebinding) is only bounded by `allowed_hosts`.

Every refusal is `InvalidRequest` naming the field (a 400 at create, FAILED at a poke) and quotes at most
the first characters of the path.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from serverless_agents.aws.s3uri import check_text, parse_s3_uri
from serverless_agents.exceptions import DestinationUnavailable, InvalidRequest, ManifestError

if TYPE_CHECKING:
    from serverless_agents.security.outbound import OutboundClient

#: The protocol allowed without naming it; read with boto3 (`HeadObject`), not fsspec.
S3 = "s3"
#: Protocols that reach the machine running the agent itself: refused even when the manifest names them.
LOCAL_PROTOCOLS = frozenset({"file", "local", "memory", "data"})
#: fsspec protocols that open another link of the chain (a cache, an archive): never the last link, where
#: fsspec would give them no checked target.
WRAPPER_PROTOCOLS = frozenset({"simplecache", "filecache", "blockcache", "cached", "zip", "tar", "dir"})
#: Protocols that read URLs out of their data (a reference file names any URL): no check here could see them.
UNCHECKABLE_PROTOCOLS = frozenset({"reference", "libarchive"})
#: fsspec protocols whose URL authority is a network host (`proto://host[:port]/...`): checked by the
#: outbound rules. Others (gcs, abfs, ...) name a bucket or container at their provider's own endpoint.
_HOST_PROTOCOLS = frozenset(
    {"http", "https", "ftp", "sftp", "ssh", "smb", "webhdfs", "hdfs", "arrow_hdfs", "dask", "git", "webdav"}
)
#: Protocols read only unchained: fsspec's http filesystem follows redirects and takes a refused connection
#: for "no file" unless told otherwise (`exists_options`), which a wrapper in front of it would not pass on.
UNCHAINED_PROTOCOLS = frozenset({"http", "https"})
#: How fsspec spells a protocol (lower case: fsspec's registry knows no other spelling).
_PROTOCOL = re.compile(r"[a-z][a-z0-9_+.-]{0,31}")
#: A chain's wrapper link may be a bare protocol name (`simplecache::s3://...`), as fsspec reads it.
_LINK = re.compile(rf"(?P<protocol>{_PROTOCOL.pattern})(?:://(?P<rest>.*))?", re.DOTALL)
_S3_MAX_BUCKET = 255  # legacy us-east-1 names; new buckets are at most 63 characters
MAX_PATH_BYTES = 4096
_SHOWN = 80


@dataclass(frozen=True)
class CheckedPath:
    """A path that passed `check_path`: its links' protocols, outermost first, and for a plain `s3://`
    path its bucket and key."""

    path: str
    protocols: tuple[str, ...]
    s3: tuple[str, str] | None = None


def allowed_protocols(config_value: object, field: str = "config.protocols") -> frozenset[str]:
    """The protocols an agent's manifest allows besides s3: `ManifestError` for anything not a list of
    protocol names, or naming a local protocol."""
    if config_value is None:
        return frozenset({S3})
    if not (isinstance(config_value, list) and all(isinstance(p, str) for p in config_value)):
        raise ManifestError(f'{field}: a list of fsspec protocol names, e.g. ["gcs", "https"]')
    for protocol in config_value:
        if not _PROTOCOL.fullmatch(protocol):
            raise ManifestError(f"{field}: {protocol!r} is not a protocol name (lower case, as fsspec's)")
        if protocol in LOCAL_PROTOCOLS | UNCHECKABLE_PROTOCOLS:
            raise ManifestError(
                f"{field}: {protocol!r} would let a task reach the machine the agent runs on or URLs no "
                "check sees: never allowed"
            )
    return frozenset({S3, *config_value})


def check_path(
    path: object,
    field: str,
    protocols: Iterable[str],
    outbound: OutboundClient,
    *,
    unresolved_ok: bool = True,
) -> CheckedPath:
    """`path` if an agent may open it, else `InvalidRequest` naming `field`. The host of a host-bearing
    protocol is checked (and resolved) by `outbound`. A name that does not resolve passes with
    `unresolved_ok` (at create: the poke checks again), else raises `DestinationUnavailable` (at a poke:
    then nothing may connect)."""
    if not isinstance(path, str):
        raise InvalidRequest(field, f"must be a string (a URL such as s3://bucket/key), not {_kind(path)}")
    shown = repr(path) if len(path) <= _SHOWN else f"{path[:_SHOWN]!r}..."
    if not path:
        raise InvalidRequest(field, "required: a URL such as s3://bucket/key")
    check_text(path, field, shown, MAX_PATH_BYTES)
    allowed = frozenset(protocols) - LOCAL_PROTOCOLS - UNCHECKABLE_PROTOCOLS
    if path.startswith(f"{S3}://"):
        # Never fsspec's: boto3 reads it, so `::` in it is part of the key (S3 allows it), not a chain.
        bucket, key = parse_s3_uri(path, field)
        if len(bucket) > _S3_MAX_BUCKET:
            raise InvalidRequest(field, f"{shown}: a bucket name has at most {_S3_MAX_BUCKET} characters")
        return CheckedPath(path, (S3,), (bucket, key))
    links = path.split("::")
    found: list[str] = []
    for position, link in enumerate(links):
        last = position == len(links) - 1
        match = _LINK.fullmatch(link)
        if match is None or (last and match["rest"] is None):
            raise InvalidRequest(
                field,
                f"{shown}: {'a chain link' if len(links) > 1 else 'the path'} names no protocol "
                "(protocol://...): local paths are never allowed",
            )
        protocol = match["protocol"]
        if protocol in LOCAL_PROTOCOLS:
            raise InvalidRequest(
                field, f"{shown}: {protocol}:// reads the agent's own machine: never allowed"
            )
        if last and protocol in WRAPPER_PROTOCOLS:
            raise InvalidRequest(field, f"{shown}: {protocol} wraps another link (a::b://...): none follows")
        if protocol not in allowed:
            named = ", ".join(sorted(allowed))
            raise InvalidRequest(
                field,
                f"{shown}: protocol {protocol!r} is not allowed for this agent (allowed: {named}; the "
                "manifest's config.protocols names others)",
            )
        if protocol in UNCHAINED_PROTOCOLS and len(links) > 1:
            raise InvalidRequest(field, f"{shown}: a {protocol}:// path is read by itself, never in a chain")
        if protocol in _HOST_PROTOCOLS and match["rest"] is not None:
            _check_host(match["rest"], field, outbound, unresolved_ok)
        found.append(protocol)
    return CheckedPath(path, tuple(found))


def exists_options(checked: CheckedPath) -> dict[str, bool]:
    """Keyword arguments for fsspec's `exists` on `checked`: for http(s), no redirect (it could lead to a
    host no check saw; a 3xx counts as found) and `strict` (a connection that fails raises, as a timeout
    does, instead of reading as "no file": the two must look alike)."""
    if checked.protocols[-1] in UNCHAINED_PROTOCOLS:
        return {"strict": True, "allow_redirects": False}
    return {}


def _check_host(rest: str, field: str, outbound: OutboundClient, unresolved_ok: bool) -> None:
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if not authority:
        raise InvalidRequest(field, "names no host")
    try:
        # Only the authority matters: the outbound rules read it as an https URL's.
        outbound.destination(f"https://{authority}/", field)
    except DestinationUnavailable:
        if not unresolved_ok:
            raise


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__
