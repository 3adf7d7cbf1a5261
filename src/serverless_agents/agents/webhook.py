"""An HTTP request as a sync agent, for flytekit's `WebhookTask` (`flytekit.extras.webhook`) unchanged.

The template is flytekit's: task type `webhook`, `custom = {url, method, headers, data, show_data,
show_url, timeout_sec}`. Strings in `url`, `headers` and `data` may hold placeholders, flytekit's:

    {inputs.name}        the task's input `name` ({inputs.name.key} reaches into a dict input)
    {secret:name}        the Secrets Manager secret agents.toml names `name` for this agent
                         ({secrets.name}, flytekit's announced spelling, works too)

A string that is one placeholder alone becomes the value itself (`"{inputs.n}"` sends the number 3, not
"3"); elsewhere the value is written as text. Any other braces are left alone, so JSON text passes through.
An input the template names but the task lacks fails the task. Secrets are looked up here, at run time:
they never sit in the template, and the outputs and messages show the `{secret:...}` placeholder instead.

`data` is sent as JSON (or, for GET, as query parameters); a string `data` is sent as-is. A 2xx answer
succeeds, with outputs filled for the names the interface declares: `status` (int) and `body` (str), or
flytekit's `info` dict. Otherwise:

    408, 429, 5xx, timeout, no connection   RETRYABLE_FAILED
    3xx (redirects are not followed), 4xx   FAILED, with the status and the start of the body

Config: `timeout` caps the template's `timeout_sec` (default 8 s: propeller waits 10 s for a sync call);
`allowed_hosts` (a list of host names, `*.example.com` for subdomains) limits where requests, and with
them the secrets, may go; `allow_private_networks` lists the non-public networks (loopback, private,
link-local, ...) a request may reach, none by default. Requests go through
`serverless_agents.security.outbound`: the URL is checked, and resolved, before any secret is filled into the
headers and body.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from serverless_agents.agent import Phase, Resource, SyncAgentBase, TaskContext
from serverless_agents.exceptions import DestinationRefused, DestinationUnavailable, ManifestError
from serverless_agents.flyte.literals import jsonable
from serverless_agents.security.masking import excerpt, one_line
from serverless_agents.security.outbound import Destination, OutboundClient
from serverless_agents.security.secrets import get_agent_secret

DEFAULT_TIMEOUT = 8.0
#: flytekit's WebhookTask default, when a template carries no timeout_sec.
TEMPLATE_TIMEOUT = 10.0
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
_EXCERPT = 200
_PLACEHOLDER = re.compile(r"\{(?:(?P<inputs>inputs(?:\.\w+)+)|(?:secret:|secrets\.)(?P<secret>[\w-]+))\}")
#: RFC 9110 token: what http.client accepts as a header name.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


class TemplateError(ValueError):
    """The template cannot be rendered with these inputs: the task fails with this message."""


class WebhookAgent(SyncAgentBase):
    """Sends the request the template describes.

    Config: `timeout` (s, default 8), `allowed_hosts`, `allow_private_networks`."""

    task_type = "webhook"
    #: Secrets go into requests: the manifest must say where each may go (`secrets.<name>.destinations`).
    secrets_need_destinations = True

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(config)
        self.client = OutboundClient.from_config(self.config)

    def do(self, task: TaskContext) -> Resource:
        custom = task.custom
        try:
            call = _Call.from_template(custom, task.inputs, self._timeout(custom))
            destination = self.client.destination(call.url, "custom.url")
            # Only now that the destination passed do the secrets go into the headers and the body.
            request = call.request(destination)
            answer = self.client.send(
                request.destination, call.method, request.headers, request.body, call.timeout
            )
        except (TemplateError, DestinationRefused) as e:
            return Resource(Phase.FAILED, _one_line(e))
        except DestinationUnavailable as e:
            return Resource(Phase.RETRYABLE_FAILED, f"{call.shown}: {e}")
        text = answer.body.decode("utf-8", errors="replace")
        status = answer.status
        if not 200 <= status < 300:
            phase = Phase.RETRYABLE_FAILED if status in (408, 429) or status >= 500 else Phase.FAILED
            location = answer.headers.get("Location")
            where = f", to {_excerpt(location)}" if 300 <= status < 400 and location else ""
            body = _excerpt(text) or "(empty body)"
            return Resource(phase, f"{call.shown} answered HTTP {status}{where}: {body}")
        return Resource(
            Phase.SUCCEEDED,
            f"{call.shown} answered HTTP {status}",
            outputs=_outputs(task, status, text, custom, call),
        )

    def _timeout(self, custom: Mapping[str, Any]) -> float:
        asked = custom.get("timeout_sec") or TEMPLATE_TIMEOUT
        if not isinstance(asked, int | float) or asked <= 0:
            raise TemplateError(f"custom.timeout_sec: a positive number of seconds, not {asked!r}")
        return min(float(asked), float(self.config.get("timeout", DEFAULT_TIMEOUT)))


@dataclass(frozen=True)
class _Request:
    destination: Destination
    headers: dict[str, str]
    body: bytes | None


@dataclass(frozen=True)
class _Call:
    """The template's call before its headers and body are rendered: what the destination check needs."""

    custom: Mapping[str, Any]
    inputs: Mapping[str, Any]
    method: str
    #: Rendered with its secrets (a secret may be the whole URL, as a Slack webhook's is).
    url: str
    timeout: float
    #: "POST https://host/path" with `{secret:...}` kept: what messages and outputs may show.
    shown: str
    shown_url: str

    @classmethod
    def from_template(cls, custom: Mapping[str, Any], inputs: Mapping[str, Any], timeout: float) -> _Call:
        method = str(custom.get("method") or "POST").upper()
        if method not in METHODS:
            raise TemplateError(f"custom.method: one of {', '.join(sorted(METHODS))}, not {method!r}")
        if not isinstance(custom.get("url"), str):
            raise TemplateError("custom.url: required, a string")
        url = _text(_render(custom["url"], "url", inputs=inputs, secret=get_agent_secret))
        shown_url = _text(_render(custom["url"], "url", inputs=inputs, secret=_placeholder))
        return cls(custom, inputs, method, url, timeout, f"{method} {_without_query(shown_url)}", shown_url)

    def request(self, destination: Destination) -> _Request:
        render = functools.partial(_render, inputs=self.inputs, secret=get_agent_secret)
        raw_headers = self.custom.get("headers") or {}
        if not isinstance(raw_headers, dict):
            raise TemplateError("custom.headers: an object of header names to values")
        headers = {str(k): _text(render(v, f"headers.{k}")) for k, v in raw_headers.items()}
        for name, value in headers.items():
            _check_header(name, value)
        rendered = render(self.data, "data") if self.data is not None else None
        body = None
        if self.method == "GET":
            if not isinstance(rendered, dict | None):
                raise TemplateError("custom.data: a GET sends data as query parameters, so an object")
            destination = destination.with_query({str(k): _text(v) for k, v in (rendered or {}).items()})
        elif isinstance(rendered, str):
            body = rendered.encode()
            _default_header(headers, "Content-Type", "text/plain; charset=utf-8")
        elif rendered is not None:
            body = json.dumps(rendered).encode()
            _default_header(headers, "Content-Type", "application/json")
        return _Request(destination, headers, body)

    @property
    def data(self) -> Any:
        return self.custom.get("data")

    @property
    def shown_data(self) -> Any:
        return (
            _render(self.data, "data", inputs=self.inputs, secret=_placeholder)
            if self.data is not None
            else None
        )


