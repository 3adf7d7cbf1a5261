"""The payload bucket on moto S3: JSON round trips, offloading what is too large, refusing foreign refs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from serverless_agents.aws.payloads import PayloadStore
from serverless_agents.exceptions import InvalidRequest

DATA = {"literals": {"x": {"scalar": {"primitive": {"floatValue": 1.5}}}}, "text": "naïve ✓"}


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="payloads")
        yield client


@pytest.fixture
def store(s3: Any) -> PayloadStore:
    return PayloadStore("payloads", client=s3)


def keys(s3: Any) -> list[str]:
    return [obj["Key"] for obj in s3.list_objects_v2(Bucket="payloads").get("Contents", [])]


def test_put_json_and_get_json_round_trip(store: PayloadStore, s3: Any) -> None:
    uri = store.put_json("tasks/t1/outputs.json", DATA)

    assert uri == "s3://payloads/tasks/t1/outputs.json"
    assert store.get_json(uri) == DATA
    head = s3.head_object(Bucket="payloads", Key="tasks/t1/outputs.json")
    assert head["ContentType"] == "application/json"


def test_put_json_to_the_same_key_overwrites_instead_of_adding(store: PayloadStore, s3: Any) -> None:
    store.put_json("tasks/t1/inputs.json", {"v": 1})
    uri = store.put_json("tasks/t1/inputs.json", {"v": 2})

    assert keys(s3) == ["tasks/t1/inputs.json"]
    assert store.get_json(uri) == {"v": 2}


def test_offload_keeps_small_data_inline(store: PayloadStore, s3: Any) -> None:
    assert store.offload("tasks/t1/outputs.json", DATA, limit=10_000) == (DATA, None)
    assert keys(s3) == []


def test_offload_moves_large_data_to_the_bucket(store: PayloadStore) -> None:
    large = {"rows": [{"i": i, "value": i / 3} for i in range(5_000)]}

    inline, ref = store.offload("tasks/t1/outputs.json", large, limit=10_000)

    assert inline is None
    assert ref == "s3://payloads/tasks/t1/outputs.json"
    assert store.get_json(ref) == large


def test_offload_limit_is_inclusive(store: PayloadStore) -> None:
    data = "x" * 98  # 100 bytes of JSON with its quotes

    assert store.offload("k", data, limit=100) == (data, None)
    assert store.offload("k", data, limit=99) == (None, "s3://payloads/k")


@pytest.mark.parametrize(
    "uri",
    [
        "s3://other-bucket/tasks/t1/outputs.json",
        "s3://payloads-evil/k",
        "s3://payloads/",
        "s3://payloads",
        "https://payloads.s3.amazonaws.com/k",
        "payloads/k",
        "s3:///payloads/k",
        "s3://payloads/a\x00b",
    ],
)
def test_get_json_refuses_a_ref_outside_the_bucket(store: PayloadStore, uri: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        store.get_json(uri)
    assert caught.value.field == "ref"
    assert "payloads" in caught.value.problem
