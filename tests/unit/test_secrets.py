"""get_agent_secret: the manifest's name for a secret -> Secrets Manager, cached per container."""

from __future__ import annotations

import base64
import logging
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from serverless_agents import get_agent_secret
from serverless_agents.agent import LogLink, Phase, Resource
from serverless_agents.exceptions import InvalidRequest, ManifestError, RetryableAgentError
from serverless_agents.runtime.boundary import call_agent
from serverless_agents.runtime.settings import lambda_environment
from serverless_agents.security.redaction import has_secrets, redact, redact_exception, redact_value
from serverless_agents.security.secrets import forget_secrets, get_agent_secrets
from tests.agent_function import agent_function


@pytest.fixture
def agent_environment(tmp_path: Path) -> Iterator[str]:
    with mock_aws():
        arn = boto3.client("secretsmanager").create_secret(Name="openai-key", SecretString="sk-test")["ARN"]
        manifest = tmp_path / "agents.toml"
        agent = '[agents.echo]\nclass = "serverless_agents.examples:EchoAgent"\n'
        manifest.write_text(f'{agent}secrets = {{ api_key = "{arn}" }}\n')
        variables = {
            "SA_TASKS_TABLE": "t",
            "SA_PAYLOAD_BUCKET": "b",
            "SA_MANIFEST": str(manifest),
            "SA_AGENT": "echo",
        }
        forget_secrets()
        with agent_function(variables):
            yield arn
        forget_secrets()


def test_secret_is_read_by_its_manifest_name(agent_environment: str) -> None:
    assert get_agent_secret("api_key") == "sk-test"


def test_secret_value_is_cached_per_container(agent_environment: str) -> None:
    get_agent_secret("api_key")
    boto3.client("secretsmanager").put_secret_value(SecretId=agent_environment, SecretString="rotated")

    assert get_agent_secret("api_key") == "sk-test"


def test_unknown_secret_name_lists_the_known_ones(agent_environment: str) -> None:
    with pytest.raises(ManifestError, match=r"no secret 'token'.*\['api_key'\]"):
        get_agent_secret("token")


def test_secret_outside_an_agent_function_is_an_error(tmp_path: Path) -> None:
    with (
        lambda_environment({"SA_TASKS_TABLE": "t", "SA_PAYLOAD_BUCKET": "b", "SA_AGENT": ""}),
        pytest.raises(ManifestError, match="SA_AGENT"),
    ):
        get_agent_secret("api_key")


def test_a_secret_asked_for_before_its_agent_is_loaded_is_an_error(tmp_path: Path) -> None:
    """Which secrets an agent has is told where the agent is loaded; `secrets` reads no manifest."""
    manifest = tmp_path / "agents.toml"
    manifest.write_text('[agents.echo]\nclass = "serverless_agents.examples:EchoAgent"\n')
    variables = {"SA_TASKS_TABLE": "t", "SA_PAYLOAD_BUCKET": "b", "SA_MANIFEST": str(manifest)}
    with (
        lambda_environment({**variables, "SA_AGENT": "echo"}),
        pytest.raises(ManifestError, match="before agent 'echo' was loaded"),
    ):
        get_agent_secret("api_key")


_PROCESS_UNTOUCHED = """
import logging, sys
import boto3
from moto import mock_aws
from serverless_agents import get_agent_secret
from serverless_agents.security import redaction
from serverless_agents.runtime.loading import load_agent
from serverless_agents.runtime.settings import lambda_environment
make_record, stdout = logging.Logger.makeRecord, sys.stdout
with mock_aws():
    arn = boto3.client("secretsmanager", region_name="us-east-1").create_secret(
        Name="k", SecretString="sk-untouched")["ARN"]
    manifest = sys.argv[1]
    open(manifest, "w").write('[agents.echo]\\nclass = "serverless_agents.examples:EchoAgent"\\n'
                              f'secrets = {{ api_key = "{arn}" }}\\n')
    env = {"SA_TASKS_TABLE": "t", "SA_PAYLOAD_BUCKET": "b", "SA_MANIFEST": manifest, "SA_AGENT": "echo",
           "AWS_DEFAULT_REGION": "us-east-1"}
    with lambda_environment(env):
        load_agent(__import__("pathlib").Path(manifest), "echo")
        assert get_agent_secret("api_key") == "sk-untouched"
assert logging.Logger.makeRecord is make_record and sys.stdout is stdout, "the process was patched"
redaction.install()
assert logging.Logger.makeRecord is not make_record and sys.stdout is not stdout
print("sk-untouched")
"""


