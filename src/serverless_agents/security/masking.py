"""Masking remembered secrets in text: their spellings, whole and cut, in messages, logs and output streams.

`serverless_agents.security.secrets` remembers every value an agent reads (`remember`); from then on every
text that leaves the agent's code passes `redact` here, which replaces any spelling of a secret by
`{secret:name}`. Four rules make the masking hold against text an outsider shapes:

1. **Every spelling.** A secret reaches text as is, but also escaped by whatever carried it:
   percent-encoded (either hex case, also its JSON-escaped forms), JSON-escaped (`\\"`, `\\\\`, `\\uXXXX`
   or raw UTF-8, `\\/`, escaped twice), HTML-escaped (named or decimal references), as Python's `repr`
   writes it (of the text and of its UTF-8 bytes), base64 (standard or URL-safe, padded or not, at any
   of the three alignments a secret takes inside a larger encoded blob), hex, one-lined, NFC/NFD, and for
   a JSON secret its string leaves and HTTP basic auth's `user:password`. `_spellings` makes them all, with
   the hex digits of their escapes (`%XX`, `\\xXX`, `\\uXXXX`, `\\UXXXXXXXX`) in lower and in upper case.
   What is not a spelling: one whose escapes mix both cases, a hash or an HMAC of a secret, a secret
   encrypted, compressed or split (`"abc" + "def"` in two log lines is two texts), base64 with line
   breaks, an escape of an escape beyond those listed (base64 of its JSON-escaped form, say).
2. **Mask, then cut.** Code that shortens a text calls `excerpt(text, limit)`: it masks the whole text first,
   so padding chosen by an outsider cannot push a secret across the cut.
3. **A cut edge shows no partial secret.** After the cut, a tail of the kept text that begins a spelling
   (`_MIN_PARTIAL` characters or more) is masked too, and so is a head that ends one (`edges`): cutting
   `...xoxb-1234-abc|d` leaves `...{secret:slack_token}`, not every character but the last. Messages and log
   records, where agents cut text themselves (`body[:200]`), get the same treatment at both ends
   (`redact_message`); a cut inside a message the agent assembled (`f"{body[:200]} (more)"`) is not seen.
4. **A stream holds back what could still become a secret** (`StreamMasker`): text written in pieces (two
   `write`s, a subprocess's pipe) is masked as it goes, keeping back only a tail that begins some spelling, so
   a secret split across writes is still seen whole; `finish` masks the rest, its end as a cut edge.

Values too short to mask (`MIN_SECRET`) are refused where they are read (see `secrets`): a 2-character
secret would mask every occurrence of two ordinary letters, and is no credential anyway. Parts of a secret
that short (a JSON secret's `"user": "app"`) are not masked on their own.

The registry is an immutable snapshot swapped as a whole when a secret is remembered: readers (a log
handler, the stream reader thread) take one reference and never see half an update.
"""

from __future__ import annotations

import base64
import html
import json
import re
import threading
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, quote_plus

#: Shorter secret values are refused when read: masking them would mask ordinary text.
MIN_SECRET = 4
#: A partial spelling this long or longer, left at a cut edge, is masked. Shorter ones reveal at most
#: `_MIN_PARTIAL - 1` characters and would mask ordinary words that happen to begin a secret.
_MIN_PARTIAL = 4
#: Lines of a multi-line secret (a PEM key) this long or longer are masked on their own too.
_MIN_LINE = 16
#: Shorter values are not masked in base64 and hex: a few characters' encoding would mask unrelated text.
_MIN_ENCODED = 8
_ELLIPSIS = "..."
#: How much of each spelling the search pattern holds.
_HEAD = 16
_URLSAFE = str.maketrans("+/", "-_")
#: The escapes whose hex digits come in either case: percent-encoding, JSON's and Python's.
_ESCAPE_HEX = re.compile(r"%[0-9a-fA-F]{2}|\\x[0-9a-fA-F]{2}|\\u[0-9a-fA-F]{4}|\\U[0-9a-fA-F]{8}")


def placeholder(name: str) -> str:
    return f"{{secret:{name}}}"


