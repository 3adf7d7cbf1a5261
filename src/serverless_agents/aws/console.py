"""Links into the AWS console that Flyte's UI shows beside a task (`Resource.log_links`)."""

from __future__ import annotations

from urllib.parse import quote

from serverless_agents.agent import LogLink


def _region(arn: str) -> str:
    return arn.split(":")[3]


def execution_link(execution_arn: str) -> LogLink:
    region = _region(execution_arn)
    return LogLink(
        "Step Functions execution",
        f"https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{execution_arn}",
    )


def log_group_link(region: str, log_group: str) -> LogLink:
    # The CloudWatch console encodes the group name twice and then writes '%' as '$'.
    encoded = quote(quote(log_group, safe=""), safe="").replace("%", "$")
    return LogLink(
        "Lambda logs (CloudWatch)",
        f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#logsV2:log-groups/log-group/{encoded}",
    )


def task_links(execution_arn: str, log_group: str) -> list[LogLink]:
    return [execution_link(execution_arn), log_group_link(_region(execution_arn), log_group)]
