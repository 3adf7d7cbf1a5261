"""The HTTP API on API Gateway: the routes of serverless_agents.api.http_api, AWS_IAM on every method."""

from __future__ import annotations

from typing import Any

from serverless_agents.agent import AgentKind
from serverless_agents.deployment.manifest import load_manifest
from serverless_agents.deployment.registry import AgentRegistry
from serverless_agents.local.apigateway import api_routes
from tests.infra.conftest import Synth

DEPLOYMENT = "serverless-agents"


def paths(synth: Synth) -> dict[str, str]:
    """Each API Gateway resource's logical id -> its full path."""
    resources = synth.resources("AWS::ApiGateway::Resource")
    root = synth.logical_id("AWS::ApiGateway::RestApi")

    def path(logical_id: str) -> str:
        properties = resources[logical_id]["Properties"]
        parent = properties["ParentId"]
        prefix = "" if parent == {"Fn::GetAtt": [root, "RootResourceId"]} else path(parent["Ref"])
        return f"{prefix}/{properties['PathPart']}"

    return {logical_id: path(logical_id) for logical_id in resources}


def routes(synth: Synth) -> dict[str, dict[str, Any]]:
    """`METHOD /path` -> the method's properties."""
    by_id = paths(synth)
    return {
        f"{p['HttpMethod']} {by_id[p['ResourceId']['Ref']]}": p
        for p in synth.properties("AWS::ApiGateway::Method")
    }


def integrated_function(method: dict[str, Any]) -> str:
    """The logical id of the function a Lambda proxy integration invokes."""
    integration = method["Integration"]
    assert integration["Type"] == "AWS_PROXY"
    assert integration["IntegrationHttpMethod"] == "POST"
    parts = integration["Uri"]["Fn::Join"][1]
    (function,) = [p["Fn::GetAtt"][0] for p in parts if isinstance(p, dict) and "Fn::GetAtt" in p]
    return str(function)


def test_routes_reach_their_functions(base: Synth) -> None:
    api = base.function_id(f"{DEPLOYMENT}-api")
    echo = base.function_id(f"{DEPLOYMENT}-echo-sync")

    assert {route: integrated_function(m) for route, m in routes(base).items()} == {
        "POST /v1/tasks": api,
        "POST /v1/flyte2/tasks": api,
        "GET /v1/tasks/{task_id}": api,
        "DELETE /v1/tasks/{task_id}": api,
        "GET /v1/tasks/{task_id}/logs": api,
        "GET /v1/tasks/{task_id}/metrics": api,
        "GET /v1/agents": api,
        "POST /v1/sync/echo": echo,
        "POST /v1/sync/{agent}": api,  # an agent not deployed here: the api function's 404
    }


def test_the_local_gateway_serves_the_deployed_routes(base: Synth) -> None:
    """The local gateway's one table of routes (serverless_agents.local.apigateway) is the template's."""
    registry = AgentRegistry.from_manifest(load_manifest(base.outdir.parent / "agents.toml"))
    local = api_routes(agent.name for agent in registry if agent.kind is AgentKind.SYNC)

    assert {f"{r.method} {r.resource}": base.function_id(r.function_name(DEPLOYMENT)) for r in local} == {
        route: integrated_function(method) for route, method in routes(base).items()
    }


def test_every_method_uses_iam_auth(base: Synth) -> None:
    methods = base.properties("AWS::ApiGateway::Method")

    assert methods
    assert {m["AuthorizationType"] for m in methods} == {"AWS_IAM"}


def test_path_parameters_are_required_and_validated(base: Synth) -> None:
    validator = base.logical_id("AWS::ApiGateway::RequestValidator")
    found = routes(base)

    assert found["GET /v1/tasks/{task_id}"]["RequestParameters"] == {"method.request.path.task_id": True}
    assert found["DELETE /v1/tasks/{task_id}"]["RequestParameters"] == {"method.request.path.task_id": True}
    assert found["GET /v1/tasks/{task_id}/logs"]["RequestParameters"] == {"method.request.path.task_id": True}
    assert found["GET /v1/tasks/{task_id}/metrics"]["RequestParameters"] == {
        "method.request.path.task_id": True
    }
    assert found["POST /v1/sync/{agent}"]["RequestParameters"] == {"method.request.path.agent": True}
    assert "RequestParameters" not in found["GET /v1/agents"]
    assert {m["RequestValidatorId"]["Ref"] for m in found.values()} == {validator}


def test_stage_throttles_traces_and_logs_access(base: Synth) -> None:
    (stage,) = base.properties("AWS::ApiGateway::Stage")
    access_logs = stage["AccessLogSetting"]

    assert stage["StageName"] == "prod"
    assert stage["TracingEnabled"] is True
    assert stage["MethodSettings"] == [
        {
            "DataTraceEnabled": False,
            "HttpMethod": "*",
            "ResourcePath": "/*",
            "ThrottlingBurstLimit": 200,
            "ThrottlingRateLimit": 100,
        }
    ]
    assert access_logs["DestinationArn"]["Fn::GetAtt"][0] in base.resources("AWS::Logs::LogGroup")
    assert '"status":"$context.status"' in access_logs["Format"]


def test_api_gateway_may_invoke_exactly_the_routed_functions(base: Synth) -> None:
    permissions = [
        p for p in base.properties("AWS::Lambda::Permission") if p["Principal"] == "apigateway.amazonaws.com"
    ]
    targets = {p["FunctionName"]["Fn::GetAtt"][0] for p in permissions}

    assert targets == {base.function_id(f"{DEPLOYMENT}-api"), base.function_id(f"{DEPLOYMENT}-echo-sync")}
    assert len(permissions) == len(routes(base))  # one per method, scoped to it; no test-invoke grants
