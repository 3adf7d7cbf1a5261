"""cdk-nag's AwsSolutions checks pass: every finding is fixed or acknowledged with a reason (nag.py)."""

from __future__ import annotations

import json

from cdk_nag import AwsSolutionsChecks

from tests.infra.conftest import Synth


def test_aws_solutions_checks_find_nothing_unacknowledged(base: Synth) -> None:
    report = AwsSolutionsChecks().validate_scope(base.app)

    findings = [
        f"{v.severity} {v.rule_name} at {r.construct_path}"
        for v in report.violations
        for r in v.violating_resources
    ]
    assert findings == []
    assert report.success


def test_synth_validation_report_lists_no_open_violation(base: Synth) -> None:
    # Synth itself would have raised on an error; warnings (and CloudFormation's own checks) land here.
    path = base.outdir / "validation-report.json"
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
