"""cdk-nag (AwsSolutions) acknowledgments: every finding this app accepts, each with the reason why.

cdk-nag 3 runs as a CDK validation plugin (`Validations.of(app).add_plugins(AwsSolutionsChecks(app))`): synth
fails on any finding not acknowledged with `Validations.of(construct).acknowledge(...)`, the v3 successor
of v2's `NagSuppressions`. Wildcard findings (IAM5) are acknowledged one resource at a time, by the exact
finding id cdk-nag computes (see `_flatten`), so a new wildcard added later fails the synth again.

The constructs call these where they create what is acknowledged, so the reason sits beside the cause.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from aws_cdk import Acknowledgment, Stack, Validations

if TYPE_CHECKING:
    from aws_cdk import aws_apigateway as apigw
    from aws_cdk import aws_iam as iam
    from aws_cdk import aws_lambda as lambda_
    from aws_cdk import aws_s3 as s3
    from aws_cdk import aws_sns as sns
    from aws_cdk import aws_sqs as sqs
    from constructs import IConstruct

    from .payload_bucket import PayloadBucket


def acknowledge(scope: IConstruct, finding: str, reason: str) -> None:
    """Accept `finding` (a rule id, or `rule[detail]`) on `scope` and everything under it."""
    Validations.of(scope).acknowledge(Acknowledgment(id=finding, reason=reason))


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


def payload_bucket_without_access_logs(bucket: s3.IBucket) -> None:
    acknowledge(
        bucket,
        "AwsSolutions-S1",
        "transient task payloads (requests/, outputs/, expiring with their tasks), read and written only "
        "by this deployment's functions under per-function roles; object-level audit, if required, is "
        "CloudTrail data events' job, while server access logs would need another, itself unlogged, bucket",
    )


def agent_payload_objects(role: iam.IRole, payloads: PayloadBucket) -> None:
    _wildcards(
        role,
        [payloads.bucket.arn_for_objects("*")],
        "object keys are task ids (requests/<id>.json, outputs/<id>.json) and whatever the agent keeps in "
        "the payload bucket (the example job agent keeps its jobs there): objects of this one bucket only",
    )


def api_payload_prefixes(role: iam.IRole, payloads: PayloadBucket) -> None:
    from .payload_bucket import OUTPUTS, REQUESTS

    _wildcards(
        role,
        [payloads.bucket.arn_for_objects(f"{prefix}*") for prefix in (REQUESTS, OUTPUTS)],
        "object keys are task ids, known only when a task is created: the api writes requests/<id>.json "
        "and reads outputs/<id>.json, in this bucket only",
    )


def api_stops_executions(role: iam.IRole, execution_arns: Sequence[str]) -> None:
    _wildcards(
        role,
        execution_arns,
        "execution names are task ids, known only when a task is created: StopExecution on executions "
        "of this deployment's agent state machines only",
    )


def sweeper_describes_executions(role: iam.IRole, execution_arns: Sequence[str]) -> None:
    _wildcards(
        role,
        execution_arns,
        "execution names are task ids, known only when a task is created: the sweeper reads "
        "(DescribeExecution) the ended executions it lists, of this deployment's agent state machines only",
    )


def poke_reads_requests(role: iam.IRole, payloads: PayloadBucket) -> None:
    from .payload_bucket import REQUESTS

    _wildcards(
        role,
        [payloads.bucket.arn_for_objects(f"{REQUESTS}*")],
        "object keys are task ids, known only when a task is created: the poke function reads "
        "requests/<id>.json (a sensor request too large for its table item), read-only, in this bucket only",
    )


def api_manages_schedules(role: iam.IRole, schedule_arns: Sequence[str]) -> None:
    _wildcards(
        role,
        schedule_arns,
        "schedule names are task ids, known only when a sensor task is created: the api creates and "
        "deletes schedules in this deployment's sensor schedule groups only",
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
            "only for such actions (serverless_agents.manifest._UNSCOPED_ACTIONS)",
        )


def secret_suffix_wildcards(role: iam.IRole, secret_arns: Sequence[str]) -> None:
    _wildcards(
        role,
        secret_arns,
        "Secrets Manager ends every secret ARN in a random 6-character suffix the manifest leaves out; "
        "-?????? matches exactly that suffix of the secret the manifest names, and no other secret",
    )


def queue_is_a_dead_letter_queue(queue: sqs.IQueue) -> None:
    acknowledge(
        queue,
        "AwsSolutions-SQS3",
        "this queue is the dead-letter queue (of the status-change rule's target and of finalize's "
        "asynchronous invocations); a dead-letter queue of its own would only move the same messages",
    )


def sensor_events_dead_letter_queue(queue: sqs.IQueue) -> None:
    acknowledge(
        queue,
        "AwsSolutions-SQS3",
        "this queue is the dead-letter queue of a sensor's event rules (events EventBridge could not "
        "deliver to the poke function); a dead-letter queue of its own would only move the same messages",
    )


def alarm_topic_key(topic: sns.ITopic) -> None:
    acknowledge(
        topic,
        "AwsSolutions-SNS2",
        "CloudWatch alarms can publish only to topics whose KMS key policy grants CloudWatch, which the "
        "AWS-managed SNS key does not; the messages are alarm state changes (names, metrics, thresholds), "
        "no task data, so a customer-managed key per deployment would protect nothing",
    )


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
        "answering a 400 that names the field (http_api.error_response): a JSON-schema model here would "
        "duplicate flyteidl's schema and answer in another error format",
    )
    stage = rest_api.deployment_stage
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


def definition_comment_placeholder(state_machine: IConstruct) -> None:
    """CDK's own template validation (cfn-lint rules), not cdk-nag: a warning, acknowledged the same way."""
    acknowledge(
        state_machine,
        "CloudFormation-Validate::E1029",
        "the '${...}' is literal text in the definition's Comment (statemachines/async_agent.asl.json "
        "describing its placeholders, all filled by render_definition); outside Fn::Sub CloudFormation "
        "substitutes nothing",
    )
