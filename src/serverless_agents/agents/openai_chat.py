"""OpenAI chat completions as a sync agent, for flytekitplugins-openai's `ChatGPTTask` unchanged.

The template is the plugin's: task type `chatgpt`, `custom = {"openai_organization", "chatgpt_config"}`
(`chatgpt_config` holds the request's parameters, `model` at least), input `message`, output `o0`. As the
plugin's connector does, the one user message is the input and the answer's text is the output.

What differs from the connector is where the key and the deadline come from. The API key is the Secrets
Manager secret agents.toml names `api_key`, which declares where it may go (`api.openai.com`, in a
header): the client's every request passes `serverless_agents.security.outbound.check_secrets` before it
leaves. `config.base_url` may point the client at a proxy or a local fake (then the key declares that host).
`config.timeout` bounds the whole call, with the client's own retries off: propeller's agent plugin gives a
sync call 10 s by default (`defaultAgent.defaultTimeout`), and Flyte's task retries are the retries that
count. Failures map to phases a user can act on:

    401                           FAILED, naming the secret
    the key bound elsewhere       FAILED, naming secrets.api_key (its destinations)
    429, 5xx, timeout, no route   RETRYABLE_FAILED
    any other 4xx, bad config     FAILED, with OpenAI's message
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from serverless_agents.agent import Phase, Resource, SyncAgentBase, TaskContext
from serverless_agents.exceptions import DestinationRefused
from serverless_agents.security.masking import excerpt, redact
from serverless_agents.security.outbound import httpx_event_hooks
from serverless_agents.security.secrets import get_agent_secret

if TYPE_CHECKING:
    import openai

#: Seconds for the whole call. Propeller's agent plugin waits 10 s for ExecuteTaskSync by default, and
#: the adapter, API Gateway and a cold start take their share of that.
DEFAULT_TIMEOUT = 8.0
API_KEY_SECRET = "api_key"
_EXCERPT = 300
_KEY_FRAGMENT = re.compile(r"\bsk-[A-Za-z0-9_*-]+")


class ChatGPTAgent(SyncAgentBase):
    """One chat completion per task. Config: `base_url` (optional), `timeout` (seconds, default 8)."""

    task_type = "chatgpt"
    #: The key goes over HTTP: the manifest must say where (`secrets.api_key.destinations`).
    secrets_need_destinations = True

    async def do(self, task: TaskContext) -> Resource:
        import openai

        custom = task.custom
        chatgpt_config = custom.get("chatgpt_config")
        if not isinstance(chatgpt_config, dict) or not chatgpt_config.get("model"):
            return _failed("custom.chatgpt_config: required, with at least a model (ChatGPTTask writes it)")
        if not isinstance(task.inputs.get("message"), str):
            return _failed("inputs.message: required, a string (the user message to send)")
        request = {
            # A protobuf Struct holds every number as a float: give OpenAI `max_tokens: 100`, not 100.0.
            **_whole_numbers_as_int(chatgpt_config),
            "messages": [{"role": "user", "content": task.inputs["message"]}],
        }
        timeout = float(self.config.get("timeout", DEFAULT_TIMEOUT))
        client = openai.AsyncOpenAI(
            api_key=get_agent_secret(API_KEY_SECRET),
            organization=custom.get("openai_organization") or None,
            base_url=str(self.config["base_url"]) if self.config.get("base_url") else None,
            timeout=timeout,
            max_retries=0,
            http_client=openai.DefaultAsyncHttpxClient(event_hooks=httpx_event_hooks()),
        )
        async with client:
            try:
                completion = await client.chat.completions.create(**request)
            except DestinationRefused as e:
                return _failed(_one_line(e))
            except openai.APIStatusError as e:
                return _status_failure(e)
            except openai.APITimeoutError:
                return Resource(
                    Phase.RETRYABLE_FAILED,
                    f"OpenAI did not answer within {timeout:g} s (config.timeout); a long completion "
                    "belongs on flytekit's connector, which can wait longer",
                )
            except openai.APIConnectionError as e:
                if isinstance(e.__cause__, DestinationRefused):  # openai versions that wrap any error
                    return _failed(_one_line(e.__cause__))
                return Resource(Phase.RETRYABLE_FAILED, f"cannot reach OpenAI: {_one_line(e)}")
            except TypeError as e:  # a parameter the client does not know, e.g. a typo in chatgpt_config
                return _failed(f"custom.chatgpt_config: {_one_line(e)}")
        if not completion.choices or completion.choices[0].message.content is None:
            reason = completion.choices[0].finish_reason if completion.choices else "no choices"
            return _failed(f"OpenAI answered without text (finish_reason: {reason})")
        choice = completion.choices[0]
        usage = completion.usage
        return Resource(
            Phase.SUCCEEDED,
            f"{completion.model}: {choice.finish_reason}",
            outputs={"o0": choice.message.content},
            custom_info={
                "model": completion.model,
                "usage": {
                    "prompt_tokens": usage.prompt_tokens,
                    "completion_tokens": usage.completion_tokens,
                    "total_tokens": usage.total_tokens,
                }
                if usage
                else {},
            },
        )


def _status_failure(error: openai.APIStatusError) -> Resource:
    status = error.status_code
    detail = _excerpt(error)
    if status == 401:
        return _failed(
            f"OpenAI rejected the API key (HTTP 401): check the Secrets Manager secret {_secret_source()}; "
            f"OpenAI said: {detail}"
        )
    if status == 429 or status >= 500:
        return Resource(Phase.RETRYABLE_FAILED, f"OpenAI is busy (HTTP {status}): {detail}")
    return _failed(f"OpenAI refused the request (HTTP {status}): {detail}")


def _secret_source() -> str:
    """The manifest's name for the key and the secret it maps to, for a 401 a user can act on."""
    from serverless_agents.runtime.loading import cached_manifest
    from serverless_agents.runtime.settings import current_settings

    try:
        settings = current_settings()
        agent = settings.agent or ""
        secret_id = cached_manifest(settings.manifest_path).agent(agent).secret_ids[API_KEY_SECRET]
    except Exception:  # the message is still useful without the secret's id
        return f"agents.toml maps to {API_KEY_SECRET!r}"
    return f"{secret_id!r} (agents.toml: [agents.{agent}] secrets.{API_KEY_SECRET})"


def _excerpt(error: openai.APIStatusError) -> str:
    body = error.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]
    message = body.get("message") if isinstance(body, dict) else None
    # OpenAI quotes a rejected key's first and last characters ("sk-proj-****abcd"): a part of a secret,
    # which the boundary's masking of whole values cannot recognise.
    return excerpt(_KEY_FRAGMENT.sub("sk-***", redact(_one_line(message or error.message))), _EXCERPT)


def _failed(message: str) -> Resource:
    return Resource(Phase.FAILED, message)


def _one_line(value: object) -> str:
    return " ".join(str(value).split())


def _whole_numbers_as_int(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _whole_numbers_as_int(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole_numbers_as_int(v) for v in value]
    return value
