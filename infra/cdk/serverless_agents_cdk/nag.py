"""Every finding of the IaC checks this app accepts, each with the reason why: cdk-nag, checkov, cfn-lint.

cdk-nag 3 runs as a CDK validation plugin (`Validations.of(app).add_plugins(AwsSolutionsChecks(app))`): synth
fails on any finding not acknowledged with `Validations.of(construct).acknowledge(...)`, the v3 successor
of v2's `NagSuppressions`. Wildcard findings (IAM5) are acknowledged one resource at a time, by the exact
finding id cdk-nag computes (see `_flatten`), so a new wildcard added later fails the synth again.

checkov (tests/infra/test_iac_checks.py, on the synthesized template) reads a skip from the resource's
`Metadata.checkov.skip` (`skip_check`): it names one check on one resource, with its reason, so the same check
still runs on every other resource. cfn-lint runs there too; the only warnings it may report are in
`CFN_LINT_ACCEPTED`, and no error.

The constructs call these where they create what is acknowledged, so the reason sits beside the cause.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from aws_cdk import Acknowledgment, CfnResource, Stack, Validations

if TYPE_CHECKING:
    from aws_cdk import aws_apigateway as apigw
    from aws_cdk import aws_iam as iam
    from aws_cdk import aws_lambda as lambda_
    from aws_cdk import aws_s3 as s3
    from aws_cdk import aws_sns as sns
    from aws_cdk import aws_sqs as sqs
    from constructs import IConstruct


#: cfn-lint warnings the template may carry (errors: none), each with the reason.
CFN_LINT_ACCEPTED = {
    "W3005": "CDK adds the role (and its default policy) to a function's DependsOn although the function's "
    "Role already refers to it with GetAtt: CDK's own pattern, harmless, and not ours to remove",
}


def acknowledge(scope: IConstruct, finding: str, reason: str) -> None:
    """Accept `finding` (a rule id, or `rule[detail]`) on `scope` and everything under it."""
    Validations.of(scope).acknowledge(Acknowledgment(id=finding, reason=reason))


def skip_check(scope: IConstruct, check: str, reason: str) -> None:
    """Accept checkov's `check` on the CloudFormation resource `scope` is (or whose default child it is)."""
    resource = cast("CfnResource", scope if isinstance(scope, CfnResource) else scope.node.default_child)
    skips = list(dict(resource.get_metadata("checkov") or {}).get("skip", []))
    resource.add_metadata("checkov", {"skip": [*skips, {"id": check, "comment": reason}]})


def _flatten(value: Any) -> str:
    """A resolved CloudFormation value as cdk-nag names it in findings (its `flattenCfnReference`)."""
    if isinstance(value, str):
        return value.replace("${", "<").replace("}", ">")
    if isinstance(value, dict) and "Fn::Join" in value:
        delimiter, items = value["Fn::Join"]
        return str(delimiter).join(_flatten(item) for item in items)
    if isinstance(value, dict) and "Fn::Sub" in value:
        return _flatten(value["Fn::Sub"])
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        resource, attribute = value["Fn::GetAtt"]
        return f"<{_flatten(resource)}.{_flatten(attribute)}>"
    if isinstance(value, dict) and "Fn::ImportValue" in value:
        return _flatten(value["Fn::ImportValue"])
    if isinstance(value, dict) and "Ref" in value:
        return f"<{_flatten(value['Ref'])}>"
    return json.dumps(value, separators=(",", ":"))


def wildcard_resource(scope: IConstruct, resource: str) -> str:
    """The IAM5 finding id for `resource` (a string or token) in a policy under `scope`."""
    return f"AwsSolutions-IAM5[Resource::{_flatten(Stack.of(scope).resolve(resource))}]"


def _wildcards(role: iam.IRole, resources: Sequence[str], reason: str) -> None:
    for resource in resources:
        acknowledge(role, wildcard_resource(role, resource), reason)


def xray_needs_star(role: iam.IRole) -> None:
    acknowledge(
        role,
        "AwsSolutions-IAM5[Resource::*]",
        "only xray:PutTraceSegments and xray:PutTelemetryRecords (Lambda active tracing, Powertools "
        "Tracer): X-Ray takes no resource ARNs; tests/infra check no other action gets Resource *",
    )


def runtime_is_pinned(function: lambda_.Function) -> None:
    acknowledge(
        function,
        "AwsSolutions-L1",
        "python3.12 is the runtime the bundles are built for (pip --python-version 3.12 in bundles.py); "
        "a newer runtime is a deliberate change of the bundles and handler_function.py together",
    )


