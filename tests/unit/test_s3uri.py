"""The project's one s3:// parser: what it reads, what it refuses (naming the field), and the callers that
refuse a hostile URI before any AWS call."""

from __future__ import annotations

import string
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serverless_agents.agents.ecs.outputs import output_prefix
from serverless_agents.agents.file_sensor import FileSensor
from serverless_agents.aws.s3uri import parse_s3_uri
from serverless_agents.exceptions import AgentError, InvalidRequest


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://bucket/key", ("bucket", "key")),
        ("s3://my-lake/day=1/_SUCCESS", ("my-lake", "day=1/_SUCCESS")),
        ("s3://b.with.dots/a/b/c.pb", ("b.with.dots", "a/b/c.pb")),
        # Legacy us-east-1 buckets may have upper case and underscores: S3 judges the name, not the parser.
        ("s3://Legacy_Bucket/k", ("Legacy_Bucket", "k")),
        # A key is everything after the bucket, as S3 stores it: no query, fragment or escape is read.
        ("s3://b/report?versionId=3#part", ("b", "report?versionId=3#part")),
        ("s3://b/a%2Fb", ("b", "a%2Fb")),
        ("s3://b//double", ("b", "/double")),
        ("s3://b/with space /", ("b", "with space /")),
        ("s3://b/día/ünïcødé ✓.csv", ("b", "día/ünïcødé ✓.csv")),
    ],
)
def test_reads_bucket_and_key(uri: str, expected: tuple[str, str]) -> None:
    assert parse_s3_uri(uri) == expected


@pytest.mark.parametrize("uri", ["s3://bucket", "s3://bucket/"])
def test_a_bucket_alone_is_a_prefix_when_no_key_is_required(uri: str) -> None:
    assert parse_s3_uri(uri, key_required=False) == ("bucket", "")


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        ("", "is not an s3:// URI"),
        ("bucket/key", "is not an s3:// URI"),
        ("s3:/bucket/key", "is not an s3:// URI"),
        ("s3:bucket/key", "is not an s3:// URI"),
        ("S3://bucket/key", "is not an s3:// URI"),
        ("s3a://bucket/key", "is not an s3:// URI"),
        ("\uff53" + "3://bucket/key", "is not an s3:// URI"),  # a fullwidth s
        (" s3://bucket/key", "is not an s3:// URI"),
        ("https://bucket.s3.amazonaws.com/key", "is not an s3:// URI"),
        ("s3://", "names no bucket"),
        ("s3:///key", "names no bucket"),
        ("s3:////", "names no bucket"),
        ("s3://bucket", "names no object key"),
        ("s3://bucket/", "names no object key"),
        ("s3://bu cket/key", "a bucket name holds only"),
        ("s3://bucket /key", "a bucket name holds only"),
        ("s3://bücket/key", "a bucket name holds only"),
        ("s3://user:secret@bucket/key", "a bucket name holds only"),
        ("s3://bucket:443/key", "a bucket name holds only"),
        ("s3://bucket?x=1", "a bucket name holds only"),
        ("s3://bucket\\key", "a bucket name holds only"),
        ("s3://bucket/\ud800", "not valid unicode"),
        ("s3://bucket/a\nb", "control character"),
        ("s3://bucket/a\x00b", "control character"),
        ("s3://bucket/" + "k" * 1025, "1025 bytes, over S3's 1024"),
        ("s3://bucket/" + "é" * 513, "1026 bytes, over S3's 1024"),
    ],
)
def test_refuses_what_is_not_an_object_naming_the_field(uri: str, problem: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_s3_uri(uri, "inputs.path")

    assert caught.value.field == "inputs.path"
    assert problem in caught.value.problem
    assert str(caught.value).startswith("inputs.path: ")
    assert "\n" not in str(caught.value)


def test_a_huge_uri_is_quoted_in_part() -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_s3_uri("s3://" + "b" * 1_000_000)

    assert len(str(caught.value)) < 400


_BUCKETS = st.text(string.ascii_lowercase + string.digits + ".-", min_size=3, max_size=63)
# Any key S3 stores: printable unicode (no control characters, no lone surrogates), within 1024 UTF-8 bytes.
_KEYS = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=250)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(bucket=_BUCKETS, key=_KEYS)
def test_every_bucket_and_key_round_trips_byte_for_byte(bucket: str, key: str) -> None:
    assert parse_s3_uri(f"s3://{bucket}/{key}") == (bucket, key)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(key=st.text("?#;%/ab", min_size=1, max_size=12))
def test_no_parser_differential_with_a_url_parser_on_the_bucket(key: str) -> None:
    # urlsplit reads the same bucket (its netloc) but may cut the key at '?' or '#': the key is ours alone.
    bucket, parsed_key = parse_s3_uri(f"s3://bucket/{key}")

    assert (bucket, parsed_key) == ("bucket", key)
    assert urlsplit(f"s3://bucket/{key}").netloc == bucket


@settings(max_examples=300, derandomize=True, deadline=None)
@given(text=st.text(max_size=40) | st.text(max_size=40).map(lambda tail: "s3://" + tail))
def test_any_text_is_parsed_or_refused_with_invalid_request(text: str) -> None:
    try:
        bucket, key = parse_s3_uri(text)
    except InvalidRequest as e:
        refused_field: str | None = e.field
    else:
        refused_field = None
        assert text == f"s3://{bucket}/{key}"
    assert refused_field in (None, "uri")


# --- the callers refuse before any AWS call (no client is ever made: these tests have no AWS at all) ---


def test_the_file_sensor_refuses_an_s3_path_without_a_bucket() -> None:
    with pytest.raises(InvalidRequest) as caught:
        FileSensor().poke("s3:///incoming/today.csv")

    assert caught.value.field == "inputs.path"  # the field as the create request names it


@pytest.mark.parametrize("prefix", ["s3://", "s3:///", "s3:///metadata/n0", "/tmp/out", "gs://b/out"])
def test_the_ecs_agent_refuses_an_output_prefix_that_is_not_s3(prefix: str) -> None:
    with pytest.raises(AgentError, match=r"^output_prefix: .*the container reads its inputs"):
        output_prefix(prefix)


def test_the_ecs_agent_keeps_an_output_prefix_without_its_trailing_slash() -> None:
    assert (
        output_prefix("s3://flyte-metadata/metadata/n0/data/0/") == "s3://flyte-metadata/metadata/n0/data/0"
    )
    assert output_prefix("s3://flyte-metadata/") == "s3://flyte-metadata"
