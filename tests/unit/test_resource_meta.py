"""`resource_meta` as this service issues it, and as every caller reads it back: a task id checked before it
becomes part of a URL."""

from __future__ import annotations

import json

import pytest

from serverless_agents.exceptions import InvalidRequest
from serverless_agents.flyte.resource_meta import encode_resource_meta, task_id_from_resource_meta


@pytest.mark.parametrize("meta", [b"", b"[]", b'{"agent": "job"}', b'{"task_id": 1}'])
def test_resource_meta_that_we_did_not_issue_is_invalid(meta: bytes) -> None:
    with pytest.raises(InvalidRequest, match="resource_meta"):
        task_id_from_resource_meta(meta)


@pytest.mark.parametrize(
    ("meta", "field"),
    [
        (json.dumps({"task_id": "x" * 70_000, "agent": "job"}).encode(), "resource_meta"),
        (b'{"task_id": "x' + b"y" * 900 + b'"}', "resource_meta.task_id"),
        (b'{"task_id": "../../v1/agents", "agent": "job"}', "resource_meta.task_id"),
        (b'{"task_id": "t1?x=1"}', "resource_meta.task_id"),
        (b'{"task_id": "t1#", "agent": "job"}', "resource_meta.task_id"),
        (b'{"task_id": "t1", "agent": "Job"}', "resource_meta.agent"),
        (b'{"task_id": "t1", "agent": ["job"]}', "resource_meta.agent"),
        (b"\xff\xfe", "resource_meta"),
        (b"[" * 1000, "resource_meta"),
    ],
)
def test_resource_meta_ids_are_checked_before_any_url(meta: bytes, field: str) -> None:
    with pytest.raises(InvalidRequest) as error:
        task_id_from_resource_meta(meta)

    assert error.value.field == field
    assert len(str(error.value)) < 200


def test_resource_meta_this_service_issues_is_read() -> None:
    issued = encode_resource_meta("demo-n0-a0-49f9dd8a5a1f1ed9", "job")

    assert issued == b'{"task_id":"demo-n0-a0-49f9dd8a5a1f1ed9","agent":"job"}'
    assert task_id_from_resource_meta(issued) == "demo-n0-a0-49f9dd8a5a1f1ed9"
