"""ConnectionSecretStore on moto's Secrets Manager: one secret per agent, scope and set of Flyte secret
names; rotated values replace the old; the sweeper deletes a secret once no task can still use it."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from serverless_agents.aws.connection_secrets import (
    EXPIRES_TAG,
    EXPIRY_MARGIN_SECONDS,
    ConnectionSecretStore,
    take_secret_values,
)
from serverless_agents.exceptions import InvalidRequest, ServiceUnavailable

NAMES = {"databricks_token": "team-token"}


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def client() -> Iterator[object]:
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="us-east-1")


def value_of(client: object, name: str) -> dict[str, str]:
    return dict(json.loads(client.get_secret_value(SecretId=name)["SecretString"]))  # type: ignore[attr-defined]


def test_the_same_names_in_the_same_scope_share_one_secret_and_rotation_replaces_it(client: object) -> None:
    store = ConnectionSecretStore("dep", client=client)  # type: ignore[arg-type]

    first = store.put("dbx", "team-a", "development", NAMES, {"databricks_token": "v1"}, 3600)
    again = store.put("dbx", "team-a", "development", NAMES, {"databricks_token": "v2"}, 3600)
    other_project = store.put("dbx", "team-b", "development", NAMES, {"databricks_token": "v3"}, 3600)
    other_name = store.put(
        "dbx", "team-a", "development", {"databricks_token": "x"}, {"databricks_token": "v4"}, 1
    )

    assert first == again
    assert first.startswith("dep/connections/dbx/team-a/development/")
    assert len({first, other_project, other_name}) == 3
    assert value_of(client, first) == {"databricks_token": "v2"}
    assert value_of(client, other_project) == {"databricks_token": "v3"}
    assert "v" not in first.rsplit("/", 1)[1].strip("0123456789abcdef")  # a digest of names, not values


def test_the_sweeper_deletes_only_secrets_past_their_last_tasks_bound(client: object) -> None:
    clock = Clock()
    store = ConnectionSecretStore("dep", client=client, clock=clock)  # type: ignore[arg-type]
    old = store.put("dbx", "team-a", "development", NAMES, {"databricks_token": "v1"}, 3600)
    clock.now += 1000
    kept = store.put("dbx", "team-b", "development", NAMES, {"databricks_token": "v2"}, 3600)
    client.create_secret(Name="dep/connections/dbx/hand/made/1", SecretString="{}")  # type: ignore[attr-defined]
    client.create_secret(Name="elsewhere", SecretString="x")  # type: ignore[attr-defined]

    clock.now += 3600 + EXPIRY_MARGIN_SECONDS - 500  # past `old`'s bound, not `kept`'s
    assert store.sweep() == [old]
    # A task that came after the listing extends the secret: the next sweep keeps it.
    reused = store.put("dbx", "team-b", "development", NAMES, {"databricks_token": "v2"}, 3600)
    clock.now += 1000
    assert store.sweep() == []

    names = {s["Name"] for s in client.list_secrets()["SecretList"]}  # type: ignore[attr-defined]
    assert names == {kept, "dep/connections/dbx/hand/made/1", "elsewhere"}
    assert reused == kept
    tags = client.describe_secret(SecretId=kept)["Tags"]  # type: ignore[attr-defined]
    assert [t["Key"] for t in tags] == [EXPIRES_TAG]


def test_errors_name_the_keys_and_aws_code_never_a_value(client: object) -> None:
    store = ConnectionSecretStore("dep", client=client)  # type: ignore[arg-type]
    name = store.put("dbx", "team-a", "development", NAMES, {"databricks_token": "v1"}, 1)
    client.delete_secret(SecretId=name, RecoveryWindowInDays=7)  # type: ignore[attr-defined]
    value = "s3cr3t-value-that-must-not-show"

    with pytest.raises(ServiceUnavailable) as error:  # a secret scheduled for deletion takes no value
        store.put("dbx", "team-a", "development", NAMES, {"databricks_token": value}, 1)

    assert "databricks_token" in str(error.value)
    assert "InvalidRequestException" in str(error.value)
    assert value not in str(error.value)
    assert error.value.__cause__ is None
    assert error.value.__suppress_context__


@pytest.mark.parametrize("project", ["", "a/b", "../x", "x" * 64])
def test_a_scope_that_is_no_name_part_is_refused(client: object, project: str) -> None:
    store = ConnectionSecretStore("dep", client=client)  # type: ignore[arg-type]

    with pytest.raises(InvalidRequest, match="project"):
        store.put("dbx", project, "development", NAMES, {"databricks_token": "v"}, 1)


def test_secret_values_are_taken_out_of_the_executors_request() -> None:
    request = {
        "template": {"type": "databricks"},
        "connection": {"secrets": {"databricks_token": "v"}, "configs": {"region": "r"}},
    }

    original, values = take_secret_values(request)

    assert values == {"databricks_token": "v"}
    assert original == {"template": {"type": "databricks"}, "connection": {"configs": {"region": "r"}}}
    assert take_secret_values({"connection": {"secrets": {"k": "v"}}})[0] == {}
    with pytest.raises(InvalidRequest, match="map names to strings"):
        take_secret_values({"connection": {"secrets": {"k": 1}}})
