"""The synthesized template deployed into moto's CloudFormation, and the two AWS services in front of the
deployed functions that moto does not run: API Gateway's Lambda proxy integration and EventBridge's
Lambda targets. Both are driven from what was deployed (resources, methods, integrations, rules, targets),
never from names this file knows.

The deployed functions run this checkout's code in-process (`serverless_agents.local.lambda_dispatch`):
moto keeps each function's handler string, memory, timeout and environment from the template, and the
dispatcher imports the handler and calls it with that environment bound.
"""

from __future__ import annotations

import io
import json
import re
import time
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ACCOUNT, REGION = "123456789012", "us-east-1"  # moto's default account; the recorded events' region
STACK = "rehearsal"


def publish_assets(outdir: Path, s3: Any) -> dict[str, Path]:
    """What `cdk deploy` does before CloudFormation runs: zip each file asset of the cloud assembly into
    its destination bucket (created here: `cdk bootstrap` would have). Returns object key -> asset folder."""
    assets = json.loads(next(outdir.glob("*.assets.json")).read_text())["files"]
    published: dict[str, Path] = {}
    for asset in assets.values():
        if asset["source"]["packaging"] != "zip":
            continue
        folder = outdir / asset["source"]["path"]
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    zipped.write(path, path.relative_to(folder).as_posix())
        for destination in asset["destinations"].values():
            bucket = _substitute(destination["bucketName"])
            if bucket not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
                s3.create_bucket(Bucket=bucket)
            s3.put_object(Bucket=bucket, Key=destination["objectKey"], Body=archive.getvalue())
            published[destination["objectKey"]] = folder
    return published


def _substitute(value: str) -> str:
    return value.replace("${AWS::AccountId}", ACCOUNT).replace("${AWS::Region}", REGION)


def deployable(template: dict[str, Any]) -> dict[str, Any]:
    """The template as it is deployed here. The `BootstrapVersion` parameter (an SSM parameter type read
    from the bootstrap stack) and the rule checking it are left out: there is no bootstrap stack, and
    moto resolves no SSM parameter types. Nothing else in the template refers to them."""
    deployed = {k: v for k, v in template.items() if k not in ("Parameters", "Rules")}
    assert "BootstrapVersion" not in json.dumps(deployed), "something besides the bootstrap rule uses it"
    return deployed


@dataclass
class Stack:
    outputs: dict[str, str]
    #: logical id -> (type, physical id)
    resources: dict[str, tuple[str, str]]

    def physical(self, kind: str) -> list[str]:
        return [physical for t, physical in self.resources.values() if t == kind]


def create_stack(cloudformation: Any, template: dict[str, Any], name: str = STACK) -> Stack:
    cloudformation.create_stack(
        StackName=name, TemplateBody=json.dumps(deployable(template)), Capabilities=["CAPABILITY_IAM"]
    )
    return described_stack(cloudformation, name, "CREATE_COMPLETE")


def update_stack(cloudformation: Any, template: dict[str, Any], name: str = STACK) -> Stack:
    """What `cdk deploy` of a changed app does: UpdateStack with the new template (its assets published)."""
    cloudformation.update_stack(
        StackName=name, TemplateBody=json.dumps(deployable(template)), Capabilities=["CAPABILITY_IAM"]
    )
    return described_stack(cloudformation, name, "UPDATE_COMPLETE")


def described_stack(cloudformation: Any, name: str, status: str) -> Stack:
    described = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
    assert described["StackStatus"] == status, described.get("StackStatusReason")
    pages = cloudformation.get_paginator("list_stack_resources").paginate(StackName=name)
    resources = {
        r["LogicalResourceId"]: (r["ResourceType"], r.get("PhysicalResourceId", ""))
        for page in pages
        for r in page["StackResourceSummaries"]
    }
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    return Stack(outputs, resources)


class _WithTaskRoot:
    """A deployed function as the dispatcher reads it, with the Lambda runtime's LAMBDA_TASK_ROOT (where
    its code unpacked, with the bundled agents.toml) in its environment."""

    def __init__(self, function: Any, task_root: Path) -> None:
        self._function = function
        self.environment_vars = {**dict(function.environment_vars), "LAMBDA_TASK_ROOT": str(task_root)}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._function, name)


