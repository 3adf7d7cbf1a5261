"""Log links: the ECS task in the console, and its container's CloudWatch stream when it logs to one."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

from serverless_agents.agent import LogLink
from serverless_agents.agents.ecs.task_definitions import CONTAINER_NAME, LOG_STREAM_PREFIX

if TYPE_CHECKING:
    from serverless_agents.agents.ecs.agent import EcsTaskMetadata


def log_links(metadata: EcsTaskMetadata) -> list[LogLink]:
    region = metadata.region
    cluster_name = metadata.cluster.rsplit("/", 1)[-1]
    ecs_task_id = metadata.task_arn.rsplit("/", 1)[-1]
    links = [
        LogLink(
            "ECS task",
            f"https://{region}.console.aws.amazon.com/ecs/v2/clusters/{cluster_name}/tasks/{ecs_task_id}"
            f"/configuration?region={region}",
        )
    ]
    if metadata.log_group:
        # The CloudWatch console encodes names twice and then writes '%' as '$'.
        def encode(name: str) -> str:
            return quote(quote(name, safe=""), safe="").replace("%", "$")

        stream = f"{LOG_STREAM_PREFIX}/{CONTAINER_NAME}/{ecs_task_id}"
        links.append(
            LogLink(
                "Container logs (CloudWatch)",
                f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#logsV2:log-groups"
                f"/log-group/{encode(metadata.log_group)}/log-events/{encode(stream)}",
            )
        )
    return links
