"""An agent's own permissions (`[[agents.<name>.permissions]]` in the manifest), for its functions alone.

Some agents call AWS themselves: the ECS agent runs tasks and passes their roles, a FileSensor reads the
watched objects in the user's buckets. Those resources are the user's, unknown to this app, so the manifest
names them (`serverless_agents.deployment.manifest.Permission`: named actions, ARNs; a bare "*" only alone,
for actions IAM cannot scope to a resource, such as ecs:RegisterTaskDefinition), and every function of that
agent (create / get / delete, sync, or poke) gets each as one Allow statement.

A wildcard inside an ARN (`arn:aws:s3:::landing/*`) is the deployer's choice, written in the manifest: it is
acknowledged for cdk-nag one resource at a time, naming the agent, so any other wildcard still fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from aws_cdk import aws_iam as iam

from . import nag

if TYPE_CHECKING:
    from serverless_agents.deployment.manifest import Permission


def grant_agent_permissions(role: iam.Role, agent: str, permissions: Sequence[Permission]) -> None:
    for permission in permissions:
        role.add_to_policy(
            iam.PolicyStatement(actions=list(permission.actions), resources=list(permission.resources))
        )
    wildcards = [r for p in permissions for r in p.resources if "*" in r]
    nag.manifest_permission_wildcards(role, agent, list(dict.fromkeys(wildcards)))
