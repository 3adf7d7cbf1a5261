"""`AgentsApi`: the project's HTTP API (`serverless_agents.http_api`) on API Gateway, IAM auth everywhere.

    POST   /v1/tasks, GET|DELETE /v1/tasks/{task_id}, GET /v1/agents   -> the api function
    POST   /v1/flyte2/tasks (a Flyte 2 executor's CreateTask)          -> the api function
    POST   /v1/sync/<agent>                                           -> that sync agent's function
    POST   /v1/sync/{agent}    (any other name)                       -> the api function: a 404 naming
                                                                         the routes, in the API's error body

Every method is Lambda proxy integration with AWS_IAM authorization: callers sign with SigV4 (the adapter
does, for execute-api URLs) and need `execute-api:Invoke` on the API. The stage throttles, traces with
X-Ray and writes a JSON access log line per request.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from . import nag
from .handler_function import LOG_RETENTION

STAGE = "prod"


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

        def route(
            resource: apigw.IResource, method: str, function: lambda_.IFunction, path_parameter: str = ""
        ) -> None:
            resource.add_method(
                method,
                apigw.LambdaIntegration(
                    function, allow_test_invoke=False, timeout=Duration.seconds(integration_timeout)
                ),
                request_validator=validator,
                request_parameters={f"method.request.path.{path_parameter}": True}
                if path_parameter
                else None,
            )

        v1 = self.rest_api.root.add_resource("v1")
        tasks = v1.add_resource("tasks")
        route(tasks, "POST", api_function)
        task = tasks.add_resource("{task_id}")
        route(task, "GET", api_function, "task_id")
        route(task, "DELETE", api_function, "task_id")
        route(v1.add_resource("agents"), "GET", api_function)
        route(v1.add_resource("flyte2").add_resource("tasks"), "POST", api_function)
        sync = v1.add_resource("sync")
        route(sync.add_resource("{agent}"), "POST", api_function, "agent")
        for name, function in sync_functions.items():
            route(sync.add_resource(name), "POST", function)
        nag.api_choices(self.rest_api)

    @property
    def url(self) -> str:
        return self.rest_api.url
