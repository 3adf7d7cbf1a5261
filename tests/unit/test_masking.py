"""masking: every spelling of a remembered secret is masked, before any cut, at a cut's edge, in pieces.

The properties run over secrets with quotes, backslashes, slashes, percent signs and non-ASCII, over the
spellings an answer or a log may carry, over where a blob puts them and where text is cut: 0 hits.
"""

from __future__ import annotations

import base64
import html
import itertools
import json
import os
from collections.abc import Callable, Iterator
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serverless_agents.exceptions import ManifestError
from serverless_agents.handlers.observability import redacted_output
from serverless_agents.security import fd_redaction, masking
from serverless_agents.security.masking import StreamMasker, excerpt, redact, redact_message
from serverless_agents.security.masking import secret_names as secret_names_in
from serverless_agents.security.secrets import forget_secrets

PLACEHOLDER = "{secret:s}"

#: What a secret is made of: the characters escapes change, ASCII, and anything else Unicode has.
_CHARS = st.one_of(
    st.sampled_from("\"\\/'%+=&<>~? -_:{}"),
    st.characters(min_codepoint=0x21, max_codepoint=0x7E),
    st.characters(blacklist_categories=("Cs",)),
)
SECRETS = st.text(_CHARS, min_size=4, max_size=40).filter(lambda s: s.strip() != "")
#: Text around a secret: any characters, the same kinds.
PADDING = st.text(_CHARS, max_size=30)

#: The spellings an answer, a URL or a log carries a secret in.
SPELLINGS: dict[str, Callable[[str], str]] = {
    "as-is": lambda s: s,
    "json-ascii": lambda s: json.dumps(s)[1:-1],
    "json-utf8": lambda s: json.dumps(s, ensure_ascii=False)[1:-1],
    "json-escaped-slash": lambda s: json.dumps(s)[1:-1].replace("/", "\\/"),
    "json-in-json": lambda s: json.dumps(json.dumps(s)[1:-1])[1:-1],
    "percent-upper": lambda s: quote(s, safe=""),
    "percent-lower": lambda s: _lower_hex(quote(s, safe="")),
    "percent-path": lambda s: quote(s),
    "form": lambda s: quote_plus(s),
    "html": lambda s: html.escape(s),
    "python-repr": lambda s: repr(s)[1:-1],
    "python-ascii": lambda s: ascii(s)[1:-1],
    "python-bytes": lambda s: repr(s.encode())[2:-1],
    "html-decimal": lambda s: html.escape(s).replace("&quot;", "&#34;").replace("&#x27;", "&#39;"),
    "percent-json": lambda s: quote(json.dumps(s)[1:-1], safe=""),
}


def _lower_hex(encoded: str) -> str:
    return "%".join([encoded.split("%")[0], *(p[:2].lower() + p[2:] for p in encoded.split("%")[1:])])


@pytest.fixture(autouse=True)
def _new_container() -> Iterator[None]:
    forget_secrets()
    yield
    forget_secrets()


def _remember(secret: str) -> None:
    forget_secrets()
    masking.known.remember("s", secret)


def _without_placeholders(text: str) -> str:
    """The text as a reader sees its unmasked parts (a placeholder's own letters are no secret)."""
    return text.replace(PLACEHOLDER, "\0")


def _partials(text: str, spelling: str) -> list[str]:
    """Starts of `spelling` (4 characters or more) that `text` ends with, and `spelling` if it holds it."""
    ends = [spelling[:k] for k in range(4, len(spelling)) if text.endswith(spelling[:k])]
    return ends + ([spelling] if spelling in text else [])


@settings(max_examples=300, derandomize=True, deadline=None)
@given(secret=SECRETS, spelling=st.sampled_from(sorted(SPELLINGS)), before=PADDING, after=PADDING)
def test_every_spelling_is_masked_wherever_it_is(secret: str, spelling: str, before: str, after: str) -> None:
    _remember(secret)
    spelled = SPELLINGS[spelling](secret)

    masked = _without_placeholders(redact(before + spelled + after))

    assert spelled not in masked


