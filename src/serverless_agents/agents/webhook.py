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
them the secrets, may go.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from serverless_agents.agent import Phase, Resource, SyncAgentBase, TaskContext
from serverless_agents.exceptions import ManifestError
from serverless_agents.literals import jsonable
from serverless_agents.secrets import get_agent_secret

if TYPE_CHECKING:
    import urllib3

DEFAULT_TIMEOUT = 8.0
#: flytekit's WebhookTask default, when a template carries no timeout_sec.
TEMPLATE_TIMEOUT = 10.0
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
MAX_BODY = 1024 * 1024
_EXCERPT = 200
_PLACEHOLDER = re.compile(r"\{(?:(?P<inputs>inputs(?:\.\w+)+)|(?:secret:|secrets\.)(?P<secret>[\w-]+))\}")


class TemplateError(ValueError):
    """The template cannot be rendered with these inputs: the task fails with this message."""


class WebhookAgent(SyncAgentBase):
    """Sends the request the template describes. Config: `timeout` (s, default 8), `allowed_hosts`."""

    task_type = "webhook"

    def do(self, task: TaskContext) -> Resource:
        import urllib3

        custom = task.custom
        try:
            request = _Request.from_template(custom, task.inputs, self._timeout(custom))
            self._check_host(request.url)
        except TemplateError as e:
            return Resource(Phase.FAILED, str(e))
        try:
            response = _pool().request(
                request.method,
                request.url,
                body=request.body,
                fields=request.fields,
                headers=request.headers,
                timeout=urllib3.Timeout(total=request.timeout),
                redirect=False,
                preload_content=False,
            )
            try:
                content = response.read(MAX_BODY)
            finally:
                response.release_conn()
        except urllib3.exceptions.TimeoutError:
            return Resource(
                Phase.RETRYABLE_FAILED, f"{request.shown}: no answer within {request.timeout:g} s"
            )
        except urllib3.exceptions.LocationValueError as e:
            return Resource(Phase.FAILED, f"custom.url: {_one_line(e)}")
        except urllib3.exceptions.HTTPError as e:
            return Resource(Phase.RETRYABLE_FAILED, f"{request.shown}: cannot connect: {_one_line(e)}")
        text = content.decode("utf-8", errors="replace")
        status = response.status
        if not 200 <= status < 300:
            phase = Phase.RETRYABLE_FAILED if status in (408, 429) or status >= 500 else Phase.FAILED
            where = f", to {response.headers['Location']}" if 300 <= status < 400 else ""
            excerpt = _one_line(text)[:_EXCERPT] or "(empty body)"
            return Resource(phase, f"{request.shown} answered HTTP {status}{where}: {excerpt}")
        return Resource(
            Phase.SUCCEEDED,
            f"{request.shown} answered HTTP {status}",
            outputs=_outputs(task, status, text, custom, request),
        )

    def _timeout(self, custom: Mapping[str, Any]) -> float:
        asked = custom.get("timeout_sec") or TEMPLATE_TIMEOUT
        if not isinstance(asked, int | float) or asked <= 0:
            raise TemplateError(f"custom.timeout_sec: a positive number of seconds, not {asked!r}")
        return min(float(asked), float(self.config.get("timeout", DEFAULT_TIMEOUT)))

    def _check_host(self, url: str) -> None:
        allowed = self.config.get("allowed_hosts")
        if not allowed:
            return
        host = (urlsplit(url).hostname or "").lower()
        if not any(fnmatch.fnmatchcase(host, str(pattern).lower()) for pattern in allowed):
            raise TemplateError(f"custom.url: host {host!r} is not in this agent's allowed_hosts")


@dataclass(frozen=True)
class _Request:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None
    fields: dict[str, str] | None
    timeout: float
    #: "POST https://host/path" with `{secret:...}` kept: what messages and outputs may show.
    shown: str
    shown_url: str
    shown_data: Any

    @classmethod
    def from_template(cls, custom: Mapping[str, Any], inputs: Mapping[str, Any], timeout: float) -> _Request:
        method = str(custom.get("method") or "POST").upper()
        if method not in METHODS:
            raise TemplateError(f"custom.method: one of {', '.join(sorted(METHODS))}, not {method!r}")
        if not isinstance(custom.get("url"), str):
            raise TemplateError("custom.url: required, a string")
        render = functools.partial(_render, inputs=inputs, secret=get_agent_secret)
        show = functools.partial(_render, inputs=inputs, secret=lambda name: f"{{secret:{name}}}")
        url, shown_url = render(custom["url"], "url"), show(custom["url"], "url")
        if urlsplit(str(url)).scheme not in ("http", "https") or not urlsplit(str(url)).hostname:
            raise TemplateError(f"custom.url: an http(s) URL, not {shown_url!r}")
        raw_headers = custom.get("headers") or {}
        if not isinstance(raw_headers, dict):
            raise TemplateError("custom.headers: an object of header names to values")
        headers = {str(k): _text(render(v, f"headers.{k}")) for k, v in raw_headers.items()}
        for name, value in headers.items():
            if "\r" in value or "\n" in value:  # an input must not add headers of its own
                raise TemplateError(f"custom.headers.{name}: the value holds a line break")
        data = custom.get("data")
        rendered = render(data, "data") if data is not None else None
        body, fields = None, None
        if method == "GET":
            if not isinstance(rendered, dict | None):
                raise TemplateError("custom.data: a GET sends data as query parameters, so an object")
            fields = {str(k): _text(v) for k, v in (rendered or {}).items()} or None
        elif isinstance(rendered, str):
            body = rendered.encode()
            _default_header(headers, "Content-Type", "text/plain; charset=utf-8")
        elif rendered is not None:
            body = json.dumps(rendered).encode()
            _default_header(headers, "Content-Type", "application/json")
        parts = urlsplit(str(shown_url))
        target = f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.netloc else str(shown_url)
        return cls(
            method=method,
            url=str(url),
            headers=headers,
            body=body,
            fields=fields,
            timeout=timeout,
            shown=f"{method} {target}",
            shown_url=str(shown_url),
            shown_data=show(data, "data") if data is not None else None,
        )


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


def _outputs(task: TaskContext, status: int, text: str, custom: Mapping[str, Any], request: _Request) -> Any:
    declared = task.template.interface.outputs.variables if task.template.HasField("interface") else {}
    info: dict[str, Any] = {"status_code": status, "response_data": text}
    if custom.get("show_data"):
        info["input_data"] = request.shown_data
    if custom.get("show_url"):
        info["url"] = request.shown_url
    available = {"status": status, "body": text, "info": info}
    return {name: value for name, value in available.items() if name in declared}


def _one_line(value: object) -> str:
    return " ".join(str(value).split())


@functools.cache
def _pool() -> urllib3.PoolManager:
    """One pool per container: a warm Lambda reuses its connections to the same hosts."""
    import urllib3

    return urllib3.PoolManager(retries=False)
