"""Every AWS call a deployed function makes, checked against that function's deployed IAM policy.

moto checks no IAM here, so the calls are recorded on the way out (botocore's `_make_api_call`, the one
place every client call passes) with the function that made them (the in-process dispatcher's call of its
handler), and evaluated against the inline policies CloudFormation attached to the function's role: an
Allow statement whose actions and resources match, and no Deny. The evaluation covers what these policies
use: actions and resources with `*` and `?` wildcards, no NotAction / NotResource, and conditions with
`StringEquals` on the request's context keys (any other operator fails the audit, to be taught here first).

Some calls need a second action on another resource, which IAM authorizes in the same request: passing a
role to a service (`iam:PassRole`, with the context key `iam:PassedToService`). The audit records those
as calls of their own.
"""

from __future__ import annotations

import contextvars
import fnmatch
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from serverless_agents.local.lambda_dispatch import InProcessLambdas

_function: contextvars.ContextVar[str | None] = contextvars.ContextVar("rehearsed_function", default=None)

#: Operations whose IAM action is not `<service>:<operation>`.
_ACTIONS = {
    ("lambda", "Invoke"): "lambda:InvokeFunction",
    ("s3", "HeadObject"): "s3:GetObject",
    ("s3", "ListObjectsV2"): "s3:ListBucket",
}
#: Operations that pass a role to their service (parameter path to the role's ARN, the service).
_PASSES_ROLE = {
    ("scheduler", "CreateSchedule"): (("Target", "RoleArn"), "scheduler.amazonaws.com"),
    ("scheduler", "UpdateSchedule"): (("Target", "RoleArn"), "scheduler.amazonaws.com"),
}


@dataclass(frozen=True)
class Call:
    function: str
    action: str
    resource: str
    #: The request's condition context keys and values IAM evaluates the call with.
    context: tuple[tuple[str, str], ...] = ()


class CallRecorder:
    def __init__(self, account: str, region: str) -> None:
        self.account, self.region = account, region
        self.calls: list[Call] = []
        self._lock = threading.Lock()

    @contextmanager
    def recording(self, lambdas: InProcessLambdas) -> Iterator[None]:
        from botocore import client as botocore_client

        # The stubs (botocore-stubs) leave out the private method every client call goes through.
        BaseClient: Any = botocore_client.BaseClient
        original_call = BaseClient._make_api_call
        original_handler = lambdas._call
        recorder = self

        def make_api_call(client: Any, operation: str, params: dict[str, Any]) -> Any:
            if (function := _function.get()) is not None:
                recorder.record(function, client.meta.service_model.signing_name, operation, params)
            return original_call(client, operation, params)

        def call_handler(fn: Any, event: Any) -> tuple[bytes, bool]:
            token = _function.set(str(fn.function_name))
            try:
                return original_handler(fn, event)
            finally:
                _function.reset(token)

        BaseClient._make_api_call = make_api_call
        lambdas._call = call_handler  # type: ignore[method-assign]
        try:
            yield
        finally:
            BaseClient._make_api_call = original_call
            lambdas._call = original_handler  # type: ignore[method-assign]

    def record(self, function: str, service: str, operation: str, params: dict[str, Any]) -> None:
        action = _ACTIONS.get((service, operation), f"{service}:{operation}")
        calls = [Call(function, action, self.resource(service, params))]
        if (passes := _PASSES_ROLE.get((service, operation))) is not None:
            (parent, key), to_service = passes
            context = (("iam:PassedToService", to_service),)
            calls.append(Call(function, "iam:PassRole", str(params[parent][key]), context))
        with self._lock:
            self.calls.extend(calls)

    def resource(self, service: str, params: dict[str, Any]) -> str:
        """The ARN IAM authorizes the call against, for the services the functions call."""
        arn = f"{self.region}:{self.account}"
        if service == "dynamodb":
            table = f"arn:aws:dynamodb:{arn}:table/{params['TableName']}"
            return f"{table}/index/{params['IndexName']}" if "IndexName" in params else table
        if service == "s3":
            key = params.get("Key")
            return f"arn:aws:s3:::{params['Bucket']}" + (f"/{key}" if key is not None else "")
        if service == "states":
            return str(params.get("executionArn") or params["stateMachineArn"])
        if service == "lambda":
            name = str(params["FunctionName"])
            return name if name.startswith("arn:") else f"arn:aws:lambda:{arn}:function:{name}"
        if service == "secretsmanager":  # ListSecrets names no secret: IAM authorizes it on "*"
            return str(params.get("SecretId", "*"))
        if service == "scheduler":
            return f"arn:aws:scheduler:{arn}:schedule/{params.get('GroupName', 'default')}/{params['Name']}"
        raise AssertionError(f"the audit cannot name the resource of a {service} call: teach it ({params})")


def role_statements(iam: Any, lambda_client: Any, function: str) -> list[dict[str, Any]]:
    """The statements of the inline policies deployed on the function's role."""
    role = lambda_client.get_function_configuration(FunctionName=function)["Role"].rsplit("/", 1)[-1]
    return policy_statements(iam, role)


def policy_statements(iam: Any, role: str) -> list[dict[str, Any]]:
    """The statements of the inline policies deployed on a role (CloudFormation resolved their
    references), with Action and Resource as lists and Condition as a dict."""
    assert not iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]
    statements = []
    for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
        document = json.loads(document) if isinstance(document, str) else document
        for statement in document["Statement"]:
            assert set(statement) <= {"Sid", "Effect", "Action", "Resource", "Condition"}, statement
            condition = statement.get("Condition", {})
            assert set(condition) <= {"StringEquals"}, f"teach the audit these conditions: {statement}"
            statements.append(
                {
                    "Effect": statement["Effect"],
                    "Action": _listed(statement["Action"]),
                    "Resource": _listed(statement["Resource"]),
                    "Condition": condition,
                }
            )
    return statements


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def matches(statement: dict[str, Any], call: Call) -> bool:
    action = any(fnmatch.fnmatchcase(call.action.lower(), a.lower()) for a in statement["Action"])
    resource = any(fnmatch.fnmatchcase(call.resource, r) for r in statement["Resource"])
    return action and resource and _conditions_hold(statement.get("Condition", {}), dict(call.context))


def _conditions_hold(condition: dict[str, dict[str, Any]], context: dict[str, str]) -> bool:
    """Every key of every operator holds (IAM ANDs them; a key absent from the request fails)."""
    for operator, keys in condition.items():
        assert operator == "StringEquals", operator
        for key, values in keys.items():
            if context.get(key) not in _listed(values):
                return False
    return True


def allowed(statements: list[dict[str, Any]], call: Call) -> bool:
    hits = [s["Effect"] for s in statements if matches(s, call)]
    return "Allow" in hits and "Deny" not in hits


def unused_grants(statements: list[dict[str, Any]], calls: list[Call]) -> set[tuple[str, str]]:
    """(action, resource) pairs of Allow statements no recorded call matched."""
    unused = set()
    for statement in statements:
        if statement["Effect"] != "Allow":
            continue
        for action in statement["Action"]:
            for resource in statement["Resource"]:
                single = {"Action": [action], "Resource": [resource], "Condition": statement["Condition"]}
                if not any(matches(single, call) for call in calls):
                    unused.add((action, resource))
    return unused