@settings(max_examples=200, derandomize=True, deadline=None)
@given(
    secret=SECRETS.filter(lambda s: len(s) >= 8),
    prefix=st.binary(max_size=5),
    suffix=st.binary(max_size=5),
    urlsafe=st.booleans(),
    padded=st.booleans(),
)
def test_base64_is_masked_at_every_offset(
    secret: str, prefix: bytes, suffix: bytes, urlsafe: bool, padded: bool
) -> None:
    _remember(secret)
    data = secret.encode()
    encoded = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(prefix + data + suffix).decode()
    encoded = encoded if padded else encoded.rstrip("=")

    masked = redact(f"Basic {encoded}").removeprefix("Basic ")

    # Every character made of the secret's bits alone is masked (at most 4 bits show on either side).
    own_start, own_end = -(-8 * len(prefix) // 6), 8 * (len(prefix) + len(data)) // 6
    assert PLACEHOLDER in masked
    assert len(masked.partition(PLACEHOLDER)[0]) <= own_start
    assert len(encoded) - len(masked.rpartition(PLACEHOLDER)[2]) >= own_end


@settings(max_examples=300, derandomize=True, deadline=None)
@given(
    secret=SECRETS,
    spelling=st.sampled_from(sorted(SPELLINGS)),
    before=PADDING,
    cut=st.integers(min_value=0, max_value=200),
)
def test_text_cut_anywhere_shows_no_partial_secret(secret: str, spelling: str, before: str, cut: int) -> None:
    """An agent cuts text itself (`body[:n]`) before the boundary masks its message, or `excerpt` cuts it."""
    _remember(secret)
    spelled = SPELLINGS[spelling](secret)
    text = f"{before}{spelled} and after"

    cut_by_agent = _without_placeholders(redact_message(text[:cut]))
    cut_here = excerpt(text, cut)

    assert _partials(cut_by_agent, spelled) == []
    assert len(cut_here) <= max(cut, len("..."))
    assert len(excerpt(text[:cut], cut)) <= max(cut, len("..."))  # the text fits, its end may not
    assert _partials(_without_placeholders(cut_here.removesuffix("...")), spelled) == []


@settings(max_examples=200, derandomize=True, deadline=None)
@given(
    secret=SECRETS,
    spelling=st.sampled_from(sorted(SPELLINGS)),
    before=PADDING,
    after=PADDING,
    cuts=st.lists(st.integers(min_value=0, max_value=120), max_size=6),
)
def test_a_stream_masks_a_secret_split_over_writes(
    secret: str, spelling: str, before: str, after: str, cuts: list[int]
) -> None:
    _remember(secret)
    spelled = SPELLINGS[spelling](secret)
    text = before + spelled + after
    bounds = sorted({0, len(text), *(c for c in cuts if c < len(text))})

    pieces = StreamMasker()
    written = "".join(pieces.feed(text[a:b]) for a, b in itertools.pairwise(bounds)) + pieces.finish()
    whole = StreamMasker()
    at_once = whole.feed(text) + whole.finish()

    assert written == at_once  # what was held back made no difference
    assert spelled not in _without_placeholders(written)


def test_a_stream_holds_back_only_what_could_begin_a_secret() -> None:
    _remember("xoxb-1234-abcd")
    stream = StreamMasker()

    assert stream.feed("ordinary line\n") == "ordinary line\n"
    assert stream.feed("token xoxb-12") == "token "
    assert stream.feed("34-abcd, done\n") == "{secret:s}, done\n"
    assert stream.feed("cut xoxb-12") == "cut "
    assert stream.finish() == "{secret:s}"  # the end of the invocation is a cut edge


def test_an_excerpt_is_masked_before_it_is_cut_and_its_cut_shows_no_partial_secret() -> None:
    _remember("xoxb-1234-abcd")
    padded = "x" * 15 + "xoxb-1234-abcd"

    assert excerpt(padded, 40) == "x" * 15 + "{secret:s}"  # masked first, it fits
    assert excerpt(padded + " and more", 26) == "x" * 15 + "{secret:..."  # a cut placeholder hides nothing
    assert excerpt("x" * 15 + "xoxb-1234-ab", 40) == "x" * 15 + "{secret:s}"  # cut before it came here
    # Not the secret, but the cut would leave what begins it: masked, or dropped where the mask does not fit.
    assert excerpt("x" * 10 + "xoxb-1234-abcX and more", 26) == "x" * 10 + "{secret:s}..."
    assert excerpt("x" * 15 + "xoxb-1234-abcX and more", 26) == "x" * 15 + "..."
    # It fits, but ends with the start of the secret, whose placeholder would not fit: cut before it.
    assert excerpt("x" * 15 + "xoxb-1", 21) == "x" * 15 + "..."


# The registry, as other layers use it.


def test_secret_names_in_names_the_secrets_a_text_carries(read_secrets: Callable[..., None]) -> None:
    read_secrets(slack="xoxb-1/2", db='{"user": "app", "password": "hunter2-long"}')

    assert secret_names_in("https://hooks.example/?t=xoxb-1%2f2") == {"slack"}
    assert secret_names_in('{"auth": "Basic ' + base64.b64encode(b"app:hunter2-long").decode() + '"}') == {
        "db"
    }
    assert secret_names_in("xoxb-1/2 and hunter2-long") == {"slack", "db"}
    assert secret_names_in("nothing here, not even app") == frozenset()


def test_a_secret_too_short_to_mask_is_refused_when_read(read_secrets: Callable[..., None]) -> None:
    with pytest.raises(ManifestError, match=r"secret 'pin' .* holds 3 character\(s\): .* shorter than 4"):
        read_secrets(pin="123")

    assert redact("123 items") == "123 items"


def test_outside_lambda_the_handlers_leave_the_descriptors_alone(capfd: pytest.CaptureFixture[str]) -> None:
    """The local stack runs every function in one process (a CLI, or pytest capturing it): no redirection."""

    @redacted_output
    def handler(event: object, context: object) -> str:
        print("handled")
        return "done"

    assert "AWS_LAMBDA_RUNTIME_API" not in os.environ
    assert handler({}, None) == "done"
    assert not fd_redaction.installed()
    assert capfd.readouterr().out == "handled\n"
