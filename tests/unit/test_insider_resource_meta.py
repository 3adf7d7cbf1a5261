"""`resource_meta` signing (issue #19, finding 5): only what the adapter's keys signed is read back, whatever
a caller changes in it; keys are configured from the environment without ever being shown."""

from __future__ import annotations

import json

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from serverless_agents.exceptions import InvalidRequest, ManifestError
from serverless_agents.flyte.resource_meta import ResourceMeta, ResourceMetaKeys, encode_resource_meta

KEY, OTHER_KEY = "k" * 32, "q" * 40
TASK_IDS = st.from_regex(r"[A-Za-z0-9_-]{1,80}", fullmatch=True)
AGENTS = st.from_regex(r"[a-z][a-z0-9-]{0,29}", fullmatch=True)
PROPERTY = settings(derandomize=True, max_examples=200, deadline=None)


@PROPERTY
@given(TASK_IDS, AGENTS)
def test_what_the_keys_signed_is_read_back_and_stays_small(task_id: str, agent: str) -> None:
    signed = ResourceMetaKeys([KEY]).sign(encode_resource_meta(task_id, agent))

    assert ResourceMetaKeys([KEY]).verify(signed) == ResourceMeta(task_id, agent)
    assert len(signed) < 250


@PROPERTY
@given(TASK_IDS, AGENTS, TASK_IDS, AGENTS)
def test_another_task_or_agent_under_a_signature_is_refused(
    task_id: str, agent: str, other_task: str, other_agent: str
) -> None:
    assume((other_task, other_agent) != (task_id, agent))
    keys = ResourceMetaKeys([KEY])
    signed = json.loads(keys.sign(encode_resource_meta(task_id, agent)))
    forged = {**signed, "task_id": other_task, "agent": other_agent}

    with pytest.raises(InvalidRequest) as refused:
        keys.verify(json.dumps(forged).encode())
    assert refused.value.field == "resource_meta.sig"


@PROPERTY
@given(TASK_IDS, AGENTS, st.text(max_size=60) | st.integers() | st.none() | st.lists(st.text(), max_size=2))
def test_a_made_up_signature_is_refused(task_id: str, agent: str, signature: object) -> None:
    meta = json.dumps({"task_id": task_id, "agent": agent, "sig": signature}).encode()

    with pytest.raises(InvalidRequest) as refused:
        ResourceMetaKeys([KEY]).verify(meta)
    assert refused.value.field in ("resource_meta", "resource_meta.sig")


def test_rotation_signs_with_the_first_key_and_verifies_with_any() -> None:
    issued_before = ResourceMetaKeys([OTHER_KEY]).sign(encode_resource_meta("t1", "job"))
    rotated = ResourceMetaKeys([KEY, OTHER_KEY])

    assert rotated.verify(issued_before).task_id == "t1"
    assert ResourceMetaKeys([KEY]).verify(rotated.sign(encode_resource_meta("t2", "job"))).task_id == "t2"
    with pytest.raises(InvalidRequest, match="SA_RESOURCE_META_KEYS"):
        ResourceMetaKeys([KEY]).verify(issued_before)


def test_unsigned_is_refused_unless_migration_allows_it() -> None:
    unsigned = encode_resource_meta("t1", "job")

    with pytest.raises(InvalidRequest, match="SA_RESOURCE_META_ALLOW_UNSIGNED=true"):
        ResourceMetaKeys([KEY]).verify(unsigned)
    assert ResourceMetaKeys([KEY], allow_unsigned=True).verify(unsigned) == ResourceMeta("t1", "job")
    assert ResourceMetaKeys([KEY], allow_unsigned=True).verify(b'{"task_id": "t1"}') == ResourceMeta(
        "t1", None
    )


def test_keys_come_from_the_environment_comma_separated() -> None:
    keys = ResourceMetaKeys.from_environment(
        {"SA_RESOURCE_META_KEYS": f" {KEY} ,{OTHER_KEY}", "SA_RESOURCE_META_ALLOW_UNSIGNED": "True"}
    )

    assert keys.allow_unsigned
    assert keys.verify(ResourceMetaKeys([OTHER_KEY]).sign(encode_resource_meta("t1", "job"))).agent == "job"


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({}, "SA_RESOURCE_META_KEYS is not set"),
        ({"SA_RESOURCE_META_KEYS": " , "}, "SA_RESOURCE_META_KEYS is not set"),
        ({"SA_RESOURCE_META_KEYS": f"{KEY},short-secret-value"}, "key 2 has 18 characters"),
        ({"SA_RESOURCE_META_KEYS": KEY, "SA_RESOURCE_META_ALLOW_UNSIGNED": "yes"}, "not true or false"),
    ],
)
def test_bad_key_settings_are_refused_without_showing_a_key(env: dict[str, str], complaint: str) -> None:
    with pytest.raises(ManifestError) as refused:
        ResourceMetaKeys.from_environment(env)

    assert complaint in str(refused.value)
    assert "short-secret-value" not in str(refused.value)
    assert KEY not in str(refused.value)