@contextmanager
def code_of_each_function(lambdas: Any, roots: dict[str, Path]) -> Iterator[list[tuple[str, Path]]]:
    """Each function whose deployed code (its S3 key) is one of `roots` (`publish_assets`) runs that code:
    so a function updated to another asset runs the new one, as Lambda does after UpdateFunctionCode,
    and its caches (keyed by the manifest's path) start empty, as a new container's do. Yields the
    (function, code folder) of every such invocation. Other functions keep the process's LAMBDA_TASK_ROOT."""
    original = lambdas._call
    ran: list[tuple[str, Path]] = []

    def call(fn: Any, event: Any) -> Any:
        root = roots.get(str(fn.code.get("S3Key")))
        if root is None:
            return original(fn, event)
        ran.append((str(fn.function_name), root))
        return original(_WithTaskRoot(fn, root), event)

    lambdas._call = call
    try:
        yield ran
    finally:
        lambdas._call = original


@dataclass
class Answer:
    status: int
    body: str


class ApiGateway:
    """API Gateway's REST API in front of the deployed functions, from the deployed resources: a request is
    matched to a resource path (an explicit segment before a `{parameter}`, as API Gateway does), its
    method must exist and require AWS_IAM, and its AWS_PROXY integration names the function invoked with
    the proxy event. moto's API Gateway keeps resources, methods and integrations but invokes no Lambda
    proxy integration, verifies no signature, and drops the methods' request validators and required path
    parameters (tests check those in the template)."""

    def __init__(self, apigateway: Any, lambda_client: Any, api_url: str) -> None:
        match = re.fullmatch(r"https://(?P<api>[a-z0-9]+)\.execute-api\.[^/]+/(?P<stage>[^/]+)/", api_url)
        assert match, f"ApiUrl {api_url!r} names no deployed stage"
        self.api_id, self.stage = match["api"], match["stage"]
        apigateway.get_stage(restApiId=self.api_id, stageName=self.stage)  # the output names a real stage
        self._apigateway = apigateway
        self._lambda = lambda_client
        items = apigateway.get_resources(restApiId=self.api_id, limit=500)["items"]
        self.resources = {item["path"]: item for item in items}

    def route(self, path: str) -> tuple[str, dict[str, str] | None]:
        """The deployed resource path serving `path`, and the path parameters API Gateway would send."""
        segments = path.strip("/").split("/")
        candidates = []
        for template in self.resources:
            parts = template.strip("/").split("/")
            if len(parts) != len(segments):
                continue
            parameters: dict[str, str] = {}
            for part, segment in zip(parts, segments, strict=True):
                if part.startswith("{") and part.endswith("}"):
                    parameters[part[1:-1]] = segment
                elif part != segment:
                    break
            else:
                # Fewer parameters first: API Gateway prefers the explicit segment.
                candidates.append((len(parameters), template, parameters or None))
        assert candidates, f"no deployed resource serves {path}"
        _, chosen, chosen_parameters = min(candidates)
        return chosen, chosen_parameters

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Answer:
        resource_path, parameters = self.route(path)
        resource = self.resources[resource_path]
        deployed = self._apigateway.get_method(
            restApiId=self.api_id, resourceId=resource["id"], httpMethod=method
        )
        assert deployed["authorizationType"] == "AWS_IAM", f"{method} {resource_path} is open"
        integration = deployed["methodIntegration"]
        assert integration["type"] == "AWS_PROXY", integration
        function_arn = re.fullmatch(
            r"arn:aws:apigateway:[^:]+:lambda:path/2015-03-31/functions/(.+)/invocations", integration["uri"]
        )
        assert function_arn, integration["uri"]
        event = proxy_event(method, path, resource_path, parameters, body, self.stage)
        answer = invoke(self._lambda, function_arn[1], event).result()
        return Answer(int(answer["statusCode"]), answer.get("body") or "")


def proxy_event(
    method: str,
    path: str,
    resource: str,
    parameters: dict[str, str] | None,
    body: dict[str, Any] | None,
    stage: str,
) -> dict[str, Any]:
    """A REST API Lambda proxy event, as API Gateway sends it for an AWS_IAM method: `resource` is the
    deployed resource path, `pathParameters` null for an explicit route, the caller's IAM identity in the
    request context (the adapter's role; its signature is API Gateway's to check)."""
    headers = {"Content-Type": "application/json", "Host": "api.execute-api.us-east-1.amazonaws.com"}
    caller = f"arn:aws:sts::{ACCOUNT}:assumed-role/flyte-adapter/session"
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": parameters,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "path": f"/{stage}{path}",
            "stage": stage,
            "accountId": ACCOUNT,
            "requestId": str(uuid.uuid4()),
            "requestTimeEpoch": int(time.time() * 1000),  # as API Gateway stamps every request
            "identity": {"sourceIp": "192.0.2.10", "userArn": caller, "caller": "AROAEXAMPLE:session"},
        },
        "body": json.dumps(body) if body is not None else None,
        "isBase64Encoded": False,
    }


