"""Test agents around secrets: webhook agents under other task types (so one manifest holds them with
different outbound rules), and agents that read a secret and put it everywhere they can, as a careless
or hostile agent author would: messages, exceptions, outputs, custom info, log links and log lines."""

from __future__ import annotations

import logging
from typing import Any

from serverless_agents import get_agent_secret
from serverless_agents.agent import (
    AsyncAgentBase,
    BaseSensor,
    LogLink,
    Phase,
    Resource,
    ResourceMetadata,
    SyncAgentBase,
    TaskContext,
)
from serverless_agents.agents.webhook import WebhookAgent
from serverless_agents.exceptions import AgentError

logger = logging.getLogger(__name__)


class SlackWebhookAgent(WebhookAgent):
    """The example manifest's webhook agent: allowed_hosts slack.com and friends, no private networks."""

    task_type = "webhook_slack"


class AnyHostWebhookAgent(WebhookAgent):
    """allowed_hosts = ["*"]: only the address rules stand between a template and the network."""

    task_type = "webhook_any"


def _leak(where: str) -> str:
    """Read the secret and log it every way a log line can carry it."""
    secret = get_agent_secret("token")
    logger.warning("%s: the token is %s", where, secret)
    logger.warning(f"{where}: inline {secret}", extra={"token": secret, "nested": {"t": [secret]}})
    try:
        raise ValueError(f"{where}: parsing {secret}") from KeyError(secret)
    except ValueError:
        logger.exception("%s: failed with the token", where)
    return secret


class LeakyMetadata(ResourceMetadata):
    job: str
    mode: str


class LeakyJobAgent(AsyncAgentBase[LeakyMetadata]):
    """custom.mode: `succeed` (outputs and all), `big` (outputs large enough for S3), `fail` (get raises
    AgentError), `crash` (create raises ValueError), `wait` (runs until deleted; delete raises)."""

    task_type = "leaky_job"
    metadata_type = LeakyMetadata

    def create(self, task: TaskContext) -> LeakyMetadata:
        secret = _leak("create")
        mode = str(task.custom.get("mode", "succeed"))
        if mode == "crash":
            raise ValueError(f"cannot create a job with {secret}\non two lines")
        return LeakyMetadata(job=f"job-{secret}", mode=mode)

    async def get(self, metadata: LeakyMetadata) -> Resource:
        secret = _leak("get")
        if metadata.mode == "fail":
            raise AgentError(f"the platform refused {secret}")
        phase = Phase.RUNNING if metadata.mode == "wait" else Phase.SUCCEEDED
        return Resource(
            phase,
            f"job {metadata.job} used {secret}",
            log_links=[LogLink(f"console {secret}", f"https://console.example.com/jobs?token={secret}")],
            outputs={"o": f"out {secret} " + "x" * (400_000 if metadata.mode == "big" else 0)}
            if phase is Phase.SUCCEEDED
            else None,
            custom_info={"token": secret, "nested": [{"t": secret}]},
        )

    def delete(self, metadata: LeakyMetadata) -> None:
        secret = _leak("delete")
        if metadata.mode == "wait":
            raise RuntimeError(f"delete refused for {secret}")


class LeakySyncAgent(SyncAgentBase):
    """`do` raises with the secret in the message."""

    task_type = "leaky_sync"

    def do(self, task: TaskContext) -> Resource:
        secret = _leak("do")
        raise RuntimeError(f"sync call failed with {secret}")


class LeakySensor(BaseSensor):
    """Raises with the secret on its first poke, then is met."""

    task_type = "leaky_sensor"

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.pokes = 0

    def poke(self, key: str) -> bool:
        secret = _leak("poke")
        self.pokes += 1
        if self.pokes == 1:
            raise ConnectionError(f"the platform said no to {secret}")
        return True
