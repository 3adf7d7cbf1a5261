"""`AgentsApi`: the project's HTTP API (`serverless_agents.api.http_api`) on API Gateway, IAM auth everywhere.

    POST   /v1/tasks, GET|DELETE /v1/tasks/{task_id}, GET /v1/agents   -> the api function
    GET    /v1/tasks/{task_id}/logs, GET /v1/tasks/{task_id}/metrics    -> the api function
    POST   /v1/flyte2/tasks (a Flyte 2 executor's CreateTask)          -> the api function
    POST   /v1/sync/<agent>                                           -> that sync agent's function
    POST   /v1/sync/{agent}    (any other name)                       -> the api function: a 404 naming
                                                                         the routes, in the API's error body

The methods are `serverless_agents.local.apigateway.api_routes`, the one list the local gateway serves too.
Every method is Lambda proxy integration with AWS_IAM authorization: callers sign with SigV4 (the adapter
does, for execute-api URLs) and need `execute-api:Invoke` on the API. The stage throttles, traces with
X-Ray and writes a JSON access log line per request.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from serverless_agents.local.apigateway import api_routes

from . import nag
from .handler_function import LOG_RETENTION

STAGE = "prod"
_PATH_PARAMETER = re.compile(r"\{(\w+)\}")


class AgentsApi(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        deployment: str,
        api_function: lambda_.IFunction,
        sync_functions: Mapping[str, lambda_.IFunction],
        integration_timeout: int,
        throttle_rate: float,
        throttle_burst: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.access_logs = logs.LogGroup(
            self, "AccessLogs", retention=LOG_RETENTION, removal_policy=RemovalPolicy.DESTROY
        )
        self.rest_api = apigw.RestApi(
            self,
            "RestApi",
            rest_api_name=f"{deployment}-api",
            description=f"Flyte agents of deployment {deployment}: tasks, sync agents, agent list",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            # Execution logs need the account-wide API Gateway CloudWatch role, which no one stack
            # should own; access logs below record every request.
            cloud_watch_role=False,
            default_method_options=apigw.MethodOptions(authorization_type=apigw.AuthorizationType.IAM),
            deploy_options=apigw.StageOptions(
                stage_name=STAGE,
                throttling_rate_limit=throttle_rate,
                throttling_burst_limit=throttle_burst,
                tracing_enabled=True,
                access_log_destination=apigw.LogGroupLogDestination(self.access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=True,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=True,
                ),
            ),
        )
        # The stack's own ApiUrl output replaces the one RestApi adds.
        self.rest_api.node.try_remove_child("Endpoint")
        validator = self.rest_api.add_request_validator(
            "PathParameters", validate_request_parameters=True, validate_request_body=False
        )

        resources: dict[str, apigw.IResource] = {"": self.rest_api.root}

        def resource(path: str) -> apigw.IResource:
            if path not in resources:
                parent, _, part = path.rpartition("/")
                resources[path] = resource(parent).add_resource(part)
            return resources[path]

        for declared in api_routes(sync_functions):
            function = api_function if declared.sync_agent is None else sync_functions[declared.sync_agent]
            resource(declared.resource).add_method(
                declared.method,
                apigw.LambdaIntegration(
                    function, allow_test_invoke=False, timeout=Duration.seconds(integration_timeout)
                ),
                request_validator=validator,
                request_parameters={
                    f"method.request.path.{name}": True for name in _PATH_PARAMETER.findall(declared.resource)
                }
                or None,
            )
        nag.api_choices(self.rest_api)

    @property
    def url(self) -> str:
        return self.rest_api.url
