"""flytekit's side of the cold-start benchmark: a Lambda handler doing our handlers' jobs the flytekit way.

What a flytekit-based function imports at init: boto3, Powertools' Logger and Metrics, flytekit's connector
base and TypeEngine, and its connectors, registered at import (flytekit's way). It is bundled like ours
(pip for Lambda, python3.12 bytecode) and measured beside them by `bench.cold_start`. Two jobs:

- an API Gateway event (POST, a CreateTaskRequest in protobuf's JSON mapping, as our sync function takes):
  decode the template and inputs with flytekit's models and TypeEngine, run `EchoConnector.do`, answer
  the outputs: what `serverless_agents.handlers.sync` does for the echo agent;
- a state machine event (`{"task_id": ...}`): read the task from the tasks table with a boto3 client made
  at first use, decode its request, run a connector's `create`, record it: what
  `serverless_agents.handlers.create` does. Offline the table read is refused (as ours is), so both are
  timed up to their first AWS call.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from flyteidl.admin import agent_pb2
from flytekit.core.type_engine import TypeEngine  # noqa: F401  (what a flytekit function loads at init)
from flytekit.extend.backend.base_connector import ConnectorRegistry
from flytekit.models.literals import LiteralMap
from flytekit.models.task import TaskTemplate
from google.protobuf import json_format

from bench.flytekit_echo import TASK_TYPE, EchoConnector  # noqa: F401  (registers it, at import)

logger = Logger(service="flytekit-bench")
metrics = Metrics(namespace="FlytekitBench", service="flytekit-bench")


@functools.cache
def dynamodb() -> Any:
    return boto3.client("dynamodb")


def _decode(request_json: str) -> tuple[agent_pb2.CreateTaskRequest, TaskTemplate, LiteralMap]:
    request = json_format.Parse(request_json, agent_pb2.CreateTaskRequest())
    return request, TaskTemplate.from_flyte_idl(request.template), LiteralMap.from_flyte_idl(request.inputs)


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if "httpMethod" in event:
        request, template, inputs = _decode(event["body"])
        resource = ConnectorRegistry.get_connector(template.type).do(
            template, output_prefix=request.output_prefix, inputs=inputs
        )  # EchoConnector decodes the inputs with TypeEngine
        return {"statusCode": 200, "body": json.dumps({"phase": int(resource.phase)})}
    item = dynamodb().get_item(TableName=os.environ["SA_TASKS_TABLE"], Key={"id": {"S": event["task_id"]}})
    request, template, inputs = _decode(item["Item"]["request"]["S"])
    connector = ConnectorRegistry.get_connector(template.type)
    metadata = connector.create(template, output_prefix=request.output_prefix, inputs=inputs)
    dynamodb().update_item(
        TableName=os.environ["SA_TASKS_TABLE"],
        Key={"id": {"S": event["task_id"]}},
        UpdateExpression="SET metadata = :m",
        ExpressionAttributeValues={":m": {"S": json.dumps(metadata.__dict__)}},
    )
    return {"task_id": event["task_id"]}