def state_machine_log_delivery_and_xray(role: iam.IRole) -> None:
    acknowledge(
        role,
        "AwsSolutions-IAM5[Resource::*]",
        "the state machine's logging (logs:CreateLogDelivery, logs:GetLogDelivery, ...) and tracing "
        "(xray:PutTraceSegments, xray:GetSamplingRules, ...) as CDK grants them: those APIs take no "
        "resource ARNs; lambda:InvokeFunction is on the agent's three functions only",
    )


def payload_bucket_choices(bucket: s3.Bucket) -> None:
    reason = (
        "transient task payloads (requests/, outputs/, state/, expiring with their tasks), read and written "
        "only by this deployment's functions, each agent's under its own prefix; object-level audit, if "
        "required, is CloudTrail data events' job, while server access logs would need another, itself "
        "unlogged, bucket"
    )
    acknowledge(bucket, "AwsSolutions-S1", reason)
    skip_check(bucket, "CKV_AWS_18", reason)
    skip_check(
        bucket,
        "CKV_AWS_21",
        "no versioning: a payload is rewritten under the same key when a write is retried, and expires with "
        "its task; noncurrent versions would keep copies of task data past that expiry and serve no reader",
    )


#: What each kind of payload key is to the functions granted it (`PayloadBucket.grant`).
_PAYLOAD_ACCESS = {
    "requests": "requests/<agent>/<task id>.json, the CreateTask requests too large for the state or item",
    "outputs": "outputs/<agent>/<task id>.json, the outputs too large for the tasks table's item",
    "state": "state/<agent>/<name>.json, what an async agent keeps of its jobs (the example JobAgent's)",
}


def payload_keys(role: iam.IRole, resources: Sequence[str], kind: str) -> None:
    _wildcards(
        role,
        resources,
        f"object keys are task ids, known only when a task is created: {_PAYLOAD_ACCESS[kind]}, under "
        "the prefix of the agent named (serverless_agents.aws.payloads.payload_key), in this bucket only",
    )


def api_stops_executions(role: iam.IRole, execution_arns: Sequence[str]) -> None:
    _wildcards(
        role,
        execution_arns,
        "execution names are task ids, known only when a task is created: StopExecution on executions "
        "of this deployment's agent state machines only",
    )


def api_reads_task_records(role: iam.IRole, resources: Sequence[str]) -> None:
    _wildcards(
        role,
        resources,
        "GetTaskLogs and GetTaskMetrics (serverless_agents.runtime.task_logs, task_metrics): the api reads "
        "the log streams of each agent's own log group (a stream per function container, named by Lambda) "
        "with FilterLogEvents, and the history of executions of this deployment's agent state machines "
        "(execution names are task ids, known only when a task is created)",
    )


def sweeper_describes_executions(role: iam.IRole, execution_arns: Sequence[str]) -> None:
    _wildcards(
        role,
        execution_arns,
        "execution names are task ids, known only when a task is created: the sweeper reads "
        "(DescribeExecution) the ended executions it lists, of this deployment's agent state machines only",
    )


def api_manages_schedules(role: iam.IRole, schedule_arns: Sequence[str]) -> None:
    _wildcards(
        role,
        schedule_arns,
        "schedule names are task ids, known only when a sensor task is created: the api creates and "
        "deletes schedules in this deployment's sensor schedule groups only",
    )


def sweeper_deletes_schedules(role: iam.IRole, schedule_arns: Sequence[str]) -> None:
    _wildcards(
        role,
        schedule_arns,
        "schedule names are task ids, known only when a sensor task is created: the sweeper deletes the "
        "schedule of a sensor task it ends by its bound, in this deployment's sensor schedule groups only",
    )


def poke_deletes_own_schedules(role: iam.IRole, schedule_arn: str) -> None:
    _wildcards(
        role,
        [schedule_arn],
        "schedule names are task ids, known only when a sensor task is created: the poke function "
        "deletes the schedules of the tasks it ends, in its own sensor's schedule group only",
    )


def manifest_permission_wildcards(role: iam.IRole, agent: str, resources: Sequence[str]) -> None:
    _wildcards(
        role,
        [r for r in resources if r != "*"],
        f"named by the deployer in the manifest ([[agents.{agent}.permissions]]) for the AWS calls of agent "
        f"{agent!r} itself, on resources outside this stack (e.g. the objects a FileSensor watches); the "
        "manifest rejects wildcard actions, and the grant reaches this agent's functions only",
    )
    if "*" in resources:
        # The same finding as X-Ray's (`xray_needs_star`): one reason for both.
        acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::*]",
            "xray:PutTraceSegments and xray:PutTelemetryRecords (Lambda active tracing), and actions of "
            f"[[agents.{agent}.permissions]] that IAM cannot scope to a resource (such as "
            "ecs:RegisterTaskDefinition): the manifest accepts a bare '*' only alone in a statement and "
            "only for such actions (serverless_agents.deployment.manifest._UNSCOPED_ACTIONS)",
        )


