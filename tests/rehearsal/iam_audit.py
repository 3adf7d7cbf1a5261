"""Every AWS call a deployed function makes, checked against that function's deployed IAM policy.

moto checks no IAM here, so the calls are recorded on the way out (botocore's `_make_api_call`, the one
place every client call passes) with the function that made them (the in-process dispatcher's call of its
handler), and evaluated against the inline policies CloudFormation attached to the function's role: an
Allow statement whose actions and resources match, and no Deny. The evaluation covers what these policies
use: actions and resources with `*` and `?` wildcards, no NotAction / NotResource, and conditions with
`StringEquals` (single-valued keys) and `ForAllValues:StringLike` (multivalued keys: every value the request
carries matches one of the patterns) on the request's context keys; any other operator fails the audit, to
be taught here first.

DynamoDB calls carry `dynamodb:LeadingKeys`: the partition key value they name (GetItem's and UpdateItem's
`Key`, PutItem's `Item`, a Query's equality on the partition key of the table or of the index it queries),
with the key attributes as `serverless_agents.aws.tasks_table` defines the deployed table.

With `enforce`, a function's calls that its policy denies fail as AWS would fail them (AccessDenied),
instead of reaching moto: what a hostile agent's code tries is then refused, not done.

Some calls need a second action on another resource, which IAM authorizes in the same request: passing a
role to a service (`iam:PassRole`, with the context key `iam:PassedToService`). The audit records those
as calls of their own.
"""

from __future__ import annotations

import contextvars
import fnmatch
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from serverless_agents.aws.tasks_table import SCHEMA
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


#: The partition key attribute of the tasks table (None) and of each of its indexes.
_PARTITION_KEYS: dict[str | None, str] = {
    None: SCHEMA.partition.name,
    **{index.name: index.partition.name for index in SCHEMA.indexes},
}
#: `<attribute or #name> = :value` in a key condition expression.
_EQUALITY = re.compile(r"(#?\w+)\s*=\s*(:\w+)")
#: The condition operators the audit evaluates; a policy using another fails `policy_statements`.
OPERATORS = ("StringEquals", "ForAllValues:StringLike")


@dataclass(frozen=True)
class Call:
    function: str
    action: str
    resource: str
    #: The request's condition context keys and values IAM evaluates the call with (a multivalued key
    #: appears once per value).
    context: tuple[tuple[str, str], ...] = ()


class AccessDenied(Exception):
    """What `enforce` raises for a denied call, in the shape botocore raises AWS's refusal."""


class CallRecorder:
    def __init__(self, account: str, region: str) -> None:
        self.account, self.region = account, region
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        #: Functions whose denied calls fail, with their role's statements.
        self._enforced: dict[str, list[dict[str, Any]]] = {}

    def enforce(self, function: str, statements: list[dict[str, Any]]) -> None:
        """From now on, `function`'s calls that `statements` deny fail with AccessDenied, as on AWS."""
        self._enforced[function] = statements

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
                calls = recorder.record(function, client.meta.service_model.signing_name, operation, params)
                statements = recorder._enforced.get(function)
                if statements is not None and (denied := [c for c in calls if not allowed(statements, c)]):
                    raise _access_denied(operation, denied[0])
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

    def record(self, function: str, service: str, operation: str, params: dict[str, Any]) -> list[Call]:
        action = _ACTIONS.get((service, operation), f"{service}:{operation}")
        context = _leading_keys(params) if service == "dynamodb" else ()
        calls = [Call(function, action, self.resource(service, params), context)]
        if (passes := _PASSES_ROLE.get((service, operation))) is not None:
            (parent, key), to_service = passes
            passed = (("iam:PassedToService", to_service),)
            calls.append(Call(function, "iam:PassRole", str(params[parent][key]), passed))
        with self._lock:
            self.calls.extend(calls)
        return calls

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
            if (
                "taskToken" in params
            ):  # SendTaskSuccess: authorized on the state machine the token's wait is in
                return _state_machine_of_token(self.account, self.region, str(params["taskToken"]))
            return str(params.get("executionArn") or params["stateMachineArn"])
        if service == "lambda":
            name = str(params["FunctionName"])
            return name if name.startswith("arn:") else f"arn:aws:lambda:{arn}:function:{name}"
        if service == "secretsmanager":  # ListSecrets names no secret: IAM authorizes it on "*"
            return str(params.get("SecretId", "*"))
        if service == "scheduler":
            return f"arn:aws:scheduler:{arn}:schedule/{params.get('GroupName', 'default')}/{params['Name']}"
        if service == "logs":
            group = f"arn:aws:logs:{arn}:log-group:{params['logGroupName']}"
            # A log group's own actions (FilterLogEvents) are granted on its ARN as CloudWatch Logs gives
            # it (DescribeLogGroups' `arn`, CDK's `logGroupArn`): `log-group:<name>:*`.
            return group + (f":log-stream:{params['logStreamName']}" if "logStreamName" in params else ":*")
        raise AssertionError(f"the audit cannot name the resource of a {service} call: teach it ({params})")