@dataclass
class Invocation:
    """A function's answer to one invocation, and its function error (an unhandled exception) if any."""

    function: str
    answer: Any
    error: str | None

    def result(self) -> Any:
        assert self.error is None, f"{self.function} failed: {self.answer}"
        return self.answer


def invoke(lambda_client: Any, function: str, event: dict[str, Any]) -> Invocation:
    """Invoke a deployed function synchronously, as the services in front of it are emulated here."""
    response = lambda_client.invoke(FunctionName=function, Payload=json.dumps(event).encode())
    return Invocation(function, json.loads(response["Payload"].read()), response.get("FunctionError"))


def may_invoke(lambda_client: Any, function: str, service: str, source_arn: str) -> bool:
    """Whether the function's resource policy lets `service` invoke it for `source_arn`: what Lambda checks
    when EventBridge delivers to a rule's target (moto keeps the policy, and checks nothing)."""
    policy = json.loads(lambda_client.get_policy(FunctionName=function)["Policy"])
    return any(
        s["Effect"] == "Allow"
        and s["Action"] == "lambda:InvokeFunction"
        and s["Principal"] == {"Service": service}
        and s.get("Condition") == {"ArnLike": {"AWS:SourceArn": source_arn}}
        for s in policy["Statement"]
    )


class EventBridge:
    """The default event bus's deployed rules, delivering to their Lambda targets (moto's EventBridge
    matches events and delivers to queues and log groups, not to functions, and fires no scheduled rule).
    Delivery is synchronous here, so a test sees the function's answer; EventBridge invokes asynchronously
    and retries per the target's RetryPolicy, which the template tests check."""

    def __init__(self, events: Any, lambda_client: Any) -> None:
        self._events = events
        self._lambda = lambda_client

    def deliver(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """Deliver `event` to every target of every rule whose deployed pattern matches it (moto's own
        pattern matcher); the functions' answers."""
        from moto.events.models import EventPattern

        answers = []
        message: Any = event  # moto's own type for an event is a TypedDict of the same fields
        for rule in self._events.list_rules()["Rules"]:
            pattern = rule.get("EventPattern")
            if pattern is None or not EventPattern.load(pattern).matches_event(message):
                continue
            answers += [invocation.result() for invocation in self._invoke_targets(rule, event)]
        return answers

    def fire(self, rule_name: str, scheduled_event: dict[str, Any]) -> list[Invocation]:
        """One period of a scheduled rule: its targets invoked with the "Scheduled Event" EventBridge sends
        (`scheduled_event`, AWS's recorded example, with this rule's ARN as its resource)."""
        rule = self._events.describe_rule(Name=rule_name)
        assert rule.get("ScheduleExpression"), f"{rule_name} is not a scheduled rule"
        return self._invoke_targets(rule, {**scheduled_event, "resources": [rule["Arn"]]})

    def _invoke_targets(self, rule: dict[str, Any], event: dict[str, Any]) -> list[Invocation]:
        invocations = []
        for target in self._events.list_targets_by_rule(Rule=rule["Name"])["Targets"]:
            assert ":lambda:" in target["Arn"], target
            assert "Input" not in target, target  # the event itself, untransformed
            assert may_invoke(self._lambda, target["Arn"], "events.amazonaws.com", rule["Arn"]), target
            invocations.append(invoke(self._lambda, target["Arn"], event))
        return invocations


class Scheduler:
    """EventBridge Scheduler's schedules, as the deployed functions create them. moto's Scheduler keeps a
    schedule (expression, target ARN, role, input) and never fires it: `fire` invokes the target a schedule
    names with its Input, as Scheduler does each period. Scheduler invokes asynchronously, assuming the
    schedule's role; here the invocation is synchronous, so a test sees the answer, and the tests check
    that the role is the deployed scheduler role and may invoke the target."""

    def __init__(self, scheduler: Any, lambda_client: Any) -> None:
        self._scheduler = scheduler
        self._lambda = lambda_client

    def schedules(self, group: str) -> dict[str, dict[str, Any]]:
        """The group's schedules by name, each as GetSchedule describes it."""
        listed = self._scheduler.list_schedules(GroupName=group)["Schedules"]
        return {
            s["Name"]: dict(self._scheduler.get_schedule(GroupName=group, Name=s["Name"])) for s in listed
        }

    def fire(self, group: str, name: str) -> Invocation:
        target = self._scheduler.get_schedule(GroupName=group, Name=name)["Target"]
        assert ":lambda:" in target["Arn"], target
        return invoke(self._lambda, target["Arn"], json.loads(target["Input"]))