def test_reading_a_secret_patches_nothing_until_redaction_is_installed(tmp_path: Path) -> None:
    """Masking of log records and standard streams is installed by the handlers' entry
    (`redaction.install`), not as a side effect of importing a module or reading a secret."""
    run = subprocess.run(
        [sys.executable, "-c", _PROCESS_UNTOUCHED, str(tmp_path / "agents.toml")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout == "{secret:api_key}\n"


# Masking: every value read is remembered, and masked wherever text leaves the agent's code.

TOKEN = "sk-test/with+chars"
PEM = "\n".join(
    [
        "-----BEGIN PRIVATE KEY-----",
        "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
        "BKcwggSjAgEAAoIBAQC7",
        "-----END PRIVATE KEY-----",
    ]
)


@pytest.fixture
def remembered(tmp_path: Path) -> Iterator[Callable[[], dict[str, str]]]:
    """A container that has read three secrets: a token, a JSON secret and a PEM key. It gives a function
    reading them again, all at once, as a Flyte 2 connector's agent does (`get_agent_secrets`)."""
    with mock_aws():
        client = boto3.client("secretsmanager")
        values = {
            "token": "sk-test/with+chars",
            "db": '{"user": "app", "password": "hunter2-long"}',
            "pem": PEM,
        }
        arns = {name: client.create_secret(Name=name, SecretString=v)["ARN"] for name, v in values.items()}
        manifest = tmp_path / "agents.toml"
        secrets = ", ".join(f'{name} = "{arn}"' for name, arn in arns.items())
        manifest.write_text(
            f'[agents.echo]\nclass = "serverless_agents.examples:EchoAgent"\nsecrets = {{ {secrets} }}\n'
        )
        variables = {"SA_TASKS_TABLE": "t", "SA_PAYLOAD_BUCKET": "b", "SA_MANIFEST": str(manifest)}
        forget_secrets()
        environment = {**variables, "SA_AGENT": "echo"}
        with agent_function(environment):
            for name in values:
                get_agent_secret(name)

        def read_all() -> dict[str, str]:
            with agent_function(environment):
                return get_agent_secrets()

        yield read_all
        forget_secrets()


def test_secrets_read_all_at_once_are_masked_too(remembered: Callable[[], dict[str, str]]) -> None:
    forget_secrets()  # a new container, whose Flyte 2 connector reads every secret at once
    secrets = remembered()

    assert redact(f"key={secrets['token']}") == "key={secret:token}"
    assert redact(secrets["pem"]) == "{secret:pem}"


def test_redact_masks_every_spelling_of_a_secret(remembered: object) -> None:
    text = (
        "token sk-test/with+chars, encoded sk-test%2Fwith%2Bchars, password hunter2-long, "
        f"key line MIIEvQIBADANBgkqhkiG9w0BAQEFAASC, whole key {' '.join(PEM.split())}"
    )

    assert redact(text) == (
        "token {secret:token}, encoded {secret:token}, password {secret:db}, "
        "key line {secret:pem}, whole key {secret:pem}"
    )


def test_a_secret_sent_base64_encoded_is_masked_too(remembered: object) -> None:
    basic = base64.b64encode(b"app:hunter2-long").decode()  # HTTP basic auth from the JSON secret's fields
    token = base64.b64encode(TOKEN.encode()).decode()

    assert redact(f"401 for Authorization: Basic {basic}") == "401 for Authorization: Basic {secret:db}"
    assert redact(f"echoed {token}") == "echoed {secret:token}"
    assert redact(f"echoed {token.rstrip('=')}&next") == "echoed {secret:token}&next"
    assert redact(base64.b64encode(b"not a secret").decode()) == base64.b64encode(b"not a secret").decode()


def test_redact_value_walks_containers_and_keeps_other_values(remembered: object) -> None:
    value = {"a": ["sk-test/with+chars", 3, None], "sk-test/with+chars": ("x", "hunter2-long"), "n": 1.5}

    assert redact_value(value) == {
        "a": ["{secret:token}", 3, None],
        "{secret:token}": ("x", "{secret:db}"),
        "n": 1.5,
    }


def test_nothing_is_masked_before_a_secret_is_read() -> None:
    forget_secrets()

    assert redact("sk-test/with+chars") == "sk-test/with+chars"
    assert not has_secrets()


def test_a_redacted_exception_keeps_its_class_name_and_kind(remembered: object) -> None:
    original = RetryableAgentError("throttled for sk-test/with+chars\nsecond line")

    copy = redact_exception(original)

    assert type(copy).__name__ == "RetryableAgentError"
    assert type(copy).__module__ == "serverless_agents.exceptions"
    assert isinstance(copy, RetryableAgentError)
    assert str(copy) == "throttled for {secret:token} second line"


def test_a_redacted_exception_keeps_its_attributes_masked(remembered: object) -> None:
    copy = redact_exception(InvalidRequest("custom.token", "sk-test/with+chars is wrong"))

    assert isinstance(copy, InvalidRequest)
    assert (copy.field, copy.problem) == ("custom.token", "{secret:token} is wrong")


@pytest.mark.parametrize(
    "error",
    [
        KeyError("sk-test/with+chars"),
        OSError(2, "No such file", "/tmp/sk-test/with+chars"),
        UnicodeDecodeError("utf-8", b"\xff", 0, 1, "sk-test/with+chars"),
        ValueError(),
    ],
)
def test_exceptions_with_their_own_constructors_are_copied(remembered: object, error: Exception) -> None:
    copy = redact_exception(error)

    assert type(copy).__name__ == type(error).__name__
    assert isinstance(copy, type(error))
    assert "sk-test" not in str(copy)


def test_log_records_are_masked_when_made(remembered: object) -> None:
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record) + repr(getattr(record, "token", "")))

    password = "hunter2-long"
    handler = Keep()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("tests.secrets")
    logger.addHandler(handler)
    try:
        logger.warning("token %s", "sk-test/with+chars", extra={"token": ["hunter2-long"]})
        try:
            raise ValueError(f"cannot use {TOKEN}") from KeyError(password)
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)

    text = "\n".join(records)
    assert "token {secret:token}['{secret:db}']" in text
    assert "ValueError: cannot use {secret:token}" in text
    assert "KeyError: '{secret:db}'" in text
    assert "sk-test" not in text
    assert "hunter2" not in text