def _state_machine_of_token(account: str, region: str, token: str) -> str:
    """The state machine whose running execution waits for `token` (moto's tokens name neither)."""
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    for execution in stepfunctions_parser_backends[account][region]._get_executions():
        worker = execution.exec_worker
        if worker is not None and worker.env is not None and worker.env.callback_pool_manager.get(token):
            return str(execution.state_machine_arn)
    return "arn:aws:states:unknown-token"  # a wait that ended already: SendTaskSuccess is refused anyway


def _leading_keys(params: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """`dynamodb:LeadingKeys` of a DynamoDB request: the partition key value it names, if any."""
    attribute = _PARTITION_KEYS.get(params.get("IndexName"))
    value: Any = None
    if "Key" in params:
        value = params["Key"].get(attribute)
    elif "Item" in params:
        value = params["Item"].get(attribute)
    elif "KeyConditionExpression" in params:
        names = params.get("ExpressionAttributeNames", {})
        for name, placeholder in _EQUALITY.findall(params["KeyConditionExpression"]):
            if names.get(name, name) == attribute:
                value = params["ExpressionAttributeValues"][placeholder]
    if value is None:
        return ()
    (scalar,) = value.values()  # {"S": "..."}
    return (("dynamodb:LeadingKeys", str(scalar)),)


def _access_denied(operation: str, call: Call) -> Exception:
    from botocore.exceptions import ClientError

    message = f"{call.function} is not authorized to perform {call.action} on {call.resource} {call.context}"
    return ClientError({"Error": {"Code": "AccessDeniedException", "Message": message}}, operation)


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
            assert set(condition) <= set(OPERATORS), f"teach the audit these conditions: {statement}"
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
    return action and resource and _conditions_hold(statement.get("Condition", {}), call.context)


def _conditions_hold(condition: dict[str, dict[str, Any]], context: tuple[tuple[str, str], ...]) -> bool:
    """Every key of every operator holds (IAM ANDs them).

    `StringEquals` on a single-valued key: the request's value is one of the policy's (a key absent from the
    request fails). `ForAllValues:StringLike` on a multivalued key: each of the request's values matches one
    of the patterns (`*`, `?`), which holds vacuously for a request without the key, as on AWS."""
    for operator, keys in condition.items():
        for key, values in keys.items():
            present = [value for name, value in context if name == key]
            if operator == "StringEquals":
                holds = len(present) == 1 and present[0] in _listed(values)
            elif operator == "ForAllValues:StringLike":
                holds = all(any(_like(v, pattern) for pattern in _listed(values)) for v in present)
            else:
                raise AssertionError(f"the audit cannot evaluate {operator}: teach it")
            if not holds:
                return False
    return True


def _like(value: str, pattern: str) -> bool:
    """IAM's StringLike: `*` any characters, `?` one; nothing else is special (fnmatch's `[` would be)."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.DOTALL) is not None


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
