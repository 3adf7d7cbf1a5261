"""What moto 5.2.5's CloudFormation lacks to deploy the synthesized template, added for the rehearsal only.

moto creates a resource of a type it has no CloudFormation model for as nothing (a warning, an empty
physical id), so a template that names such a type still "deploys", and whatever refers to it gets a blank.
Each model below stands in for one missing type and says what it does instead:

- `AWS::StepFunctions::StateMachine` (moto has one, in the wrong place): moto's model creates the state
  machine in its plain Step Functions backend, while with `execute_state_machine` on, the API
  (StartExecution, DescribeExecution) reads the parser backend, which runs the ASL. This one creates it
  there, with the template's definition, role, logging and tracing.
- `AWS::ApiGateway::Stage`: moto has CreateStage but no model; the stage is created through the backend,
  so the stack's `ApiUrl` output names it (moto would print `/None/`).
- `AWS::ApiGateway::RequestValidator`: created through the backend; the methods' `RequestValidatorId`
  then refers to a real validator.
- `AWS::Lambda::EventInvokeConfig`: created through the backend (PutFunctionEventInvokeConfig), so the
  deployed retry count and on-failure destination can be read back with the Lambda API.
- `AWS::Scheduler::ScheduleGroup`: created through the backend, so the api function's CreateSchedule in a
  sensor's group finds it (moto's Scheduler refuses a schedule in a group it does not know).
- `AWS::SQS::QueuePolicy`, `AWS::SNS::TopicPolicy`: put through the backends, so the deployed policies
  read back (moto enforces neither).
- `AWS::S3::BucketPolicy`: recorded in `RECORDED`, not put: moto's S3 enforces a bucket policy but ignores
  its conditions, so the template's TLS-only Deny (`aws:SecureTransport` false) would refuse every request.
- `AWS::Logs::LogGroup` (moto has one, with another ARN): created by moto's model, but its `Fn::GetAtt
  Arn` is CloudFormation's, `arn:...:log-group:<name>:*` (moto leaves out the `:*`), so a role's grant
  on the group (`LogGroup.grant_write`) covers its log streams, as on AWS.
- `AWS::CloudWatch::Alarm`: recorded with its resolved properties in `RECORDED`: moto's PutMetricAlarm
  model would accept them, but nothing in the rehearsal raises an alarm, and the rehearsal only checks
  that every alarm resolves to deployed resources.

Updates (`update_stack`, tests/rehearsal/test_rehearsal_redeploy.py): moto updates what has an update model
(a Lambda function's configuration and code) and leaves a changed resource without one as None. Of the
models here only the state machine updates (UpdateStateMachine: definition, role, logging, tracing; the
running executions keep the definition they started with, as on AWS); any other changing fails the update
naming its type, so a redeploy the rehearsal cannot do is never reported as done.

`installed()` adds these for the duration of a block (moto's model map is a cached function of its own
subclasses, so it is wrapped rather than extended). Written for moto 5.2.5, which pyproject.toml pins.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

#: Resources of types that are only recorded: logical type -> list of resolved properties.
RECORDED: dict[str, list[dict[str, Any]]] = {}

#: Creates one resource from its resolved properties, its generated name, account and region; returns what
#: `Ref` gives (a physical id) or a moto model that answers `Ref` and `Fn::GetAtt` itself.
Create = Callable[[dict[str, Any], str, str, str], Any]


class _Created:
    """A created resource, as moto's CloudFormation reads it: a physical id and attributes."""

    def __init__(self, physical_id: str, attributes: dict[str, str]) -> None:
        self.physical_resource_id = physical_id
        self._attributes = attributes

    def get_cfn_attribute(self, attribute_name: str) -> str:
        return self._attributes[attribute_name]

    def is_created(self) -> bool:
        return True


#: Updates one resource: the model `Create` made, the new resolved properties, account and region.
Update = Callable[[Any, dict[str, Any], str, str], Any]


