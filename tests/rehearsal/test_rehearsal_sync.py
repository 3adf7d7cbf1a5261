"""A sync agent through the deployed API: the explicit resource `/v1/sync/<agent>` and its integration with
the agent's own sync function, and `/v1/sync/{agent}` (the api function) for an agent not deployed.

The proxy events are the ones API Gateway sends for these resources (tests/rehearsal/deployment.py): for
the explicit route, `resource` is `/v1/sync/echo` and `pathParameters` is null.
"""

from __future__ import annotations

import json

import pytest
from flyteidl.admin import agent_pb2

from serverless_agents.agent import Phase
from serverless_agents.flyte import wire
from serverless_agents.testing import task_request
from tests.rehearsal.conftest import Deployed

pytestmark = pytest.mark.functional


def sync_request(task_type: str = "example_echo") -> dict[str, object]:
    # flytepropeller's ExecuteTaskSync (flyteplugins/go/tasks/plugins/webapi/agent/plugin.go, ExecuteTaskSync)
    # as the adapter forwards it: POST /v1/sync/<agent>.
    request = task_request(task_type, inputs={"text": "ping"}, outputs={"text": str}, execution="sync")
    return wire.to_dict(request)


def test_the_explicit_route_reaches_the_agents_sync_function(deployed: Deployed) -> None:
    assert deployed.api.route("/v1/sync/echo") == ("/v1/sync/echo", None)
    before = deployed.lambdas.invocations["rehearsal-echo-sync"]

    answer = deployed.api.request("POST", "/v1/sync/echo", sync_request())

    assert answer.status == 200, answer
    header = wire.from_json(agent_pb2.ExecuteTaskSyncResponseHeader, answer.body)
    assert Phase(header.resource.phase) is Phase.SUCCEEDED
    assert header.resource.message == "echoed"
    assert deployed.lambdas.invocations["rehearsal-echo-sync"] == before + 1


def test_an_agent_not_deployed_is_not_found_by_the_api_function(deployed: Deployed) -> None:
    assert deployed.api.route("/v1/sync/nope") == ("/v1/sync/{agent}", {"agent": "nope"})

    answer = deployed.api.request("POST", "/v1/sync/nope", sync_request())

    # A 404 with our API's error body (the adapter answers NOT_FOUND for the agent); the api function has
    # no sync routes, so it names none.
    assert answer.status == 404, answer
    error = json.loads(answer.body)["error"]
    assert error["code"] == "RouteNotFound"
    assert "\n" not in error["message"]