def _placeholder(name: str) -> str:
    return f"{{secret:{name}}}"


def _without_query(url: str) -> str:
    """For messages: scheme, host and path (a query often holds tokens). Display only, never sent."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url.partition("?")[0]
    return f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.netloc else url.partition("?")[0]


def _check_header(name: str, value: str) -> None:
    if not _HEADER_NAME.fullmatch(name):
        raise TemplateError(f"custom.headers: {name!r} is not a valid header name")
    if name.lower() == "host":
        raise TemplateError("custom.headers.Host: the Host header comes from custom.url")
    if any((ord(c) < 0x20 and c != "\t") or ord(c) == 0x7F for c in value):
        # An input must not add headers of its own.
        raise TemplateError(f"custom.headers.{name}: the value holds a line break or a control character")
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise TemplateError(f"custom.headers.{name}: HTTP header values are Latin-1 text") from None


def _render(value: Any, where: str, *, inputs: Mapping[str, Any], secret: Callable[[str], str]) -> Any:
    """Fill flytekit's placeholders in every string inside `value` (dicts and lists are walked)."""
    if isinstance(value, dict):
        return {k: _render(v, f"{where}.{k}", inputs=inputs, secret=secret) for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v, f"{where}[{i}]", inputs=inputs, secret=secret) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def lookup(match: re.Match[str]) -> Any:
        if not match["secret"]:
            return _input(match["inputs"], inputs, where)
        try:
            return secret(match["secret"])
        except ManifestError as e:
            raise TemplateError(f"custom.{where}: the template asks for {match[0]}: {e}") from e

    whole = _PLACEHOLDER.fullmatch(value)
    if whole:
        return jsonable(lookup(whole))
    return _PLACEHOLDER.sub(lambda m: _text(lookup(m)), value)


def _input(path: str, inputs: Mapping[str, Any], where: str) -> Any:
    _, name, *keys = path.split(".")
    if name not in inputs:
        have = ", ".join(sorted(inputs)) or "none"
        raise TemplateError(
            f"custom.{where}: the template uses {{{path}}}, "
            f"but the task has no input {name!r} (its inputs: {have})"
        )
    value = inputs[name]
    for key in keys:
        if not isinstance(value, Mapping) or key not in value:
            raise TemplateError(f"custom.{where}: {{{path}}}: input {name!r} has no key {key!r}")
        value = value[key]
    return value


def _text(value: Any) -> str:
    value = jsonable(value)
    return json.dumps(value) if isinstance(value, dict | list) else str(value)


def _default_header(headers: dict[str, str], name: str, value: str) -> None:
    if not any(k.lower() == name.lower() for k in headers):
        headers[name] = value


def _outputs(task: TaskContext, status: int, text: str, custom: Mapping[str, Any], call: _Call) -> Any:
    declared = task.template.interface.outputs.variables if task.template.HasField("interface") else {}
    info: dict[str, Any] = {"status_code": status, "response_data": text}
    if custom.get("show_data"):
        info["input_data"] = call.shown_data
    if custom.get("show_url"):
        info["url"] = call.shown_url
    available = {"status": status, "body": text, "info": info}
    return {name: value for name, value in available.items() if name in declared}


def _excerpt(text: str) -> str:
    """The start of an answer's text for a message: masked before it is cut, so padding chosen by the
    server cannot push a secret across the cut (`masking.excerpt`)."""
    return excerpt(one_line(text), _EXCERPT)


def _one_line(value: object) -> str:
    return " ".join(str(value).split())