@dataclass(frozen=True)
class _Registry:
    """Every remembered spelling with the names it belongs to (two secrets may share one)."""

    names: dict[str, tuple[str, ...]] = field(default_factory=dict)
    by_name: dict[str, frozenset[str]] = field(default_factory=dict)
    #: Where a spelling may start: an alternation of their heads (a regex over whole spellings, thousands
    #: of characters for a key, takes a cold start's worth of time to compile).
    pattern: re.Pattern[str] | None = None
    #: Where a spelling may end: an alternation of their last `_HEAD` characters.
    ends: re.Pattern[str] | None = None
    #: Spellings by their first and last character, longest first: matching, and the partial searches.
    by_first: dict[str, tuple[str, ...]] = field(default_factory=dict)
    by_last: dict[str, tuple[str, ...]] = field(default_factory=dict)
    longest: int = 0

    def with_secret(self, name: str, value: str) -> _Registry:
        spellings = self.by_name.get(name, frozenset()) | _spellings(value)
        by_name = {**self.by_name, name: frozenset(spellings)}
        names: dict[str, tuple[str, ...]] = {}
        for owner, owned in sorted(by_name.items()):
            for spelling in owned:
                names[spelling] = (*names.get(spelling, ()), owner)
        ordered = sorted(names, key=lambda s: (-len(s), s))
        return _Registry(
            names=names,
            by_name=by_name,
            pattern=_alternation({s[:_HEAD] for s in ordered}),
            ends=_alternation({s[-_HEAD:] for s in ordered}),
            by_first=_index(ordered, 0),
            by_last=_index(ordered, -1),
            longest=len(ordered[0]) if ordered else 0,
        )

    def matches(self, text: str) -> Iterator[tuple[int, int, str]]:
        """(start, end, name) of every spelling in `text`, leftmost, longest at each start."""
        if self.pattern is None:
            return
        at = 0
        # The pattern finds where a spelling may start (its first `_HEAD` characters); the spellings with
        # that first character, longest first, tell which one does.
        while (head := self.pattern.search(text, at)) is not None:
            start = head.start()
            at = start + 1
            for spelling in self.by_first[text[start]]:
                if text.startswith(spelling, start):
                    yield start, start + len(spelling), self.names[spelling][0]
                    at = start + len(spelling)
                    break

    def mask(self, text: str, stop: int | None = None) -> tuple[str, int]:
        """`text` masked up to `stop` (all of it by default), and how much of `text` that consumed: a
        match starting before `stop` is masked whole, one starting at or after it is left to the caller."""
        until = len(text) if stop is None else stop
        pieces: list[str] = []
        done = 0
        for start, end, name in self.matches(text):
            if start >= until:
                break
            pieces += [text[done:start], placeholder(name)]
            done = end
        consumed = max(done, until)
        pieces.append(text[done:consumed])
        return "".join(pieces), consumed

    def partial_tail(self, text: str) -> tuple[int, str] | None:
        """The longest tail of `text`, `_MIN_PARTIAL` characters or more, that begins a spelling without
        being all of it: (where it starts, whose it is)."""
        for start in self._starts(text, len(text) - _MIN_PARTIAL + 1):
            owner = self._begun_at(text, start, whole=False)
            if owner is not None:
                return start, owner
        return None

    def hold_from(self, text: str) -> int:
        """Where the tail of `text` that could still grow into a spelling begins (`len(text)` if none)."""
        for start in self._starts(text, len(text)):
            if self._begun_at(text, start, whole=True) is not None:
                return start
        return len(text)

    def partial_head(self, text: str) -> tuple[int, str] | None:
        """The longest head of `text` that ends a spelling without being all of it: (its end, whose)."""
        for end in self._ends(text):
            for spelling in self.by_last.get(text[end - 1], ()):
                if len(spelling) > end and spelling.endswith(text[:end]):
                    return end, self.names[spelling][0]
        return None

    def _starts(self, text: str, until: int) -> list[int]:
        """Where, among the last `longest - 1` characters of `text` and before `until`, a tail that begins
        a spelling may start, in order: where a spelling's first `_HEAD` characters are (a tail that long
        or longer holds them), and each of the last `_HEAD` positions (a shorter tail)."""
        window = max(0, len(text) - self.longest + 1)
        found = set(range(max(window, len(text) - _HEAD), until))
        at = window
        while self.pattern is not None and (head := self.pattern.search(text, at, until + _HEAD)) is not None:
            found.add(head.start())
            at = head.start() + 1
        return sorted(start for start in found if start < until)

    def _ends(self, text: str) -> list[int]:
        """Where, within `longest - 1` characters of its start, a head of `text` that ends a spelling may
        end, the furthest first (as `_starts`, from the other side)."""
        window = min(len(text), self.longest - 1)
        found = set(range(_MIN_PARTIAL, min(window, _HEAD) + 1))
        at = 0
        while self.ends is not None and (end := self.ends.search(text, at, window)) is not None:
            found.add(end.end())
            at = end.start() + 1
        return sorted(found, reverse=True)

    def _begun_at(self, text: str, start: int, *, whole: bool) -> str | None:
        """Whose spelling `text[start:]` begins (or is all of, if `whole`), if any's."""
        candidates = self.by_first.get(text[start], ())  # looked up before any slice is made
        if not candidates:
            return None
        tail = text[start:]
        for spelling in candidates:
            if (len(spelling) > len(tail) or whole) and spelling.startswith(tail):
                return self.names[spelling][0]
        return None


