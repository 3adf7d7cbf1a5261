"""Issue 19, finding 2, through the local stack: a server the webhook calls answers with the token it got,
shaped so that masking is cut around (padding up to the message's cut, a redirect's Location, JSON escapes).

The server is the template author's (an allowed host can be anyone's endpoint): it receives the secret in
the Authorization header, as the template says, and tries to get it back into Flyte's UI or the outputs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from serverless_agents.agent import Phase
from serverless_agents.security.secrets import forget_secrets
from tests.functional.conftest import Harness
from tests.functional.fake_http import FakeHttpServer, Reply
from tests.functional.test_webhook_agent import (
    SLACK_INPUTS,
    outputs_of,
    slack_task,
    webhook_request,
    webhook_stack,
)

pytestmark = pytest.mark.functional

#: Escaped by JSON (quote, backslash, non-ASCII) and by URLs (slash, quote, non-ASCII); Latin-1, so a
#: header may carry it.
TOKEN = 'xoxb-"tok\\en/é-0123456789'
#: The webhook agent's excerpt of an answer (agents/webhook.py).
EXCERPT = 200


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeHttpServer]:
    with FakeHttpServer() as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_fake(fake: FakeHttpServer) -> None:
    fake.reset()


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    # The same secret id as test_webhook_agent's with another value: its cached value is forgotten before
    # and after, as a new container would.
    forget_secrets()
    with webhook_stack(tmp_path_factory.mktemp("insider-masking"), TOKEN) as harness:
        yield harness
    forget_secrets()


def _shown(text: str, spelling: str) -> list[str]:
    """The pieces of `spelling` (4 characters or more from its start, or all of it) that `text` shows."""
    return [spelling[:k] for k in range(4, len(spelling) + 1) if spelling[:k] in text]


def _call(harness: Harness, fake: FakeHttpServer) -> object:
    return harness.api.execute_sync("webhook", webhook_request(slack_task(fake), SLACK_INPUTS)).resource


@pytest.mark.parametrize("kept", [4, len(TOKEN) // 2, len(TOKEN) - 1])
def test_an_error_body_padded_to_the_cut_shows_no_part_of_the_secret(
    harness: Harness, fake: FakeHttpServer, kept: int
) -> None:
    fake.reply(Reply(400, "x" * (EXCERPT - kept) + TOKEN))  # the cut at 200 leaves `kept` characters

    resource = _call(harness, fake)

    assert Phase(resource.phase) is Phase.FAILED  # type: ignore[attr-defined]
    assert "answered HTTP 400: " in resource.message  # type: ignore[attr-defined]
    assert _shown(resource.message, TOKEN) == []  # type: ignore[attr-defined]
    assert fake.requests[0].headers["authorization"] == f"Bearer {TOKEN}"  # the server did get it


@pytest.mark.parametrize(
    "location",
    [
        pytest.param("http://127.0.0.1:1/" + "a" * (EXCERPT - 19 - 12) + TOKEN, id="padded-to-the-cut"),
        pytest.param("http://127.0.0.1:1/cb?t=" + quote(TOKEN, safe="").lower(), id="percent-lowercase"),
    ],
)
def test_a_redirect_location_shows_no_part_of_the_secret(
    harness: Harness, fake: FakeHttpServer, location: str
) -> None:
    fake.reply(Reply(302, "moved", headers={"Location": location.encode().decode("latin-1")}))

    resource = _call(harness, fake)

    assert Phase(resource.phase) is Phase.FAILED  # type: ignore[attr-defined]
    assert ", to http://127.0.0.1:1/" in resource.message  # type: ignore[attr-defined]
    for spelling in (TOKEN, quote(TOKEN, safe="").lower()):
        assert _shown(resource.message, spelling) == []  # type: ignore[attr-defined]


def test_a_token_echoed_in_json_is_masked_in_the_message_and_the_outputs(
    harness: Harness, fake: FakeHttpServer
) -> None:
    echoed = {"ok": False, "error": "invalid_auth", "token": TOKEN}
    escaped = json.dumps(TOKEN)[1:-1]

    fake.reply(Reply(401, echoed))
    failed = _call(harness, fake)
    fake.reply(Reply(200, echoed))
    succeeded = _call(harness, fake)

    assert Phase(failed.phase) is Phase.FAILED  # type: ignore[attr-defined]
    assert '"token": "{secret:slack_token}"' in failed.message  # type: ignore[attr-defined]
    body = outputs_of(succeeded, {"status": int, "body": str})["body"]  # type: ignore[arg-type]
    assert json.loads(body)["token"] == "{secret:slack_token}"
    for text in (failed.message, body):  # type: ignore[attr-defined]
        assert _shown(text, escaped) == []
