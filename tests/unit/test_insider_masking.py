"""Issue 19, finding 2, as an insider tries it: text shaped so that a secret's masking is cut around.

Each test reads secrets the way an agent does (`get_agent_secret`, Secrets Manager on moto) and sends text
out the way an agent's text leaves: through the boundary (`call_agent`), a log record, a message cut to a
length, the process's own file descriptors. Every one of them let a secret, or all of it but its last
character, through before masking was done before the cut and in every spelling.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest

from serverless_agents.agent import Phase, Resource
from serverless_agents.exceptions import AgentError
from serverless_agents.runtime.boundary import call_agent
from serverless_agents.runtime.endings import one_line
from serverless_agents.security.redaction import redact

#: A plain-string secret JSON, URLs and Python all escape: a quote, a backslash, a slash, non-ASCII.
QUOTED = 'tok-"q\\u/é-2f9c41d7ab'
TOKEN = "xoxb-1111-2222-ab~~~?cdefghij"  # its base64 holds "+" and "/" at every offset


def _shown(text: str, secret: str) -> list[str]:
    """The pieces of `secret` (4 characters or more from its start, or all of it) that `text` shows."""
    return [secret[:k] for k in range(4, len(secret) + 1) if secret[:k] in text]


# Spellings: a secret escaped by whatever carried it is still that secret.


@pytest.mark.parametrize(
    "spelling",
    [
        pytest.param(json.dumps(QUOTED)[1:-1], id="json-ascii"),
        pytest.param(json.dumps(QUOTED, ensure_ascii=False)[1:-1], id="json-utf8"),
        pytest.param(json.dumps(QUOTED).replace("/", "\\/")[1:-1], id="json-escaped-slash"),
        pytest.param(json.dumps(json.dumps(QUOTED)[1:-1])[1:-1], id="json-in-json"),
        pytest.param(json.dumps(QUOTED)[1:-1].replace("\\u00e9", "\\u00E9"), id="json-hex-upper"),
        pytest.param(quote(QUOTED, safe="").lower(), id="percent-lowercase"),
        pytest.param(html.escape(QUOTED), id="html"),
        pytest.param(repr(QUOTED), id="python-repr"),
        pytest.param(ascii(QUOTED), id="python-ascii"),
        pytest.param(repr(QUOTED.encode())[2:-1], id="python-bytes"),
        pytest.param(html.escape(QUOTED).replace("&quot;", "&#34;"), id="html-decimal"),
        pytest.param(quote(json.dumps(QUOTED)[1:-1], safe=""), id="percent-of-json"),
    ],
)
def test_an_escaped_plain_string_secret_is_masked(read_secrets: Callable[..., None], spelling: str) -> None:
    read_secrets(token=QUOTED)

    masked = redact(f"the server answered {{'error': 'bad token', 'got': {spelling}}}")

    assert "{secret:token}" in masked
    assert _shown(masked, spelling) == []


#: (offset in the blob, URL-safe alphabet, the blob ends with the secret). A standard blob that is the
#: secret alone (0, False, True) was masked already.
_BLOBS = [
    (offset, urlsafe, ends)
    for offset in (0, 1, 2)
    for urlsafe in (False, True)
    for ends in (False, True)
    if (offset, urlsafe, ends) != (0, False, True)
]


@pytest.mark.parametrize(("offset", "urlsafe", "ends_blob"), _BLOBS)
def test_a_secret_inside_a_base64_blob_is_masked_at_every_offset(
    read_secrets: Callable[..., None], offset: int, urlsafe: bool, ends_blob: bool
) -> None:
    read_secrets(token=TOKEN)
    blob = b"x" * offset + TOKEN.encode() + (b"" if ends_blob else b"~next=1")
    encoded = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(blob).decode()
    for text in (encoded, encoded.rstrip("=")):
        masked = redact(f"Authorization: Basic {text}")
        assert "{secret:token}" in masked
        # Every character made of the secret's bits alone is masked: what is left around the mask is the
        # encoding of the bytes before and after it (and at most 4 bits of the secret on either side).
        before, _, after = masked.removeprefix("Authorization: Basic ").partition("{secret:token}")
        assert len(before) <= -(-8 * offset // 6)
        assert len(text) - len(after) >= 8 * (offset + len(TOKEN)) // 6


# Mask, then cut: padding chosen by an outsider cannot push a secret across the cut.


class _CuttingAgent:
    """An agent that quotes the start of an answer it received, as agents do: `body[:200]`."""

    def __init__(self, body: str) -> None:
        self.body = body

    def do(self) -> Resource:
        return Resource(Phase.FAILED, f"the service answered HTTP 400: {self.body[:200]}")

    def get(self) -> Resource:
        raise AgentError(f"the service answered HTTP 400: {self.body[:200]}")


@pytest.mark.parametrize("kept", [4, 12, len(TOKEN) - 1])
def test_a_message_the_agent_cut_shows_no_part_of_a_secret(
    read_secrets: Callable[..., None], kept: int
) -> None:
    read_secrets(token=TOKEN)
    body = "x" * (200 - kept) + TOKEN  # the cut leaves `kept` characters of the secret

    resource = call_agent(_CuttingAgent(body).do)
    with pytest.raises(AgentError) as raised:
        call_agent(_CuttingAgent(body).get)

    for message in (resource.message, str(raised.value)):
        assert message.endswith("{secret:token}")
        assert _shown(message, TOKEN) == []


def test_a_long_message_cut_to_its_limit_shows_no_part_of_a_secret(read_secrets: Callable[..., None]) -> None:
    read_secrets(token=TOKEN)

    for kept in range(4, len(TOKEN)):
        line = one_line("x" * (997 - kept) + TOKEN + " and more")  # the 1,000-character limit, "..." included
        assert len(line) <= 1000
        assert _shown(line, TOKEN) == []


def test_a_log_line_the_agent_cut_shows_no_part_of_a_secret(read_secrets: Callable[..., None]) -> None:
    read_secrets(token=TOKEN)
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler = Keep()
    logger = logging.getLogger("tests.insider.masking")
    logger.addHandler(handler)
    try:
        logger.warning("answer: %s", ("x" * 20 + TOKEN)[:40])
    finally:
        logger.removeHandler(handler)

    assert records == ["answer: " + "x" * 20 + "{secret:token}"]


# The process's file descriptors: what never passes `sys.stdout`.


def test_what_a_function_writes_to_its_descriptors_is_masked(tmp_path: Path) -> None:
    # As Lambda runs a handler: its runtime sets AWS_LAMBDA_RUNTIME_API, and reads descriptors 1 and 2.
    environment = {
        **os.environ,
        "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001",
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    command = [sys.executable, "-m", "tests.unit.insider_prints", str(tmp_path / "agents.toml"), QUOTED]
    done = subprocess.run(command, capture_output=True, env=environment, timeout=120, check=False)
    out, err = done.stdout.decode(), done.stderr.decode()

    assert done.returncode == 0, err
    for line in ("os.write", "__stdout__", "buffer", "subprocess", "split", "bytes"):
        assert f"{line} {{secret:token}}" in out
    assert "child stderr {secret:token}" in err
    assert "cut {secret:token}" in err
    assert _shown(out + err, QUOTED) == []
