"""`PayloadBucket`: large task requests and outputs (`serverless_agents.aws.payloads`), as `s3://` references.

Encrypted (S3-managed keys), TLS only, no public access. Keys are `<kind>/<agent>/<task_id>.json`
(`payload_key`), and grants follow the same function: an agent's functions reach `<kind>/<agent>/*.json`
of the kinds they use and no other agent's keys, so one agent can neither read another's requests nor
overwrite the outputs Flyte receives from it. Each kind's objects expire a little after the tasks table's
items do (DynamoDB deletes expired items within a few days), so a readable task never points at a deleted
payload, and nothing outlives its task for long.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from serverless_agents.aws.payloads import PAYLOAD_KINDS, PayloadKind, payload_key

from . import nag

#: How much longer than the task's TTL a payload lives: DynamoDB's TTL deletion lags by up to days.
TTL_MARGIN_DAYS = 2


class PayloadBucket(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, task_ttl_days: int) -> None:
        super().__init__(scope, construct_id)
        expiry = Duration.days(task_ttl_days + TTL_MARGIN_DAYS)
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[
                *(
                    s3.LifecycleRule(id=f"expire-{k}", prefix=f"{k}/", expiration=expiry)
                    for k in PAYLOAD_KINDS
                ),
                s3.LifecycleRule(
                    id="abort-incomplete-uploads", abort_incomplete_multipart_upload_after=Duration.days(1)
                ),
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
        nag.payload_bucket_choices(self.bucket)

    def grant(self, role: iam.IRole, actions: list[str], kind: PayloadKind, agents: Sequence[str]) -> None:
        """`actions` on the `kind` payloads of `agents` (each `<kind>/<agent>/*.json`), and no other key."""
        if not agents:
            return
        resources = [self.bucket.arn_for_objects(payload_key(kind, agent, "*")) for agent in agents]
        role.add_to_principal_policy(iam.PolicyStatement(actions=actions, resources=resources))
        nag.payload_keys(role, resources, kind)
