"""The Host and Origin rules of the local servers (`up`'s API and AWS endpoint), spelling by spelling."""

from __future__ import annotations

import pytest

from serverless_agents.local.loopback import LocalPeers

PEERS = LocalPeers("127.0.0.1", 8080)


@pytest.mark.parametrize(
    "host",
    [
        "localhost:8080",
        "127.0.0.1:8080",
        "[::1]:8080",
        "LOCALHOST:8080",
        "localhost.:8080",
        "s3.localhost:8080",
    ],
)
def test_a_loopback_host_with_the_servers_port_passes(host: str) -> None:
    assert PEERS.host_problem(host) is None


@pytest.mark.parametrize(
    "host",
    [
        None,
        "",
        "localhost",  # port 80, not this server's
        "localhost:8081",
        "127.0.0.1:08080x",
        "evil.example:8080",
        "localhost.evil.example:8080",
        "127.0.0.2:8080",
        "10.0.0.1:8080",
        "[::2]:8080",
        "localhost:8080@evil.example",
        "localhost:8080 evil.example",
    ],
)
def test_any_other_host_is_refused(host: str | None) -> None:
    assert PEERS.host_problem(host) is not None


def test_the_bound_address_counts_as_local_unless_it_is_a_wildcard() -> None:
    assert LocalPeers("192.168.1.5", 80).host_problem("192.168.1.5") is None
    assert LocalPeers("0.0.0.0", 80).host_problem("0.0.0.0") is not None


@pytest.mark.parametrize(
    "origin",
    [None, "http://localhost:3000", "http://127.0.0.1:5173", "http://[::1]:8000", "http://app.localhost"],
)
def test_a_local_page_or_no_browser_passes(origin: str | None) -> None:
    assert PEERS.origin_problem(origin) is None


@pytest.mark.parametrize(
    "origin",
    [
        "null",
        "https://evil.example",
        "http://localhost.evil.example",
        "http://127.0.0.1.nip.io",
        "file://",
        "",
    ],
)
def test_a_page_elsewhere_is_refused(origin: str) -> None:
    assert PEERS.origin_problem(origin) is not None