def secret_suffix_wildcards(role: iam.IRole, secret_arns: Sequence[str]) -> None:
    _wildcards(
        role,
        secret_arns,
        "Secrets Manager ends every secret ARN in a random 6-character suffix the manifest leaves out; "
        "-?????? matches exactly that suffix of the secret the manifest names, and no other secret",
    )


def connection_secret_prefix(role: iam.IRole, arn: str) -> None:
    _wildcards(
        role,
        [arn],
        "connection secrets (Flyte 2's Connection.secrets) are made per agent, Flyte project and domain as "
        "tasks arrive: the prefix is the deployment's (api, sweeper) or one agent's (its functions)",
    )


def sweeper_lists_secrets(role: iam.IRole) -> None:
    acknowledge(
        role,
        "AwsSolutions-IAM5[Resource::*]",
        "secretsmanager:ListSecrets takes no resource ARN (names and tags only, never a value); the "
        "sweeper filters by the connection prefix and may delete only under it",
    )


def queue_is_a_dead_letter_queue(queue: sqs.IQueue) -> None:
    acknowledge(
        queue,
        "AwsSolutions-SQS3",
        "this queue is the dead-letter queue (of the status-change rule's target and of finalize's "
        "asynchronous invocations); a dead-letter queue of its own would only move the same messages",
    )


def sensor_dead_letter_queue(queue: sqs.IQueue) -> None:
    acknowledge(
        queue,
        "AwsSolutions-SQS3",
        "this queue is the dead-letter queue of a sensor's event rules (events EventBridge could not "
        "deliver) and of its poke function's asynchronous invocations (pokes that kept failing or waited "
        "too long); a dead-letter queue of its own would only move the same messages",
    )


def event_rules_dead_letter_queue(queue: sqs.IQueue) -> None:
    acknowledge(
        queue,
        "AwsSolutions-SQS3",
        "this queue is the dead-letter queue of an async agent's event rules (job events EventBridge could "
        "not deliver to its get function); a dead-letter queue of its own would only move the same messages",
    )


def dead_letter_queue_encryption(queue: sqs.Queue) -> None:
    skip_check(
        queue,
        "CKV_AWS_27",
        "encrypted at rest with SQS-managed keys (SqsManagedSseEnabled), which checkov does not count; a "
        "KMS key would have to be customer-managed, since EventBridge cannot use the AWS-managed aws/sqs "
        "key to deliver dead letters, for messages that are events and invocation records",
    )


def alarm_topic_key(topic: sns.ITopic) -> None:
    reason = (
        "CloudWatch alarms can publish only to topics whose KMS key policy grants CloudWatch, which the "
        "AWS-managed SNS key does not; the messages are alarm state changes (names, metrics, thresholds), "
        "no task data, so a customer-managed key per deployment would protect nothing"
    )
    acknowledge(topic, "AwsSolutions-SNS2", reason)
    skip_check(topic, "CKV_AWS_26", reason)


def tasks_table_key(table: IConstruct) -> None:
    skip_check(
        table,
        "CKV_AWS_119",
        "encrypted at rest with DynamoDB's AWS-owned key; every function reaches the table through its own "
        "role, with item actions only; a customer-managed key per deployment would add a key policy to "
        "keep right and a charge per request, and revoking it would strand the tasks in flight",
    )


def log_groups_without_customer_key(scope: IConstruct) -> None:
    """Every log group under `scope`: functions', executions', the API's access logs."""
    for construct in scope.node.find_all():
        if isinstance(construct, CfnResource) and construct.cfn_resource_type == "AWS::Logs::LogGroup":
            skip_check(
                construct,
                "CKV_AWS_158",
                "CloudWatch Logs encrypts every log group at rest; what is logged here is task ids, phases, "
                "messages and timings, with execution data left out and secrets masked, so a customer-"
                "managed key (and the key policy granting CloudWatch Logs) would protect nothing more",
            )


