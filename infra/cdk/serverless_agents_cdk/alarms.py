"""`Alarms`: what needs a person, sent to one SNS topic (subscribe to it after deploy).

- each function (poke functions and the sweeper included): any error, any throttle, in 5 minutes (a
  sweeper error is a sweep that failed, whose endings the next sweeps try again);
- each state machine: any failed execution (a job that failed, or a create / get that kept failing);
- with async agents, any task the sweeper ended by its bound (`end_within`): its delete could not be
  confirmed, so its job may still run and cost money until someone stops it (the message names it);
- each dead-letter queue: any message (finalize's: an abort or timeout whose cleanup did not run; a
  sensor's: events its rules could not deliver to its poke function);
- the API: any 5XX.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from serverless_agents.runtime.settings import POWERTOOLS_NAMESPACE, POWERTOOLS_SERVICE
from serverless_agents.runtime.sweeper import ENDED_BY_BOUND_METRIC

from . import nag

if TYPE_CHECKING:
    from .handler_function import HandlerFunction

PERIOD = Duration.minutes(5)


class Alarms(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        deployment: str,
        functions: Sequence[HandlerFunction],
        state_machines: Sequence[tuple[str, sfn.StateMachine]],
        dead_letters: Sequence[tuple[str, sqs.IQueue]],
        rest_api: apigw.RestApi,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.topic = sns.Topic(
            self,
            "Topic",
            topic_name=f"{deployment}-alarms",
            display_name=f"{deployment} alarms",
            enforce_ssl=True,
        )
        # The topic has a policy (TLS only), so CloudWatch's right to publish has to be in it too.
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {
                        "aws:SourceArn": stack.format_arn(
                            service="cloudwatch",
                            resource="alarm",
                            resource_name="*",
                            arn_format=ArnFormat.COLON_RESOURCE_NAME,
                        )
                    },
                },
            )
        )
        nag.alarm_topic_key(self.topic)
        self._action = actions.SnsAction(self.topic)
        self.alarms: list[cloudwatch.Alarm] = []
        for handler in functions:
            name = handler.function_name
            self._alarm(f"{name}-errors", handler.function.metric_errors(period=PERIOD, statistic="Sum"))
            self._alarm(
                f"{name}-throttles", handler.function.metric_throttles(period=PERIOD, statistic="Sum")
            )
        for name, machine in state_machines:
            self._alarm(f"{name}-failed-executions", machine.metric_failed(period=PERIOD, statistic="Sum"))
        if state_machines:
            self._alarm(
                f"{deployment}-tasks-ended-by-bound",
                cloudwatch.Metric(
                    namespace=POWERTOOLS_NAMESPACE,
                    metric_name=ENDED_BY_BOUND_METRIC,
                    dimensions_map={"service": POWERTOOLS_SERVICE},
                    period=PERIOD,
                    statistic="Sum",
                ),
            )
        for name, queue in dead_letters:
            self._alarm(
                name,
                queue.metric_approximate_number_of_messages_visible(period=PERIOD, statistic="Maximum"),
            )
        self._alarm(f"{deployment}-api-5xx", rest_api.metric_server_error(period=PERIOD, statistic="Sum"))

    def _alarm(self, name: str, metric: cloudwatch.Metric) -> None:
        alarm = metric.create_alarm(
            self,
            name,
            alarm_name=name,
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(self._action)
        self.alarms.append(alarm)
