"""The manifest's `permissions`: IAM statements an agent's own AWS calls need, validated before any deploy."""

from __future__ import annotations

import inspect
import textwrap

import pytest
from pydantic import ValidationError

from serverless_agents.deployment import manifest as manifest_module
from serverless_agents.deployment.manifest import Permission, parse_manifest
from serverless_agents.exceptions import ManifestError

ECS = """
[agents.ecs]
class = "serverless_agents.agents.ecs:EcsFargateAgent"

[[agents.ecs.permissions]]
actions = ["ecs:RunTask", "ecs:DescribeTasks", "ecs:StopTask"]
resources = [
  "arn:aws:ecs:us-east-1:123456789012:task-definition/flyte-*",
  "arn:aws:ecs:us-east-1:123456789012:task/flyte-tasks/*",
]

[[agents.ecs.permissions]]
actions = ["iam:PassRole"]
resources = ["arn:aws:iam::123456789012:role/flyte-ecs-task"]
"""


def manifest_error(permission: str) -> str:
    text = f'[agents.files]\nclass = "pkg.mod:Sensor"\n\n[[agents.files.permissions]]\n{permission}\n'
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text, source="test.toml")
    return str(caught.value)


def test_permissions_default_to_none() -> None:
    settings = parse_manifest('[agents.mine]\nclass = "pkg.mod:Agent"\n').agent("mine")

    assert settings.permissions == []


def test_array_of_tables_form_reads_into_statements_in_order() -> None:
    permissions = parse_manifest(ECS).agent("ecs").permissions

    assert permissions == [
        Permission(
            actions=["ecs:RunTask", "ecs:DescribeTasks", "ecs:StopTask"],
            resources=[
                "arn:aws:ecs:us-east-1:123456789012:task-definition/flyte-*",
                "arn:aws:ecs:us-east-1:123456789012:task/flyte-tasks/*",
            ],
        ),
        Permission(actions=["iam:PassRole"], resources=["arn:aws:iam::123456789012:role/flyte-ecs-task"]),
    ]


def test_the_module_docstring_example_is_a_valid_manifest() -> None:
    doc = inspect.getdoc(manifest_module) or ""
    example = "\n".join(
        line.split("  #", 1)[0].rstrip()
        for line in doc.split("\n\n", 2)[2].splitlines()
        if line.startswith("    ")
    )
    files = parse_manifest(textwrap.dedent(example.replace("...", "x"))).agent("files")

    assert [p.actions for p in files.permissions] == [["s3:GetObject"], ["s3:ListBucket"]]


@pytest.mark.parametrize("key", ["actions", "resources"])
def test_both_lists_are_required_and_not_empty(key: str) -> None:
    other = "resources" if key == "actions" else "actions"
    value = '["arn:aws:s3:::b"]' if other == "resources" else '["s3:GetObject"]'

    assert f"agents.files.permissions.0.{key}: Field required" in manifest_error(f"{other} = {value}")
    assert f"agents.files.permissions.0.{key}: List should have at least 1 item" in manifest_error(
        f"{key} = []\n{other} = {value}"
    )


@pytest.mark.parametrize("action", ["*", "s3:*", "s3:Get*", "ecs:Describe?asks", "GetObject", "s3:"])
def test_every_action_is_named_without_wildcards(action: str) -> None:
    error = manifest_error(f'actions = ["s3:HeadObject", "{action}"]\nresources = ["arn:aws:s3:::b/*"]')

    assert "agents.files.permissions.0.actions" in error
    assert f"action {action!r}: name each action as service:Action" in error


@pytest.mark.parametrize("resource", ["*", " * "])
def test_a_bare_star_resource_is_refused_with_what_to_write_instead(resource: str) -> None:
    error = manifest_error(f'actions = ["s3:GetObject"]\nresources = ["arn:aws:s3:::b/*", "{resource}"]')

    assert "agents.files.permissions.0" in error
    assert "resource '*' would reach every resource of the account: name the ARN instead" in error


def test_star_is_accepted_alone_for_actions_iam_cannot_scope() -> None:
    manifest = parse_manifest(
        '[agents.ecs]\nclass = "serverless_agents.agents.ecs:EcsFargateAgent"\n'
        '[[agents.ecs.permissions]]\nactions = ["ecs:RegisterTaskDefinition", "ecs:DescribeTaskDefinition"]\n'
        'resources = ["*"]\n'
    )

    assert manifest.agent("ecs").permissions[0].resources == ["*"]


def test_star_is_refused_beside_an_action_iam_can_scope() -> None:
    error = manifest_error('actions = ["ecs:RegisterTaskDefinition", "s3:GetObject"]\nresources = ["*"]')

    assert "accepted alone, only for actions that allow nothing narrower" in error


def test_a_resource_that_is_not_an_arn_is_refused() -> None:
    error = manifest_error('actions = ["s3:GetObject"]\nresources = ["my-landing-bucket/*"]')

    assert "resource 'my-landing-bucket/*': expected an ARN" in error


def test_wildcards_inside_an_arn_are_the_users_to_choose() -> None:
    (permission,) = (
        parse_manifest(
            '[agents.f]\nclass = "p.m:S"\n[[agents.f.permissions]]\n'
            'actions = ["s3:GetObject"]\nresources = ["arn:aws:s3:::landing/incoming/*"]\n'
        )
        .agent("f")
        .permissions
    )

    assert permission.resources == ["arn:aws:s3:::landing/incoming/*"]


def test_unknown_keys_are_refused() -> None:
    error = manifest_error('actions = ["s3:GetObject"]\nresources = ["arn:aws:s3:::b/*"]\neffect = "Deny"')

    assert "agents.files.permissions.0.effect: Extra inputs are not permitted" in error


def test_a_permission_is_frozen() -> None:
    permission = Permission(actions=["s3:GetObject"], resources=["arn:aws:s3:::b/*"])

    with pytest.raises(ValidationError):
        permission.actions = ["s3:PutObject"]  # type: ignore[misc]
