"""cdk-nag's AwsSolutions checks pass: every finding is fixed or acknowledged with a reason (nag.py)."""

from __future__ import annotations

import json

import pytest
from cdk_nag import AwsSolutionsChecks

from tests.infra.conftest import WATCHED_BUCKET, Synth


@pytest.fixture(params=["base", "sensing"])
def synth(request: pytest.FixtureRequest) -> Synth:
    """Each synthesized manifest: without sensors, and with a sensor and manifest permissions."""
    synth: Synth = request.getfixturevalue(request.param)
    return synth


def test_aws_solutions_checks_find_nothing_unacknowledged(synth: Synth) -> None:
    report = AwsSolutionsChecks().validate_scope(synth.app)

    findings = [
        f"{v.severity} {v.rule_name} at {r.construct_path}"
        for v in report.violations
        for r in v.violating_resources
    ]
    assert findings == []
    assert report.success


def test_synth_validation_report_lists_no_open_violation(synth: Synth) -> None:
    # Synth itself would have raised on an error; warnings (and CloudFormation's own checks) land here.
    path = synth.outdir / "validation-report.json"
    reports = json.loads(path.read_text())["pluginReports"] if path.exists() else []

    assert [(r["pluginName"], v["ruleName"]) for r in reports for v in r["violations"]] == []
    for report in reports:
        assert all(s["reason"].strip() for s in report.get("suppressedViolations", []))


def test_wildcard_finding_ids_are_named_as_cdk_nag_names_them() -> None:
    from infra.cdk.serverless_agents_cdk import nag

    assert nag._flatten({"Fn::Join": ["", [{"Fn::GetAtt": ["Bucket", "Arn"]}, "/requests/*"]]}) == (
        "<Bucket.Arn>/requests/*"
    )
    assert (
        nag._flatten({"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":x:*"]]})
        == "arn:<AWS::Partition>:x:*"
    )


def acknowledgments(synth: Synth) -> dict[str, dict[str, str]]:
    """Construct path -> each finding acknowledged there -> its reason (`nag.acknowledge` records them as
    construct metadata)."""
    found: dict[str, dict[str, str]] = {}
    for construct in synth.app.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == "aws:cdk:acknowledged-rules":
                found.setdefault(construct.node.path, {}).update(
                    {str(k).removeprefix("Annotation::"): str(v) for k, v in dict(entry.data).items()}
                )
    return found


def test_every_acknowledgment_names_one_finding_and_says_why(synth: Synth) -> None:
    for path, findings in acknowledgments(synth).items():
        for finding, reason in findings.items():
            if finding.startswith("AwsSolutions-IAM5"):
                assert finding.startswith("AwsSolutions-IAM5[Resource::"), (path, finding)  # one resource
            assert len(reason.split()) >= 10, (path, finding, reason)


def test_poke_role_acknowledges_exactly_its_own_wildcards(sensing: Synth) -> None:
    found = acknowledgments(sensing)
    poke = found["serverless-agents/SensorFiles/Poke/Role"]
    partition_region_account = "arn:<AWS::Partition>:scheduler:<AWS::Region>:<AWS::AccountId>"

    assert set(poke) == {
        "AwsSolutions-IAM5[Resource::*]",  # X-Ray
        "AwsSolutions-IAM5[Resource::<PayloadBucketF1E70C09.Arn>/requests/files/*.json]",  # its own only
        f"AwsSolutions-IAM5[Resource::{partition_region_account}:schedule/serverless-agents-files/*]",
        f"AwsSolutions-IAM5[Resource::arn:aws:s3:::{WATCHED_BUCKET}/*]",  # the manifest's
    }
    assert (
        "[[agents.files.permissions]]"
        in poke[f"AwsSolutions-IAM5[Resource::arn:aws:s3:::{WATCHED_BUCKET}/*]"]
    )
    assert not [path for path in found if path.startswith("serverless-agents/SchedulerRole")]
