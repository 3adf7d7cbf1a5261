"""The manifest refuses an operator's foot-guns (#19, finding 9): requirements that pip would fetch from
somewhere other than the package index, and ARNs whose wildcards reach as far as `*` would."""

from __future__ import annotations

import json

import pytest

from serverless_agents.deployment.manifest import parse_manifest
from serverless_agents.exceptions import ManifestError

_AGENT = '[agents.job]\nclass = "pkg.mod:Agent"\n'


def _error(text: str) -> str:
    with pytest.raises(ManifestError) as error:
        parse_manifest(text, source="test.toml")
    return str(error.value)


def _requirements(*lines: str, allow: bool | None = None) -> str:
    listed = ", ".join(json.dumps(line) for line in lines)  # a JSON string is a TOML basic string
    flag = "" if allow is None else f"allow_direct_references = {str(allow).lower()}\n"
    return f"{_AGENT}requirements = [{listed}]\n{flag}"


DIRECT = [
    "x @ https://example.org/x-1.0-py3-none-any.whl",
    "x @ git+ssh://git@github.com/org/x.git",
    "x@git+https://github.com/org/x",
    "x @ file:///tmp/x.tar.gz",
    "x[extra] @ https://e/x.zip ; python_version >= '3.11'",
    "pkg.whl",
    "pkg-1.0-py3-none-any.whl",
    "x.tar.gz",
    "archive.zip",
]


@pytest.mark.parametrize("line", DIRECT)
def test_a_direct_reference_is_refused_naming_the_requirement(line: str) -> None:
    message = _error(_requirements("httpx==0.27.0", line))

    assert "agents.job" in message
    assert "requirements.1" in message
    assert "allow_direct_references" in message


@pytest.mark.parametrize("line", DIRECT)
def test_the_operator_may_allow_direct_references_for_one_agent(line: str) -> None:
    manifest = parse_manifest(_requirements(line, allow=True))

    assert manifest.agent("job").requirements == [line]
    assert manifest.agent("job").allow_direct_references is True


def test_index_requirements_still_pass() -> None:
    lines = ["httpx==0.27.0", "requests[socks]>=2,<3", "tomli; python_version < '3.11'", "attrs"]

    assert parse_manifest(_requirements(*lines)).agent("job").requirements == lines


def test_allow_direct_references_is_a_boolean() -> None:
    assert "allow_direct_references" in _error(f'{_AGENT}allow_direct_references = "yes"\n')


def _permission(resource: str, action: str = "s3:GetObject") -> str:
    return f'{_AGENT}[[agents.job.permissions]]\nactions = ["{action}"]\nresources = ["{resource}"]\n'


@pytest.mark.parametrize(
    ("resource", "action"),
    [
        ("arn:*", "s3:GetObject"),
        ("arn:aws:*", "s3:GetObject"),
        ("arn:aws:s3:::*", "s3:GetObject"),
        ("arn:aws:s3:::*/*", "s3:GetObject"),
        ("arn:aws:s3:::b*/*", "s3:GetObject"),
        ("arn:aws:s3:::my-bucket*", "s3:ListBucket"),
        ("arn:aws:s3:::?", "s3:ListBucket"),
        ("arn:*:s3:::my-bucket/*", "s3:GetObject"),
        ("arn:aws:*:us-east-1:123456789012:task/x", "ecs:StopTask"),
        ("arn:aws:ecs:*:123456789012:task/x", "ecs:StopTask"),
        ("arn:aws:ecs:us-east-1:*:task/x", "ecs:StopTask"),
        ("arn:aws:ecs:us-east-1:12345678901?:task/x", "ecs:StopTask"),
        ("arn:aws:ecs:us-east-1:123456789012:*", "ecs:StopTask"),
        ("arn:aws:ecs:us-east-1:123456789012:task/*", "ecs:StopTask"),
        ("arn:aws:iam::123456789012:role/*", "iam:PassRole"),
        ("arn:aws:lambda:us-east-1:123456789012:function:*", "lambda:InvokeFunction"),
        ("arn:aws:secretsmanager:us-east-1:123456789012:secret:*", "secretsmanager:GetSecretValue"),
        ("arn:aws:sqs:us-east-1:123456789012:*", "sqs:SendMessage"),
        ("arn:aws:ecs:us-east-1:123456789012", "ecs:StopTask"),  # no resource at all
    ],
)
def test_a_wildcard_that_reaches_as_far_as_star_is_refused(resource: str, action: str) -> None:
    message = _error(_permission(resource, action))

    assert "agents.job.permissions.0" in message
    assert repr(resource) in message


@pytest.mark.parametrize(
    ("resource", "action"),
    [
        ("arn:aws:s3:::my-bucket/*", "s3:GetObject"),
        ("arn:aws:s3:::my-bucket/incoming/*", "s3:GetObject"),
        ("arn:aws:s3:::my-bucket", "s3:ListBucket"),
        ("arn:aws:ecs:us-east-1:123456789012:task-definition/flyte-*", "ecs:RunTask"),
        ("arn:aws:ecs:us-east-1:123456789012:task/flyte-tasks/*", "ecs:StopTask"),
        ("arn:aws:iam::123456789012:role/flyte-ecs-task", "iam:PassRole"),
        ("arn:aws:secretsmanager:us-east-1:123456789012:secret:team-a/*", "secretsmanager:GetSecretValue"),
        ("arn:aws-cn:s3:::bucket/key", "s3:GetObject"),
    ],
)
def test_a_wildcard_after_a_named_resources_prefix_is_the_operators_choice(
    resource: str, action: str
) -> None:
    manifest = parse_manifest(_permission(resource, action))

    assert manifest.agent("job").permissions[0].resources == [resource]
