"""`Dashboard`: one CloudWatch dashboard for the deployment, a row per concern.

The API (requests, errors, latency) and the dead-letter queues; the shared functions (api, finalize); the
sweeper (its errors, its duration, and the cleanups it ran: endings finalize had not cleaned up); then each
async agent (its executions, its functions), each sync agent (its function) and each sensor (its poke
function).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from aws_cdk import Duration
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from serverless_agents.runtime.settings import POWERTOOLS_NAMESPACE, POWERTOOLS_SERVICE

from .sweeper import PERIOD as SWEEP_PERIOD

if TYPE_CHECKING:
    from .async_agent_state_machine import AsyncAgentStateMachine
    from .handler_function import HandlerFunction
    from .sensor_triggers import SensorTriggers
    from .sync_agent_function import SyncAgentFunction

WIDTH = 8  # three graphs to a row (24 columns)
#: What functions/sweeper/handler.py counts (Powertools Metrics: the namespace, a `service` dimension).
SWEPT_DELETES = "SweptDeletes"


def _function_graphs(title: str, handlers: Sequence[HandlerFunction]) -> list[cloudwatch.IWidget]:
    return [
        cloudwatch.GraphWidget(
            title=f"{title}: invocations",
            width=WIDTH,
            left=[h.function.metric_invocations(label=h.function_name) for h in handlers],
        ),
        cloudwatch.GraphWidget(
            title=f"{title}: errors and throttles",
            width=WIDTH,
            left=[h.function.metric_errors(label=f"{h.function_name} errors") for h in handlers],
            right=[h.function.metric_throttles(label=f"{h.function_name} throttles") for h in handlers],
        ),
        cloudwatch.GraphWidget(
            title=f"{title}: duration p95",
            width=WIDTH,
            left=[h.function.metric_duration(statistic="p95", label=h.function_name) for h in handlers],
        ),
    ]


class Dashboard(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        deployment: str,
        rest_api: apigw.RestApi,
        shared: Sequence[HandlerFunction],
        dead_letters: Sequence[tuple[str, sqs.IQueue]],
        async_agents: Sequence[AsyncAgentStateMachine],
        sync_agents: Sequence[SyncAgentFunction],
        sensors: Sequence[SensorTriggers] = (),
        sweeper: HandlerFunction | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=deployment, default_interval=Duration.hours(3)
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="API: requests",
                width=WIDTH,
                left=[rest_api.metric_count()],
                right=[rest_api.metric_client_error(), rest_api.metric_server_error()],
            ),
            cloudwatch.GraphWidget(
                title="API: latency",
                width=WIDTH,
                left=[rest_api.metric_latency(statistic=s, label=f"latency {s}") for s in ("p50", "p99")],
            ),
            cloudwatch.GraphWidget(
                title="dead letters",
                width=WIDTH,
                left=[
                    queue.metric_approximate_number_of_messages_visible(label=name)
                    for name, queue in dead_letters
                ],
            ),
        )
        self.dashboard.add_widgets(*_function_graphs("api and finalize", shared))
        if sweeper is not None:
            self.dashboard.add_widgets(
                *_function_graphs("sweeper", [sweeper])[1:],
                cloudwatch.GraphWidget(
                    title="sweeper: cleanups it ran",
                    width=WIDTH,
                    left=[
                        cloudwatch.Metric(
                            namespace=POWERTOOLS_NAMESPACE,
                            metric_name=SWEPT_DELETES,
                            dimensions_map={"service": POWERTOOLS_SERVICE},
                            statistic="Sum",
                            period=SWEEP_PERIOD,
                            label="endings finalize had not cleaned up",
                        )
                    ],
                ),
            )
        for agent in async_agents:
            machine = agent.state_machine
            self.dashboard.add_widgets(
                cloudwatch.GraphWidget(
                    title=f"{agent.agent.name}: executions",
                    width=WIDTH,
                    left=[
                        machine.metric_started(label="started"),
                        machine.metric_succeeded(label="succeeded"),
                        machine.metric_failed(label="failed"),
                        machine.metric_aborted(label="aborted"),
                        machine.metric_timed_out(label="timed out"),
                    ],
                ),
                *_function_graphs(agent.agent.name, list(agent.functions.values()))[1:],
            )
        for sync in sync_agents:
            self.dashboard.add_widgets(*_function_graphs(sync.agent.name, [sync.handler]))
        for sensor in sensors:
            self.dashboard.add_widgets(*_function_graphs(f"{sensor.agent.name} pokes", [sensor.handler]))
