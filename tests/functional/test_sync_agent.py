"""A sync agent through the local API Gateway and its own Lambda."""

from __future__ import annotations

import pytest

from serverless_agents.agent import Phase
from serverless_agents.exceptions import AgentNotFound, InvalidRequest
from serverless_agents.literals import decode_literal_map
from tests.functional.conftest import Harness

pytestmark = pytest.mark.functional


def test_sync_agent_answers_with_outputs(harness: Harness) -> None:
    request = harness.request(
        "example_echo", inputs={"text": "ping", "n": 2}, outputs={"text": str, "n": int}
    )

    header = harness.api.execute_sync("echo", request)

    assert Phase(header.resource.phase) is Phase.SUCCEEDED
    assert decode_literal_map(header.resource.outputs, request.template.interface.outputs.variables) == {
        "text": "ping",
        "n": 2,
    }


def test_sync_agent_whose_outputs_miss_the_interface_fails_the_task(harness: Harness) -> None:
    request = harness.request("example_echo", inputs={"text": "ping"}, outputs={})

    resource = harness.api.execute_sync("echo", request).resource

    assert Phase(resource.phase) is Phase.FAILED
    assert "outputs.text" in resource.message


def test_sync_agent_refuses_a_task_type_it_does_not_serve(harness: Harness) -> None:
    with pytest.raises(InvalidRequest, match=r"serves 'example_echo'"):
        harness.api.execute_sync("echo", harness.request("example_job"))


def test_unknown_sync_agent_is_not_found(harness: Harness) -> None:
    with pytest.raises(AgentNotFound):
        harness.api.execute_sync("nope", harness.request("example_echo"))


def test_sync_task_type_on_the_async_route_says_where_to_go(harness: Harness) -> None:
    with pytest.raises(InvalidRequest, match="/v1/sync/echo"):
        harness.api.create_task(harness.request("example_echo"))
