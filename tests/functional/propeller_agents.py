"""Test-only sync agents for propeller's call patterns: one that takes its time, one that fails on its own,
one whose secret is missing."""

from __future__ import annotations

import time

from serverless_agents.agent import Phase, Resource, SyncAgentBase, TaskContext
from serverless_agents.exceptions import AgentError
from serverless_agents.security.secrets import get_agent_secret


class SlowEchoAgent(SyncAgentBase):
    """Sleeps `custom.seconds`, then echoes its inputs: a remote API slower than propeller's 10 s default."""

    task_type = "slow_echo"

    def do(self, task: TaskContext) -> Resource:
        time.sleep(float(task.custom.get("seconds", 0)))
        return Resource(Phase.SUCCEEDED, "slept", outputs=dict(task.inputs))


class RefusingAgent(SyncAgentBase):
    """Fails the way a remote API that rejects the request does: the agent's own error, not a transport's."""

    task_type = "refusing"

    def do(self, task: TaskContext) -> Resource:
        raise AgentError("the remote API answered 401: invalid key\n(see the agent's secret)")


class SecretReadingAgent(SyncAgentBase):
    """Reads the secret `custom.secret` names before doing anything."""

    task_type = "secret_reading"

    def do(self, task: TaskContext) -> Resource:
        get_agent_secret(str(task.custom["secret"]))
        return Resource(Phase.SUCCEEDED, "read it", outputs=dict(task.inputs))


class HastyEchoAgent(SlowEchoAgent):
    """The slow echo under a short `timeout` in the manifest: its own limit, not propeller's, cuts it off."""

    task_type = "hasty_echo"