class _Model:
    """What moto's CloudFormation asks of a model class, for one resource type."""

    def __init__(self, kind: str, create: Create, update: Update | None = None) -> None:
        self.kind, self.create, self.update = kind, create, update

    def cloudformation_type(self) -> str:
        return self.kind

    def cloudformation_name_type(self) -> str:
        return ""

    def has_cfn_attr(self, attribute: str) -> bool:
        return True

    def create_from_cloudformation_json(
        self, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
    ) -> Any:
        created = self.create(cloudformation_json["Properties"], resource_name, account_id, region_name)
        if isinstance(created, str):
            return _Created(created, {})
        return created

    def update_from_cloudformation_json(
        self,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> Any:
        if self.update is None:
            raise NotImplementedError(f"the rehearsal's CloudFormation cannot update a {self.kind}")
        return self.update(original_resource, cloudformation_json["Properties"], account_id, region_name)


def _state_machine(properties: dict[str, Any], name: str, account_id: str, region: str) -> Any:
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    # moto's own state machine model, in the backend the API reads: Ref gives its ARN, GetAtt its name.
    return stepfunctions_parser_backends[account_id][region].create_state_machine(
        name=properties.get("StateMachineName", name),
        definition=properties["DefinitionString"],
        roleArn=properties["RoleArn"],
        loggingConfiguration=_lower_keys(properties.get("LoggingConfiguration")),
        tracingConfiguration=_lower_keys(properties.get("TracingConfiguration")),
        sm_type=properties.get("StateMachineType"),
    )


def _update_state_machine(original: Any, properties: dict[str, Any], account_id: str, region: str) -> Any:
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    return stepfunctions_parser_backends[account_id][region].update_state_machine(
        original.arn,
        definition=properties["DefinitionString"],
        role_arn=properties["RoleArn"],
        logging_configuration=_lower_keys(properties.get("LoggingConfiguration")),
        tracing_configuration=_lower_keys(properties.get("TracingConfiguration")),
    )


def _api_stage(properties: dict[str, Any], name: str, account_id: str, region: str) -> str:
    from moto.apigateway.models import apigateway_backends

    # moto's Deployment model has no physical id: its Ref resolves to the model itself.
    deployment = properties["DeploymentId"]
    stage = apigateway_backends[account_id][region].create_stage(
        properties["RestApiId"],
        properties["StageName"],
        deploymentId=getattr(deployment, "id", deployment),
        tracing_enabled=properties.get("TracingEnabled"),
    )
    return str(stage.name)


def _request_validator(properties: dict[str, Any], name: str, account_id: str, region: str) -> str:
    from moto.apigateway.models import apigateway_backends

    validator = apigateway_backends[account_id][region].create_request_validator(
        properties["RestApiId"],
        properties.get("Name", name),
        properties.get("ValidateRequestBody", False),
        properties.get("ValidateRequestParameters", False),
    )
    return str(validator.id)


def _event_invoke_config(properties: dict[str, Any], name: str, account_id: str, region: str) -> str:
    from moto.awslambda.utils import get_backend  # the Docker-free backend, where the functions are

    config = {
        "MaximumRetryAttempts": properties.get("MaximumRetryAttempts"),
        "MaximumEventAgeInSeconds": properties.get("MaximumEventAgeInSeconds"),
        "DestinationConfig": properties.get("DestinationConfig", {}),
    }
    get_backend(account_id, region).put_function_event_invoke_config(
        properties["FunctionName"], {k: v for k, v in config.items() if v is not None}
    )
    return name


def _schedule_group(properties: dict[str, Any], name: str, account_id: str, region: str) -> _Created:
    from moto.scheduler.models import scheduler_backends

    group = scheduler_backends[account_id][region].create_schedule_group(
        properties.get("Name", name), properties.get("Tags", [])
    )
    return _Created(group.name, {"Arn": group.arn})


def _log_group(properties: dict[str, Any], name: str, account_id: str, region: str) -> _Created:
    from moto.logs.models import LogGroup

    group = LogGroup.create_from_cloudformation_json(name, {"Properties": properties}, account_id, region)
    return _Created(group.name, {"Arn": f"{group.arn}:*"})


def _queue_policy(properties: dict[str, Any], name: str, account_id: str, region: str) -> str:
    from moto.sqs.models import sqs_backends

    for url in properties["Queues"]:
        sqs_backends[account_id][region].set_queue_attributes(
            url.rstrip("/").rsplit("/", 1)[-1], {"Policy": json.dumps(properties["PolicyDocument"])}
        )
    return name


def _topic_policy(properties: dict[str, Any], name: str, account_id: str, region: str) -> str:
    from moto.sns.models import sns_backends

    for topic_arn in properties["Topics"]:
        sns_backends[account_id][region].set_topic_attribute(
            topic_arn, "Policy", json.dumps(properties["PolicyDocument"])
        )
    return name


def _recorded(kind: str) -> Create:
    def record(properties: dict[str, Any], name: str, account_id: str, region: str) -> _Created:
        RECORDED.setdefault(kind, []).append(properties)
        named = properties.get("AlarmName", name)
        return _Created(named, {"Arn": f"arn:aws:cloudwatch:{region}:{account_id}:alarm:{named}"})

    return record


MODELS = {
    model.kind: model
    for model in (
        _Model("AWS::StepFunctions::StateMachine", _state_machine, _update_state_machine),
        _Model("AWS::ApiGateway::Stage", _api_stage),
        _Model("AWS::ApiGateway::RequestValidator", _request_validator),
        _Model("AWS::Lambda::EventInvokeConfig", _event_invoke_config),
        _Model("AWS::Scheduler::ScheduleGroup", _schedule_group),
        _Model("AWS::Logs::LogGroup", _log_group),
        _Model("AWS::SQS::QueuePolicy", _queue_policy),
        _Model("AWS::SNS::TopicPolicy", _topic_policy),
        # Recorded, not put: moto's S3 applies a bucket policy's statements without their conditions, so
        # the deployed Deny of requests without TLS (`aws:SecureTransport` false) would refuse them all.
        _Model("AWS::S3::BucketPolicy", _recorded("AWS::S3::BucketPolicy")),
        _Model("AWS::CloudWatch::Alarm", _recorded("AWS::CloudWatch::Alarm")),
    )
}


def _lower_keys(value: Any) -> Any:
    """CloudFormation's property names (`IncludeExecutionData`) as the Step Functions API spells them."""
    if isinstance(value, dict):
        return {key[:1].lower() + key[1:]: _lower_keys(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_lower_keys(item) for item in value]
    return value


@contextmanager
def installed() -> Iterator[None]:
    from moto.cloudformation import parsing

    original = parsing.get_model_map

    def with_shims() -> dict[str, Any]:
        return {**original(), **MODELS}

    parsing.get_model_map = with_shims  # type: ignore[assignment]
    RECORDED.clear()
    try:
        yield
    finally:
        parsing.get_model_map = original
