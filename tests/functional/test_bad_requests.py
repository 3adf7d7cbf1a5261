"""Bad input gets a 4xx naming what is wrong, and changes nothing: no item, no execution, no job."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from google.protobuf import json_format

from tests.functional.conftest import Harness

pytestmark = pytest.mark.functional


def _post(url: str, body: bytes) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _request_json(harness: Harness, change: Callable[[dict[str, Any]], None]) -> bytes:
    body = json_format.MessageToDict(harness.request(custom={"polls": 1}))
    change(body)
    return json.dumps(body).encode()


def _wrong_input_type(body: dict[str, Any]) -> None:
    body["inputs"]["literals"]["n"] = {"scalar": {"primitive": {"stringValue": "three"}}}


def _blob_input(uri: str, fmt: str, declared: str) -> Callable[[dict[str, Any]], None]:
    def change(body: dict[str, Any]) -> None:
        variables = body["template"]["interface"]["inputs"]["variables"]
        variables["f"] = {"type": {"blob": {"format": declared}}}
        blob = {"uri": uri, "metadata": {"type": {"format": fmt}}}
        body["inputs"]["literals"]["f"] = {"scalar": {"blob": blob}}

    return change


def _unknown_simple_type(body: dict[str, Any]) -> None:
    body["template"]["interface"]["inputs"]["variables"]["n"]["type"] = {"simple": 99}


@pytest.mark.parametrize(
    ("make_body", "status", "field"),
    [
        (lambda h: b"{not json", 400, "body"),
        (lambda h: b"[]", 400, "body"),
        (lambda h: _request_json(h, lambda b: b.pop("template")), 400, "template"),
        (lambda h: _request_json(h, lambda b: b["template"].pop("type")), 400, "template.type"),
        (lambda h: _request_json(h, lambda b: b.pop("taskExecutionMetadata")), 400, "taskExecutionMetadata"),
        (lambda h: _request_json(h, _wrong_input_type), 400, "inputs.n"),
        (lambda h: _request_json(h, lambda b: b["template"].update(type=7)), 400, "body"),
        (lambda h: _request_json(h, lambda b: b["template"].update(type="no_such_type")), 404, None),
        # Once 500s: RecursionError, protobuf's SystemError, ValueError from SimpleType.Name.
        (lambda h: b"[" * 50_000, 400, "body"),
        (lambda h: b'{"template": ' * 50_000, 400, "body"),
        (
            lambda h: _request_json(h, lambda b: b.update(outputPrefix="s3://x/\ud800")),
            400,
            "body.outputPrefix",
        ),
        (
            lambda h: _request_json(h, lambda b: b["template"].update(custom={"\udfff": 1})),
            400,
            "body.template",
        ),
        (lambda h: _request_json(h, _unknown_simple_type), 400, "template.interface.inputs.n"),
        (lambda h: _request_json(h, lambda b: b["template"].update(custom={"x": float("nan")})), 400, "body"),
        # Once accepted: a file input without a URI, or in another format than the interface declares.
        (lambda h: _request_json(h, _blob_input("", "csv", "csv")), 400, "inputs.f"),
        (lambda h: _request_json(h, _blob_input("s3://b/k", "parquet", "csv")), 400, "inputs.f"),
    ],
    ids=[
        "not-json",
        "not-object",
        "no-template",
        "no-type",
        "no-execution-id",
        "input-type",
        "type-not-str",
        "unknown-type",
        "deep-array",
        "deep-object",
        "lone-surrogate",
        "lone-surrogate-key",
        "unknown-simple-type",
        "nan",
        "blob-without-uri",
        "blob-format-mismatch",
    ],
)
def test_bad_create_is_rejected_and_writes_nothing(
    harness: Harness, make_body: Callable[[Harness], bytes], status: int, field: str | None
) -> None:
    items, executions, jobs = harness.table_size(), len(harness.executions("job")), harness.job_count()

    code, body = _post(f"{harness.stack.api_url}/v1/tasks", make_body(harness))

    assert code == status, body
    assert body["error"]["message"]
    if field is not None:
        assert body["error"]["field"].startswith(field), body
    assert harness.table_size() == items
    assert len(harness.executions("job")) == executions
    assert harness.job_count() == jobs


@pytest.mark.parametrize(
    ("path", "status", "field"),
    [("/v1/tasks/bad%20id", 400, "task_id"), ("/v1/tasks/unknown", 404, None), ("/v1/nothing", 404, None)],
)
def test_bad_paths_name_what_is_wrong(harness: Harness, path: str, status: int, field: str | None) -> None:
    try:
        with urllib.request.urlopen(harness.stack.api_url + path) as response:
            code, body = response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        code, body = e.code, json.loads(e.read())

    assert code == status
    assert body["error"].get("field") == field