def test_what_an_agent_prints_is_masked(
    remembered: Callable[[], dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    # pytest puts its capture in place of the streams as the test starts; reading secrets wraps whatever
    # the streams are (on Lambda, the runtime's, never replaced).
    forget_secrets()
    secrets = remembered()
    print(f"debug: calling with {secrets['token']}")
    print("password:", "hunter2-long", file=sys.stderr)

    out, err = capsys.readouterr()
    assert out == "debug: calling with {secret:token}\n"
    assert err == "password: {secret:db}\n"


# The boundary: the one place agent code is called.


class _Agent:
    def __init__(self, secret: str) -> None:
        self.secret = secret

    def do(self) -> Resource:
        return Resource(
            Phase.SUCCEEDED,
            f"used {self.secret}",
            log_links=[LogLink("log", f"https://logs.example.com/?t={self.secret}")],
            outputs={"o": [self.secret]},
            custom_info={"k": {"v": self.secret}},
        )

    async def get(self) -> Resource:
        raise RetryableAgentError(f"busy {self.secret}")

    def poke(self) -> bool:
        raise ValueError(f"bad {self.secret}")


def test_call_agent_masks_a_returned_resource(remembered: object) -> None:
    resource = call_agent(_Agent(TOKEN).do)

    assert resource.message == "used {secret:token}"
    assert resource.log_links == [LogLink("log", "https://logs.example.com/?t={secret:token}")]
    assert resource.outputs == {"o": ["{secret:token}"]}
    assert resource.custom_info == {"k": {"v": "{secret:token}"}}


def test_call_agent_reraises_a_masked_copy_of_the_same_kind(remembered: object) -> None:
    with pytest.raises(RetryableAgentError) as raised:
        call_agent(_Agent(TOKEN).get)

    assert type(raised.value).__name__ == "RetryableAgentError"
    assert str(raised.value) == "busy {secret:token}"
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__
    assert "sk-test" not in "".join(traceback.format_exception(raised.value))


def test_call_agent_masks_a_plain_exception_too(remembered: object) -> None:
    with pytest.raises(ValueError, match=r"^bad \{secret:token\}$"):
        call_agent(_Agent(TOKEN).poke)
