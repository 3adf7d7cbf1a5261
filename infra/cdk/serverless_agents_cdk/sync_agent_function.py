"""`SyncAgentFunction`: a sync agent's Lambda, served at `POST /v1/sync/<agent>` by `AgentsApi`.

It reads nothing but its agent's secrets (and what the manifest's `permissions` grant the agent):
`runtime.sync` answers from the request alone, so the role has no table or bucket access (the environment
still names them: `current_settings` requires both).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from constructs import Construct

from .agent_permissions import grant_agent_permissions
from .agent_secrets import grant_agent_secrets
from .handler_function import HandlerFunction, function_log_group

if TYPE_CHECKING:
    from aws_cdk import aws_lambda as lambda_

    from serverless_agents.deployment.plan import PlannedAgent


class SyncAgentFunction(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        agent: PlannedAgent,
        code: lambda_.Code,
        environment: Mapping[str, str],
    ) -> None:
        super().__init__(scope, construct_id)
        self.agent = agent
        self.log_group = function_log_group(self, "Logs", agent.log_group)
        self.handler = HandlerFunction(
            self,
            "Sync",
            function=agent.function("sync"),
            code=code,
            environment=environment,
            log_group=self.log_group,
        )
        grant_agent_secrets(self.handler.role, agent.settings.secret_ids.values())
        grant_agent_permissions(self.handler.role, agent.name, agent.settings.permissions)

    @property
    def function(self) -> lambda_.Function:
        return self.handler.function
