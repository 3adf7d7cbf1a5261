"""The guarded outbound client, as an attacker writing a task template would try it.

Every refusal is checked before any connection: the resolver records what it was asked, and the tests
that do connect talk only to servers on 127.0.0.1 / ::1 that the client was explicitly allowed to reach.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
import socket
import ssl
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import urllib3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serverless_agents.exceptions import DestinationRefused, DestinationUnavailable, ManifestError
from serverless_agents.security.outbound import Destination, OutboundClient, non_public_kind
from tests.functional.fake_http import FakeHttpServer, Reply

PUBLIC = "93.184.215.14"  # never contacted: these tests stop at the check, or connect to loopback
LOOPBACK = [ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("::1/128")]


class RecordingResolver:
    """Answers from a table and records every lookup, so a test can say "never resolved" or "once"."""

    def __init__(
        self, answers: dict[str, list[str]] | None = None, default: Sequence[str] = (PUBLIC,)
    ) -> None:
        self.answers = answers or {}
        self.default = list(default)
        self.asked: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        return self.answers.get(host, self.default)


# The example manifest's webhook agent (agents.toml): allowed_hosts = ["slack.com", "*.example.com"].
EXAMPLE_HOSTS = ["slack.com", "*.example.com"]


@pytest.mark.parametrize(
    "url",
    [
        # The reported bypass: urlsplit reads hooks.slack.com, urllib3 connects to 127.0.0.1:18999.
        "http://127.0.0.1:18999\\@hooks.slack.com/steal",
        "http://hooks.slack.com\\@127.0.0.1/",
        "http://slack.com\\.evil.test/",
        "http://user:pw@slack.com/",
        "http://slack.com@127.0.0.1/",
        "http://slack.com:443@127.0.0.1:18999/",
        "http://@slack.com/",
        # IPv6 literals and IPv4 in them.
        "http://[127.0.0.1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::1%25eth0]/",
        "http://[v1.fe]/",
        "http://[::1/",
        "http://[::1]x/",
        # IPv4 spellings that resolve to 127.0.0.1 through inet_aton.
        "http://2130706433/",
        "http://0x7f000001/",
        "http://0177.0.0.1/",
        "http://0x7f.0.0.1/",
        "http://127.1/",
        "http://127.0.0.01/",
        "http://1.2.3.4.5/",
        # Control characters that urlsplit silently strips.
        "http://slack.com/\r\nX-Injected: 1",
        "http://sla\tck.com/",
        "http://slack.com/\x00",
        "http://slack.com/\x85",
        # Not http(s), or no host.
        "ftp://slack.com/",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "gopher://slack.com:25/",
        "http:/slack.com/",
        "http:slack.com",
        "//slack.com/",
        "http:///path",
        "slack.com",
        # Ports.
        "http://slack.com:0/",
        "http://slack.com:65536/",
        "http://slack.com:/",
        "http://slack.com:80:81/",
        "http://slack.com: 80/",
        "http://slack.com:+80/",
        # Host names.
        "http://bücher.example.com/",
        "http://%31%32%37.0.0.1/",
        "http://slack..com/",
        "http://-slack.com/",
        "http://sl ack.com/",
        "http://" + "a" * 64 + ".example.com/",
        "http://slack.com/" + "x" * 9000,
    ],
)
def test_a_url_parsers_disagree_on_is_refused_before_any_lookup(url: str) -> None:
    resolver = RecordingResolver()
    client = OutboundClient(EXAMPLE_HOSTS, resolver=resolver)

    with pytest.raises(DestinationRefused) as refused:
        client.destination(url, "custom.url")

    message = str(refused.value)
    assert message.startswith("custom.url: ")
    assert "\n" not in message
    assert "\r" not in message
    assert "steal" not in message
    assert "passwd" not in message
    assert resolver.asked == []


def test_a_host_outside_allowed_hosts_is_named() -> None:
    client = OutboundClient(EXAMPLE_HOSTS, resolver=RecordingResolver())

    with pytest.raises(
        DestinationRefused, match=r"^custom.url: host 'hooks.slack.com' is not in this agent's "
    ):
        client.destination("https://hooks.slack.com/services/T0/B0/secret", "custom.url")


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://slack.com/api/chat.postMessage", "slack.com"),
        ("https://SLACK.com./api", "slack.com"),
        ("https://ci.example.com/hooks", "ci.example.com"),
        ("https://a.b.example.com:8443/x?y=1", "a.b.example.com"),
    ],
)
def test_allowed_hosts_keep_their_meaning(url: str, host: str) -> None:
    destination = OutboundClient(EXAMPLE_HOSTS, resolver=RecordingResolver()).destination(url, "custom.url")

    assert destination.host == host
    assert destination.addresses == (PUBLIC,)


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        (["127.0.0.1"], "loopback"),
        (["::1"], "loopback"),
        (["::ffff:127.0.0.1"], "loopback"),
        (["169.254.169.254"], "cloud metadata"),
        (["fd00:ec2::254"], "cloud metadata"),
        (["::ffff:169.254.169.254"], "cloud metadata"),
        (["169.254.10.10"], "link-local"),
        (["fe80::1%eth0"], "link-local"),
        (["10.0.0.7"], "private"),
        (["172.16.3.4"], "private"),
        (["192.168.1.1"], "private"),
        (["fd12:3456::1"], "private"),
        (["100.64.1.2"], "shared (carrier-grade NAT)"),
        (["224.0.0.251"], "multicast"),
        (["ff02::1"], "multicast"),
        (["0.0.0.0"], "unspecified"),
        (["::"], "unspecified"),
        (["240.0.0.1"], "reserved"),
        (["2002:7f00:1::1"], "loopback"),  # 6to4 around 127.0.0.1
        (["64:ff9b::a9fe:a9fe"], "cloud metadata"),  # NAT64 around 169.254.169.254
        ([PUBLIC, "127.0.0.1"], "loopback"),  # every address counts, not only the first
    ],
)
def test_a_name_resolving_to_a_non_public_address_is_refused(answer: list[str], kind: str) -> None:
    resolver = RecordingResolver({"hooks.example.com": answer})
    client = OutboundClient(EXAMPLE_HOSTS, resolver=resolver)

    with pytest.raises(
        DestinationRefused, match=f"^custom.url: host 'hooks.example.com' resolves to .*a {re.escape(kind)} "
    ):
        client.destination("https://hooks.example.com/x", "custom.url")
    assert resolver.asked == ["hooks.example.com"]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:18999/steal",
        "http://[::1]/",
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[::ffff:169.254.169.254]/",
        "http://[::ffff:7f00:1]/",
        "http://0.0.0.0:8080/",
        "http://10.1.2.3/",
        "http://[fd00:ec2::254]/",
    ],
)
def test_an_address_literal_that_is_not_public_is_refused_without_lookup(url: str) -> None:
    resolver = RecordingResolver()

    with pytest.raises(DestinationRefused, match=r"^custom.url: \S+ is a .* address; an agent calls"):
        OutboundClient(resolver=resolver).destination(url, "custom.url")
    assert resolver.asked == []


def test_the_real_localhost_is_refused() -> None:
    with pytest.raises(DestinationRefused, match=r"^custom.url: host 'localhost' resolves to .* loopback"):
        OutboundClient().destination("http://localhost:9/", "custom.url")


def test_allow_private_networks_lets_the_manifest_open_a_network() -> None:
    resolver = RecordingResolver({"db.internal": ["10.1.2.3"], "mapped.internal": ["::ffff:10.1.2.4"]})
    client = OutboundClient.from_config({"allow_private_networks": ["10.1.0.0/16"]}, resolver=resolver)

    assert client.destination("http://db.internal/", "custom.url").addresses == ("10.1.2.3",)
    assert client.destination("http://mapped.internal/", "custom.url").addresses == ("::ffff:10.1.2.4",)
    with pytest.raises(DestinationRefused, match="cloud metadata"):
        client.destination("http://169.254.169.254/", "custom.url")


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"allowed_hosts": "slack.com"}, "config.allowed_hosts: a list"),
        ({"allow_private_networks": ["10.0.0.0/33"]}, "config.allow_private_networks: "),
        ({"allow_private_networks": "10.0.0.0/8"}, "config.allow_private_networks: a list"),
    ],
)
def test_a_bad_config_is_a_manifest_error(config: dict[str, Any], problem: str) -> None:
    with pytest.raises(ManifestError, match=problem):
        OutboundClient.from_config(config)


def test_a_name_that_does_not_resolve_is_unavailable_not_refused() -> None:
    def no_such_name(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(
        DestinationUnavailable, match=r"^cannot resolve 'nowhere.example.com': name or service"
    ):
        OutboundClient(resolver=no_such_name).destination("https://nowhere.example.com/", "custom.url")


@pytest.mark.parametrize(
    ("address", "public"),
    [(PUBLIC, True), ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", True), ("::ffff:93.184.215.14", True)]
    + [(a, False) for a in ("127.0.0.2", "198.18.0.1", "192.0.2.1", "255.255.255.255", "::ffff:10.0.0.1")],
)
def test_non_public_kind(address: str, public: bool) -> None:
    assert (non_public_kind(ipaddress.ip_address(address)) is None) is public


# What is actually sent: to the checked address, the name resolved once, no redirect followed.


@pytest.fixture
def fake() -> Iterator[FakeHttpServer]:
    with FakeHttpServer() as server:
        yield server


def _port(server: FakeHttpServer) -> int:
    return int(urlsplit(server.url).port or 0)


def test_the_request_goes_to_the_checked_address_and_the_name_is_resolved_once(
    fake: FakeHttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    lookups: list[str] = []
    real_getaddrinfo = socket.getaddrinfo

    def recording_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        lookups.append(str(host))
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", recording_getaddrinfo)
    resolver = RecordingResolver({"hooks.example.com": ["127.0.0.1"]})
    client = OutboundClient(EXAMPLE_HOSTS, LOOPBACK, resolver=resolver)
    fake.reply(Reply(200, "ok"))

    destination = client.destination(f"http://hooks.example.com:{_port(fake)}/a b/é?q=1#frag", "custom.url")
    answer = client.send(destination, "POST", {"Host": "evil.test", "X-A": "1"}, b"{}", 5)

    assert (answer.status, answer.body, answer.truncated) == (200, b"ok", False)
    sent = fake.last()
    assert sent.path == "/a%20b/%C3%A9?q=1"
    assert sent.headers["host"] == f"hooks.example.com:{_port(fake)}"
    assert sent.body == b"{}"
    assert resolver.asked == ["hooks.example.com"]
    assert lookups == ["127.0.0.1"]  # the connection looked up the address it was given: no DNS


def test_a_redirect_is_the_answer_and_its_target_is_never_contacted(fake: FakeHttpServer) -> None:
    with FakeHttpServer() as elsewhere:
        fake.reply(Reply(302, "", headers={"Location": f"{elsewhere.url}/collect"}))
        client = OutboundClient(["127.0.0.1"], LOOPBACK)

        answer = client.send(client.destination(f"{fake.url}/hook", "custom.url"), "GET", {}, None, 5)

        assert answer.status == 302
        assert answer.headers["location"] == f"{elsewhere.url}/collect"
        assert elsewhere.requests == []


def test_the_body_read_is_bounded(fake: FakeHttpServer) -> None:
    fake.reply(Reply(200, b"x" * 300_000))
    client = OutboundClient(allowed_networks=LOOPBACK, max_bytes=1000)

    answer = client.send(client.destination(fake.url, "custom.url"), "GET", {}, None, 5)

    assert (len(answer.body), answer.truncated) == (1000, True)


def test_no_answer_within_the_timeout_is_unavailable(fake: FakeHttpServer) -> None:
    fake.reply(Reply(200, "late", delay=5))
    client = OutboundClient(allowed_networks=LOOPBACK)

    with pytest.raises(DestinationUnavailable, match=r"^no answer within 0.3 s$"):
        client.send(client.destination(fake.url, "custom.url"), "GET", {}, None, 0.3)


def test_a_refused_connection_says_so_and_the_next_address_is_tried(fake: FakeHttpServer) -> None:
    port = _port(fake)
    closed = _closed_port()
    fake.reply(Reply(200, "second"))
    client = OutboundClient(
        allowed_networks=LOOPBACK, resolver=RecordingResolver(default=["::1", "127.0.0.1"])
    )

    only = Destination("http", "hooks.test", closed, "/", ("127.0.0.1",))
    refused = r"^cannot connect to hooks.test \(127.0.0.1\): connection refused$"
    with pytest.raises(DestinationUnavailable, match=refused):
        client.send(only, "GET", {}, None, 5)
    # The fake listens on 127.0.0.1 only: ::1 refuses (or is unreachable), 127.0.0.1 answers.
    answer = client.send(client.destination(f"http://hooks.test:{port}/", "custom.url"), "GET", {}, None, 5)
    assert answer.body == b"second"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_destination_built_by_hand_is_checked_too() -> None:
    forged = Destination("http", "slack.com", 80, "/", ("169.254.169.254",))

    with pytest.raises(DestinationRefused, match="cloud metadata"):
        OutboundClient(EXAMPLE_HOSTS).send(forged, "GET", {}, None, 5)
    with pytest.raises(DestinationRefused, match="allowed_hosts"):
        OutboundClient(["example.com"]).send(forged, "GET", {}, None, 5)


# TLS: the socket goes to the checked address, the certificate is checked for the host name.


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, ssl.SSLContext]]:
    cert, key, ca = _certificates(tmp_path_factory.mktemp("tls"), "hooks.test")
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = self.headers.get("Host", "").encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    server.socket = server_context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client_context = ssl.create_default_context(cafile=str(ca))
    try:
        yield int(server.server_address[1]), client_context
    finally:
        server.shutdown()
        server.server_close()


def test_tls_verifies_the_certificate_for_the_host_name_not_the_address(
    tls_server: tuple[int, ssl.SSLContext],
) -> None:
    port, context = tls_server
    resolver = RecordingResolver({"hooks.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    client = OutboundClient(allowed_networks=LOOPBACK, resolver=resolver, tls_context=context)

    answer = client.send(client.destination(f"https://hooks.test:{port}/", "custom.url"), "GET", {}, None, 5)
    assert (answer.status, answer.body) == (200, f"hooks.test:{port}".encode())

    with pytest.raises(DestinationUnavailable, match=r"hostname 'other.test' doesn't match 'hooks.test'"):
        client.send(client.destination(f"https://other.test:{port}/", "custom.url"), "GET", {}, None, 5)


def _certificates(directory: Path, host: str) -> tuple[Path, Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def build(subject: str, issuer: str, key: Any, signer: Any, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False
            ).add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = build("test CA", "test CA", ca_key, ca_key, ca=True)
    leaf = build(host, "test CA", leaf_key, ca_key, ca=False)
    paths = directory / "leaf.pem", directory / "leaf.key", directory / "ca.pem"
    paths[0].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    paths[2].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return paths


# The parser differential, as a property: what is accepted is read the same way by urllib3 and urlsplit.


def _weighted(common: list[str], rare: list[str], weight: int = 6) -> st.SearchStrategy[str]:
    return st.sampled_from(common * weight + rare)


_HOSTS = st.one_of(
    _weighted(
        ["slack.com", "Hooks.Slack.com.", "127.0.0.1", "[::1]", "a_b.example", "xn--bcher-kva.example"],
        [
            "[::ffff:127.0.0.1]",
            "[127.0.0.1]",
            "2130706433",
            "0x7f000001",
            "0177.0.0.1",
            "127.1",
            "bücher.example",
            "%31.0.0.1",
            "[v1.x]",
            "[::1%25lo]",
            "1.2.3.4.5",
            "a..b",
            "[::1",
            "",
        ],
    ),
    st.from_regex(r"[a-z0-9][a-z0-9.\-_]{0,14}", fullmatch=True),
    st.from_regex(r"[a-z0-9.\-_%:@\[\]\\]{1,16}", fullmatch=True),
)
_PATHS = st.lists(
    _weighted(["/", "a", "/b", "?", "=", "&", "x", "%20"], ["#", "@", ":", " ", "é", "[", "]", "\\"]),
    max_size=8,
).map("".join)
_BUILT = st.builds(
    lambda scheme, user, host, port, path: f"{scheme}{user}{host}{port}{path}",
    _weighted(["http://", "https://"], weight=12, rare=["HTTP://", "ftp://", "http:/", "http:", "//", ""]),
    _weighted([""], weight=30, rare=["user@", "u:p@", "127.0.0.1:1\\@", "slack.com@", "@"]),
    _HOSTS,
    _weighted(["", ":8443"], weight=10, rare=[":80", ":0", ":65536", ":", ":a", ":80:81", ": 1"]),
    _PATHS,
)
_URLS = st.one_of(_BUILT, _BUILT, _BUILT, st.text(max_size=40))


@settings(max_examples=400, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_URLS)
def test_an_accepted_url_names_the_host_every_parser_names(url: str) -> None:
    resolver = RecordingResolver(default=[PUBLIC])
    # Every network allowed: the parser is what is under test here, not the address check.
    everywhere = [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")]
    client = OutboundClient(allowed_networks=everywhere, resolver=resolver)
    try:
        destination = client.destination(url, "custom.url")
    except DestinationRefused as refused:
        message = str(refused)
        assert message.startswith("custom.url: ")
        assert len(message.splitlines()) == 1
        return

    # urllib3 (and http.client, which it hands the host to) and urlsplit read the same destination.
    parsed = urllib3.util.parse_url(url)
    assert _same_host(parsed.host, destination.host)
    assert (parsed.port or {"http": 80, "https": 443}[destination.scheme]) == destination.port
    split = urlsplit(url)
    assert _same_host(split.hostname, destination.host)
    assert (split.port or {"http": 80, "https": 443}[destination.scheme]) == destination.port
    assert split.scheme == destination.scheme
    assert destination.target.startswith("/")
    assert all(0x20 < ord(c) < 0x7F for c in destination.target)
    # The connection goes only to what the check saw.
    assert destination.addresses == ((PUBLIC,) if resolver.asked else (destination.host,))


def _same_host(other: str | None, host: str) -> bool:
    other = (other or "").strip("[]").rstrip(".").lower()
    try:
        return ipaddress.ip_address(other) == ipaddress.ip_address(host)
    except ValueError:
        return other == host