def _alternation(pieces: set[str]) -> re.Pattern[str] | None:
    ordered = sorted(pieces, key=lambda p: (-len(p), p))  # the longest first, where two start alike
    return re.compile("|".join(map(re.escape, ordered))) if ordered else None


def _index(spellings: list[str], at: int) -> dict[str, tuple[str, ...]]:
    index: dict[str, list[str]] = {}
    for spelling in spellings:
        index.setdefault(spelling[at], []).append(spelling)
    return {char: tuple(group) for char, group in index.items()}


class Known:
    """The secrets remembered in this container: a registry snapshot replaced whole on each change."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: set[tuple[str, str]] = set()
        self.registry = _Registry()

    def remember(self, name: str, value: str) -> bool:
        """Remember `value` as `name`'s; True if it was not remembered yet (an agent reads its secrets
        at every call: the spellings are made once)."""
        if (name, value) in self._values:
            return False
        with self._lock:
            self.registry = self.registry.with_secret(name, value)
            self._values.add((name, value))
            return True

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self.registry = _Registry()

    # What `secrets._known` offered before this module: code written against it keeps working.

    @property
    def pattern(self) -> re.Pattern[str] | None:
        return self.registry.pattern

    def redact(self, text: str) -> str:
        return self.registry.mask(text)[0]


known = Known()


def redact(text: str) -> str:
    """`text` with every spelling of every remembered secret replaced by `{secret:name}`."""
    return known.redact(text)


def redact_message(text: str) -> str:
    """`redact`, and a partial spelling at either end masked too: a message may be cut text."""
    return edges(redact(text))


def edges(text: str) -> str:
    """`text` (masked already) with a tail that begins a spelling, or a head that ends one, masked."""
    return _mask_tail(_mask_head(text))


def _mask_tail(text: str) -> str:
    registry = known.registry
    tail = registry.partial_tail(text) if registry.pattern is not None else None
    return text if tail is None else text[: tail[0]] + placeholder(tail[1])


def _mask_head(text: str) -> str:
    registry = known.registry
    head = registry.partial_head(text) if registry.pattern is not None else None
    return text if head is None else placeholder(head[1]) + text[head[0] :]


def excerpt(text: str, limit: int) -> str:
    """At most `limit` characters of `text`: masked before it is cut, and the cut showing no partial
    spelling (a tail that begins one is replaced by its placeholder, or dropped if that does not fit).
    Ends with "..." when cut. Every piece of code that shortens text that may hold a secret uses it."""
    line = _mask_head(redact(text))
    registry = known.registry
    ending = "" if len(line) <= limit else _ELLIPSIS
    keep = min(len(line), max(limit - len(ending), 0))
    while True:
        head = line[:keep]
        tail = registry.partial_tail(head) if registry.pattern is not None else None
        if tail is None:
            return head + ending
        start, name = tail
        if start + len(placeholder(name)) + len(ending) <= limit:
            return head[:start] + placeholder(name) + ending
        # The placeholder does not fit: the partial is dropped (the text is cut there), and the new edge
        # looked at in turn.
        ending = _ELLIPSIS
        keep = min(start, max(limit - len(ending), 0))


def one_line(text: str) -> str:
    """`text` masked on one line. Masked before and after its whitespace is collapsed: a secret holding a
    line break is seen as stored, and one spelled over two lines of a message as one-lined."""
    return redact(" ".join(redact(text).split()))


def secret_names(text: str) -> frozenset[str]:
    """The names of the remembered secrets any spelling of which occurs in `text`."""
    registry = known.registry
    return frozenset(name for name, owned in registry.by_name.items() if any(s in text for s in owned))


class StreamMasker:
    """Masks text that arrives in pieces. `feed` returns what can be written now: the text masked, except a
    tail that begins a spelling (at most the longest spelling minus one character), kept until the next
    piece tells whether it becomes one. `finish` returns the rest, masked, its end treated as a cut edge."""

    def __init__(self) -> None:
        self._pending = ""

    def feed(self, text: str) -> str:
        pending = self._pending + text
        registry = known.registry
        if registry.pattern is None:
            self._pending = ""
            return pending
        # A match that starts before `hold` is complete (no longer spelling can start there, or `hold`
        # would be earlier); one starting at or after it waits.
        masked, done = registry.mask(pending, stop=registry.hold_from(pending))
        self._pending = pending[done:]
        return masked

    def finish(self) -> str:
        rest, self._pending = self._pending, ""
        return _mask_tail(redact(rest)) if rest else ""


def _spellings(value: str) -> set[str]:
    """Every spelling of `value` masking looks for (see the module docstring), `MIN_SECRET` long or more."""
    # What may be sent whole, and so encoded: the value, its leaves and credentials.
    sent = {value, *(unicodedata.normalize(form, value) for form in ("NFC", "NFD"))}
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict | list):
        sent.update(_strings(parsed))
        if isinstance(parsed, dict):
            sent.update(_basic_credentials(parsed))
    # What a message may quote of it: one-lined, or one line of a PEM key.
    quoted = {" ".join(value.split())}
    quoted.update(line.strip() for line in value.splitlines() if len(line.strip()) >= _MIN_LINE)
    spellings: set[str] = set()
    for r in sent | quoted:
        if len(r) >= MIN_SECRET and r.strip():
            spellings |= _escaped(r)
            if len(r) >= _MIN_ENCODED and r in sent:
                spellings |= _encoded(r.encode())
    spellings |= {_hex_case(s, upper) for s in spellings for upper in (False, True) if "%" in s or "\\" in s}
    return {s for s in spellings if len(s) >= MIN_SECRET}


def _hex_case(spelling: str, upper: bool) -> str:
    """`spelling` with the hex digits of its escapes in one case (the "%" or "\\u" before them kept)."""

    def change(escape: re.Match[str]) -> str:
        introducer = 1 if escape[0][0] == "%" else 2
        digits = escape[0][introducer:]
        return escape[0][:introducer] + (digits.upper() if upper else digits.lower())

    return _ESCAPE_HEX.sub(change, spelling)


def _escaped(value: str) -> set[str]:
    """`value` as URL-, JSON-, HTML- and Python-escaping writes it (JSON forms as inside a string)."""
    jsons = {json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    jsons |= {j.replace("/", "\\/") for j in jsons}
    jsons |= {json.dumps(j)[1:-1] for j in jsons}  # a JSON document quoted inside another's string
    urls = {quote(s, safe="") for s in jsons} | {quote(value), quote_plus(value), quote_plus(value, safe="")}
    # Python's repr of the text, and of its UTF-8 bytes (a response's `.content` printed or logged).
    pythons = {repr(value)[1:-1], ascii(value)[1:-1], repr(value.encode())[2:-1]}
    htmls = {html.escape(s, quote=q) for s in {value, *jsons} for q in (True, False)}
    # Other HTML encoders write the quotes as decimal references (Go's html/template, many templates).
    htmls |= {h.replace("&quot;", "&#34;").replace("&#x27;", "&#39;") for h in htmls}
    return {value, quote(value, safe="")} | urls | jsons | pythons | htmls


def _encoded(data: bytes) -> set[str]:
    """`data` in hex and in base64 at each of the three alignments it may have inside a larger encoded
    blob: for each, the characters that depend on its bytes alone, and (when the blob ends with it) its
    last characters with the padding and without; standard and URL-safe alphabets."""
    forms = {data.hex(), data.hex().upper()}
    for offset in range(3):
        encoded = base64.b64encode(bytes(offset) + data).decode()
        start = -(-8 * offset // 6)  # the first character made of `data`'s bits only
        own = encoded[start : 8 * (offset + len(data)) // 6]
        ending = encoded[start:]
        for form in (own, ending, ending.rstrip("=")):
            forms |= {form, form.translate(_URLSAFE)}
    return forms


def _basic_credentials(secret: dict[str, Any]) -> set[str]:
    """`user:password` of a JSON secret holding both (as RDS and most HTTP services store them): HTTP
    basic auth sends exactly that, base64-encoded."""
    user = next((secret[k] for k in ("username", "user", "login") if isinstance(secret.get(k), str)), None)
    password = next((secret[k] for k in ("password", "pass") if isinstance(secret.get(k), str)), None)
    return {f"{user}:{password}"} if user and password else set()


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
