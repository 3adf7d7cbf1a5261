"""`TasksTable`: the DynamoDB table of tasks (`serverless_agents.aws.tasks_table`), as the local stack has it.

Key `id` (S), on-demand, items expiring at `expires_at` (epoch seconds the runtime writes: created +
SA_TASK_TTL_DAYS), point-in-time recovery. CloudFormation names it, so a retained table never blocks a
redeploy; the functions get the name in SA_TASKS_TABLE.

Its key, global secondary indexes, billing and expiry attribute are `serverless_agents.aws.tasks_table.SCHEMA`
read field by field here; the local stack creates the same schema (`table_definition`). The indexes are
sparse and KEYS_ONLY: `watching` (key `watch`, S) holds only waiting sensor tasks, so an event finds the
tasks it concerns with one query (`TasksTable.tasks_watching`), never a scan; `open` (key `open`, S, sort
key `end_by`, N) holds only open tasks, so the sweeper finds those past their bound with one query
(`TasksTable.overdue`); `waking` (key `wake`, S) holds only running async tasks whose agent declares
events, so an event finds the task its job belongs to.

Each agent is a tenant: its functions reach only its own items (`grant_agent_items`, and on `watching`
`grant_index_query(..., agent=)`), by the keys' first characters, which name the agent
(`identity.agent_key_prefix`: task ids and stored `watch` values start with `<agent>_`). IAM's condition key
`dynamodb:LeadingKeys` is the request's partition key value (for a Query on an index, the index's); AWS
documents it as multivalued, to be used with `ForAllValues`
(https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/specifying-conditions.html), and
`StringLike` takes the `*`. Every action granted so (GetItem, UpdateItem, Query) names a key: `ForAllValues`
over no value at all would hold, which is why no keyless action (Scan, batch or transaction calls) is ever
granted to an agent. The shared functions (api, finalize, sweeper) are trusted and keep the whole table.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from constructs import Construct

from serverless_agents.aws.tasks_table import SCHEMA, Key
from serverless_agents.flyte.identity import agent_key_prefix

_TYPES = {"S": dynamodb.AttributeType.STRING, "N": dynamodb.AttributeType.NUMBER}


def _attribute(key: Key) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=key.name, type=_TYPES[key.type])


class TasksTable(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        # The schema the local stack creates (`serverless_agents.aws.tasks_table.SCHEMA`): key, indexes,
        # billing, expiry. Its name is CloudFormation's to choose.
        self.table = dynamodb.Table(
            self,
            "Table",
            partition_key=_attribute(SCHEMA.partition),
            billing_mode=dynamodb.BillingMode(SCHEMA.billing),
            time_to_live_attribute=SCHEMA.ttl_attribute,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            # Tasks in flight outlive a mistaken `cdk destroy`; delete the table by hand once drained.
            removal_policy=RemovalPolicy.RETAIN,
        )
        for index in SCHEMA.indexes:
            self.table.add_global_secondary_index(
                index_name=index.name,
                partition_key=_attribute(index.partition),
                sort_key=_attribute(index.sort) if index.sort else None,
                projection_type=dynamodb.ProjectionType(index.projection),
            )

    def grant_items(self, grantee: iam.IGrantable, *actions: str) -> None:
        """Item-level actions on every item of this table (the shared functions'): no scans, no other
        table."""
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(actions=list(actions), resources=[self.table.table_arn])
        )

    def grant_agent_items(self, grantee: iam.IGrantable, agent: str, *actions: str) -> None:
        """Item-level actions on `agent`'s items only: those whose key starts with `<agent>_`."""
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(
                actions=list(actions), resources=[self.table.table_arn], conditions=agent_keys(agent)
            )
        )

    def index_arn(self, index: str) -> str:
        return f"{self.table.table_arn}/index/{index}"

    def grant_index_query(self, grantee: iam.IGrantable, index: str, *, agent: str | None = None) -> None:
        """`dynamodb:Query` on one index of this table: not on the table itself, nor on any other index;
        with `agent`, only for index keys of that agent's."""
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["dynamodb:Query"],
                resources=[self.index_arn(index)],
                conditions=agent_keys(agent) if agent is not None else None,
            )
        )


def agent_keys(agent: str) -> dict[str, dict[str, list[str]]]:
    """The condition keeping a grant to the items (or index entries) whose keys start with `<agent>_`."""
    return {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{agent_key_prefix(agent)}*"]}}
