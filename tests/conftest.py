"""Shared by every test level: fake AWS credentials and quiet Powertools, set before anything runs.

No test may reach real AWS: credentials are fake, and moto intercepts every call made inside its mock.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

for name, value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_METRICS_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
}.items():
    os.environ[name] = value
os.environ.pop("AWS_PROFILE", None)

from serverless_agents.security.secrets import forget_secrets  # noqa: E402  (after the environment is set)


@pytest.fixture(autouse=True, scope="module")
def _a_new_container_per_module() -> Iterator[None]:
    """Secrets a module's functions read or were handed are masked in everything this process writes, as
    in a Lambda container, where one agent's functions run; the next module, here in the same process, is
    another container: it starts with none (a value remembered by one would mask another's messages). A
    module's own tests share theirs, as its module-scoped stacks and fixtures do."""
    yield
    forget_secrets()