_SYNCHRONOUS = "; a dead-letter queue holds failed asynchronous invocations only"
_ON_FAILURE_DESTINATION = (
    ": an on-failure destination instead, its alarmed SQS queue, where a record carries the error with "
    "the event, while a DeadLetterConfig message carries the event only (checkov reads DeadLetterConfig)"
)
_UNRESERVED = (
    "; reserved concurrency is taken from the account's pool whether used or not, and a deploy fails where "
    "it would leave less than 100 unreserved (docs/deploy.md: only the poke functions reserve)"
)
_BEHIND_API = (
    "invoked synchronously by API Gateway: the caller, the Flyte adapter, sees the error" + _SYNCHRONOUS,
    "bounded by the API stage's throttle (api_throttle_rate, api_throttle_burst)" + _UNRESERVED,
)
_STEP = (
    "invoked synchronously by its state machine, whose Retry and Catch handle every error" + _SYNCHRONOUS,
    "one invocation at a time per running execution, which retries a throttle with backoff" + _UNRESERVED,
)
#: By what invokes functions/<handler>: why it has no dead-letter queue (CKV_AWS_116), and why no reserved
#: concurrency (CKV_AWS_115) unless it has some.
_INVOCATION_CHOICES: dict[str, tuple[str, str]] = {
    "api": _BEHIND_API,
    "sync": _BEHIND_API,
    "create": _STEP,
    "get": _STEP,
    "delete": (
        "invoked synchronously by its state machine's Cleanup, by finalize and by the sweeper, which all see "
        "and retry its errors" + _SYNCHRONOUS,
        "at most one cleanup per ended execution, whose callers retry a throttle" + _UNRESERVED,
    ),
    "finalize": (
        "invoked asynchronously by the status-change rule" + _ON_FAILURE_DESTINATION,
        "one invocation per ended execution; a throttled one waits in Lambda's queue and then reaches the "
        "on-failure destination" + _UNRESERVED,
    ),
    "poke": (
        "invoked asynchronously by schedules, event rules and the api's first poke" + _ON_FAILURE_DESTINATION,
        "turned off for this deployment with -c poke_reserved_concurrency=0, for an account whose "
        "concurrency quota leaves nothing to reserve (docs/deploy.md)",
    ),
    "sweeper": (
        "invoked every 15 minutes by a schedule with an empty event: a failed sweep is alarmed and redone by "
        "the next ones (each looks back four periods), a dead letter would hold that empty event",
        "one run per 15 minutes" + _UNRESERVED,
    ),
}


def function_choices(function: lambda_.Function, handler: str, *, reserved_concurrency: bool) -> None:
    """checkov's function checks this app answers otherwise, by what invokes functions/<handler>."""
    skip_check(
        function,
        "CKV_AWS_117",
        "outside a VPC: the functions call AWS APIs over TLS under per-function roles, and agents call their "
        "own services (Snowflake, OpenAI, webhooks); a VPC would need NAT gateways or endpoints per "
        "deployment and add cold-start time, and protect none of these calls",
    )
    skip_check(
        function,
        "CKV_AWS_173",
        "the environment holds resource names and ARNs only, never a secret (agents read theirs from "
        "Secrets Manager at run time, get_agent_secret), and Lambda encrypts it at rest with its own key",
    )
    without_dead_letter_queue, unreserved = _INVOCATION_CHOICES[handler]
    skip_check(function, "CKV_AWS_116", without_dead_letter_queue)
    if not reserved_concurrency:
        skip_check(function, "CKV_AWS_115", unreserved)


def api_choices(rest_api: apigw.RestApi) -> None:
    acknowledge(
        rest_api,
        "AwsSolutions-COG4",
        "every method uses AWS_IAM authorization (SigV4): the caller is a service, the Flyte adapter, with "
        "an AWS identity, not a user-pool user",
    )
    acknowledge(
        rest_api,
        "AwsSolutions-APIG2",
        "the gateway validates path parameters; bodies are flyteidl messages the functions validate, "
        "answering a 400 that names the field (api.resolver.error_response): a JSON-schema model here would "
        "duplicate flyteidl's schema and answer in another error format",
    )
    stage = rest_api.deployment_stage
    skip_check(
        stage,
        "CKV_AWS_120",
        "no cache: GetTask answers a task's current phase, which a cache would serve stale, and every other "
        "method is a POST or DELETE, which API Gateway does not cache",
    )
    acknowledge(
        stage,
        "AwsSolutions-APIG3",
        "IAM authorization rejects unsigned callers before any integration runs and the stage throttles; "
        "a WAF web ACL (priced per ACL and request) can be associated with the stage if the API must "
        "face untrusted networks",
    )
    acknowledge(
        stage,
        "AwsSolutions-APIG6",
        "execution logging needs the account-wide API Gateway CloudWatch role (AWS::ApiGateway::Account), "
        "a per-account singleton no application stack should own; access logs record every request and "
        "the functions log every call",
    )
