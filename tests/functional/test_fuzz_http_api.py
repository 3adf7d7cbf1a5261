"""Property-based fuzzing of the HTTP API over real HTTP (the local API Gateway, the real handlers on moto):
hostile bodies, ids and agent names never get a 5xx, every error is one line (a 400 names its field), and
nothing a rejected request sent is written anywhere (tasks table, executions, schedules, S3).

Seeded and sized in tests/functional/hostile.py (`SA_FUZZ_EXAMPLES` runs more).
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import pytest
import urllib3
from flyteidl.admin import agent_pb2
from hypothesis import given
from hypothesis import strategies as st

from serverless_agents.flyte import wire
from serverless_agents.flyte.resource_meta import task_id_from_resource_meta
from tests.functional.conftest import Harness
from tests.functional.hostile import (
    FUZZ,
    assert_nothing_written,
    check_http_answer,
    holdings,
    hostile_text,
    request_bodies,
)

pytestmark = pytest.mark.functional

_HEADERS = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def http() -> Iterator[urllib3.PoolManager]:
    pool = urllib3.PoolManager(maxsize=4, retries=False, timeout=30)
    yield pool
    pool.clear()


def _ids() -> st.SearchStrategy[str]:
    """Path segments: percent-encoded hostile text, raw oddities, and ids of tasks that do not exist."""
    return st.one_of(
        hostile_text.map(lambda t: quote(t.encode(errors="surrogatepass"), safe="")),
        st.sampled_from(
            ["%ff", "%00", "..", "%2e%2e", "a%2Fb", "x" * 81, "x" * 70_000, "demo-a0-0123456789abcdef"]
        ),
        st.from_regex(r"[A-Za-z0-9_-]{1,80}", fullmatch=True),
    )


def test_fuzz_create_task(harness: Harness, http: urllib3.PoolManager) -> None:
    before, accepted = holdings(harness.stack), set()

    @FUZZ
    @given(request_bodies("example_job"))
    def create(body: bytes) -> None:
        response = http.request("POST", f"{harness.stack.api_url}/v1/tasks", body=body, headers=_HEADERS)
        check_http_answer(response.status, response.data)
        if response.status < 300:  # a drawn request can be valid: what it writes is its own
            created = wire.from_json(agent_pb2.CreateTaskResponse, response.data)
            accepted.add(task_id_from_resource_meta(created.resource_meta))

    create()
    assert_nothing_written(before, holdings(harness.stack), accepted)


def test_fuzz_get_and_delete_task(harness: Harness, http: urllib3.PoolManager) -> None:
    before = holdings(harness.stack)

    @FUZZ
    @given(st.sampled_from(["GET", "DELETE"]), _ids())
    def get_or_delete(method: str, task_id: str) -> None:
        response = http.request(method, f"{harness.stack.api_url}/v1/tasks/{task_id}")
        check_http_answer(response.status, response.data)
        # No task exists in this module's stack but the fuzzed creates': nothing is found (a delete may
        # also answer that nothing needs doing).
        assert response.status >= 400 or method == "DELETE", (task_id, response.data)

    get_or_delete()
    assert_nothing_written(before, holdings(harness.stack), set())


def test_fuzz_sync(harness: Harness, http: urllib3.PoolManager) -> None:
    before = holdings(harness.stack)
    agents = st.one_of(st.just("echo"), _ids())

    @FUZZ
    @given(agents, request_bodies("example_echo"))
    def execute(agent: str, body: bytes) -> None:
        response = http.request(
            "POST", f"{harness.stack.api_url}/v1/sync/{agent}", body=body, headers=_HEADERS
        )
        check_http_answer(response.status, response.data)

    execute()
    assert_nothing_written(before, holdings(harness.stack), set())
