"""`PayloadBucket`: large task requests and outputs (`serverless_agents.payloads`), as `s3://` references.

Encrypted (S3-managed keys), TLS only, no public access. `requests/` and `outputs/` objects expire a little
after the tasks table's items do (DynamoDB deletes expired items within a few days), so a readable task
never points at a deleted payload, and nothing outlives its task for long.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from . import nag

#: The runtime's key prefixes: `requests/<task_id>.json` (api), `outputs/<task_id>.json` (get).
REQUESTS = "requests/"
OUTPUTS = "outputs/"
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
                s3.LifecycleRule(id="expire-requests", prefix=REQUESTS, expiration=expiry),
                s3.LifecycleRule(id="expire-outputs", prefix=OUTPUTS, expiration=expiry),
                s3.LifecycleRule(
                    id="abort-incomplete-uploads", abort_incomplete_multipart_upload_after=Duration.days(1)
                ),
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
        nag.payload_bucket_without_access_logs(self.bucket)

    def grant_objects(self, grantee: iam.IGrantable, actions: list[str], prefixes: list[str]) -> None:
        """Object actions under `prefixes` of this bucket ("" for every key)."""
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(
                actions=actions,
                resources=[self.bucket.arn_for_objects(f"{prefix}*") for prefix in prefixes],
            )
        )
