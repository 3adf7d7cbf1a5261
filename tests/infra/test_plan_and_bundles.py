"""The manifest read into a plan, and Lambda bundles: families, requirements, contents, bytecode, the size
limit. No synth and no pip here: the real pip bundling runs in `python infra/cdk/bundle.py`, which needs
PyPI. Bytecode is compiled by this interpreter (the bundler looks for the Lambda runtime's version; the
compilation is the same)."""

from __future__ import annotations

import hashlib
import importlib.util
import marshal
import sys
from pathlib import Path

import pytest
from infra.cdk.serverless_agents_cdk import bundles
from infra.cdk.serverless_agents_cdk.bundles import (
    CORE,
    LAMBDA_PYTHON,
    Bundle,
    BundleError,
    agent_code,
    agent_family,
    assemble_project_code,
    build_stamp,
    check_size,
    compile_bytecode,
    compiler_python,
    families,
    family_for,
    folder_size,
    requirements,
)

from serverless_agents.agent import AgentKind
from serverless_agents.deployment.compiled_manifest import read_compiled
from serverless_agents.deployment.plan import plan_deployment
from tests.infra.conftest import BASE_MANIFEST

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("class_path", "family"),
    [
        ("serverless_agents.agents.snowflake:SnowflakeAgent", "snowflake"),
        ("serverless_agents.agents.openai_chat:ChatGPTAgent", "openai"),
        ("serverless_agents.agents.ecs:EcsAgent", CORE),  # its extra adds nothing: it runs on the core
        ("serverless_agents.agents.webhook:WebhookAgent", CORE),
        ("serverless_agents.agents.file_sensor:FileSensor", "sensors"),  # fsspec, for non-S3 paths
        ("serverless_agents.examples:JobAgent", CORE),
        ("my_agents.bigquery:BigQueryAgent", CORE),
    ],
)
def test_agent_family_follows_its_module(class_path: str, family: str) -> None:
    assert family_for(class_path) == family


def test_requirements_are_the_core_plus_the_familys_extra() -> None:
    core = requirements(CORE)
    snowflake = requirements("snowflake")

    assert any(r.startswith("aws-lambda-powertools") for r in core)
    assert any(r.startswith("aws-xray-sdk") for r in core)  # for the agents with `tracing = true`
    assert not any(r.startswith(("moto", "aws-cdk-lib", "grpcio", "flytekit")) for r in core)
    assert snowflake[: len(core)] == core
    assert [r for r in snowflake if r.startswith("snowflake-connector-python")]
    with pytest.raises(BundleError, match="no extra 'nope'"):
        requirements("nope")


def test_bundle_holds_the_project_code_and_the_manifest_at_its_root(tmp_path: Path) -> None:
    manifest = tmp_path / "my-agents.toml"
    manifest.write_text(BASE_MANIFEST)
    target = tmp_path / "core"

    assemble_project_code(target, manifest)
    (target / "serverless_agents" / "stale.py").write_text("")  # a file removed from the project since
    assemble_project_code(target, manifest)

    assert sorted(p.name for p in target.iterdir()) == [
        "agents.toml",
        "agents.toml.json",
        "functions",
        "serverless_agents",
    ]
    assert (target / "agents.toml").read_text() == BASE_MANIFEST
    # The manifest compiled beside it, which the functions read without pydantic.
    assert read_compiled(target / "agents.toml") is not None
    assert (target / "functions" / "api" / "handler.py").exists()
    assert (target / "serverless_agents" / "runtime" / "settings.py").exists()
    assert not (target / "serverless_agents" / "stale.py").exists()
    assert not list(target.rglob("__pycache__"))


def test_agent_code_may_not_replace_an_installed_package(tmp_path: Path) -> None:
    target = tmp_path / "core"
    (target / "mypkg").mkdir(parents=True)  # as if pip had installed it
    (tmp_path / "agents" / "mypkg").mkdir(parents=True)
    manifest = tmp_path / "agents.toml"
    manifest.write_text(BASE_MANIFEST)

    with pytest.raises(BundleError, match="which pip installed"):
        assemble_project_code(target, manifest, [tmp_path / "agents" / "mypkg"])


def test_a_bundle_over_the_limit_fails(tmp_path: Path) -> None:
    (tmp_path / "big.bin").write_bytes(b"x" * 2048)
    bundle = Bundle("core", tmp_path, bundles.folder_size(tmp_path))

    assert check_size(bundle, limit=4096) is bundle
    with pytest.raises(BundleError, match="over the 0 MB limit"):
        check_size(bundle, limit=1024)


def test_pip_targets_the_lambda_platform() -> None:
    args = " ".join(bundles.PIP_PLATFORM_ARGS)

    assert "--platform manylinux2014_x86_64" in args
    assert "--platform manylinux_2_28_x86_64" in args  # snowflake-connector-python 5's wheels
    assert "manylinux_2_35" not in args  # newer than Amazon Linux 2023's glibc
    assert "--python-version 3.12" in args
    assert "--only-binary=:all:" in args


def test_plan_splits_agents_by_kind_and_finds_agent_code_outside_the_project(tmp_path: Path) -> None:
    manifest = tmp_path / "agents.toml"
    manifest.write_text(BASE_MANIFEST)

    plan = plan_deployment(manifest)

    assert [a.name for a in plan.async_agents] == ["job", "batch"]
    assert [a.name for a in plan.sync_agents] == ["echo"]
    assert families(plan) == (CORE,)
    assert agent_code(plan) == (ROOT / "tests",)  # tests.infra.agents:BatchAgent
    assert {a.kind for a in plan.agents} == {AgentKind.ASYNC, AgentKind.SYNC}
    assert plan.sensor_agents == ()


def test_a_sensor_in_the_manifest_is_planned_with_the_other_agents(tmp_path: Path) -> None:
    manifest = tmp_path / "agents.toml"
    manifest.write_text(
        BASE_MANIFEST + '\n[agents.wait-file]\nclass = "serverless_agents.agents.file_sensor:FileSensor"\n'
    )

    plan = plan_deployment(manifest)

    assert [a.name for a in plan.sensor_agents] == ["wait-file"]
    assert [a.name for a in plan.async_agents] == ["job", "batch"]
    assert families(plan) == (CORE, "sensors")


def test_a_bad_manifest_fails_the_plan_as_it_would_fail_the_api_function(tmp_path: Path) -> None:
    manifest = tmp_path / "agents.toml"
    manifest.write_text(BASE_MANIFEST + '\n[agents.job2]\nclass = "serverless_agents.examples:JobAgent"\n')

    with pytest.raises(Exception, match="both serve task type 'example_job'"):
        plan_deployment(manifest)


def digest(folder: Path) -> str:
    """One hash of every file's path and bytes: what decides the CDK asset hash."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def test_bundled_project_code_carries_reproducible_bytecode(tmp_path: Path) -> None:
    manifest = tmp_path / "agents.toml"
    manifest.write_text(BASE_MANIFEST)
    digests = []
    for attempt in ("one", "two"):
        target = tmp_path / attempt / "core"
        assemble_project_code(target, manifest, compiler=sys.executable)
        digests.append(digest(target))

    pyc = target / "functions" / "create" / "__pycache__" / f"handler.{sys.implementation.cache_tag}.pyc"
    header = pyc.read_bytes()[:16]
    code = marshal.loads(pyc.read_bytes()[16:])
    assert digests[0] == digests[1]  # built twice, byte for byte the same: the asset hash does not move
    assert header[:4] == importlib.util.MAGIC_NUMBER
    assert int.from_bytes(header[4:8], "little") == 0b01  # PEP 552: hash-based, source never checked
    assert code.co_filename == "/var/task/functions/create/handler.py"  # where Lambda puts it
    assert folder_size(target, bytecode=False) < folder_size(target)


def test_a_module_that_does_not_compile_stays_source(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "good.py").write_text("X = {'a', 'b'}\n")
    (tmp_path / "pkg" / "py2_only.py").write_text("print 'hello'\n")

    assert compile_bytecode(tmp_path / "pkg", sys.executable) is False
    assert [p.name.split(".")[0] for p in (tmp_path / "pkg" / "__pycache__").iterdir()] == ["good"]


def test_a_bundle_says_what_compiled_it_or_that_it_ships_source() -> None:
    compiled = Bundle("core", Path("/b"), 3 * 2**20, source_bytes=2 * 2**20, compiled_by="python3.12")
    source = Bundle("core", Path("/b"), 2 * 2**20, source_bytes=2 * 2**20)

    assert "2.0 MB source + 1.0 MB bytecode by python3.12" in compiled.describe()
    assert "source only: no python3.12 here" in source.describe()


def test_the_compiler_is_an_interpreter_of_the_lambda_runtimes_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    this = f"{sys.version_info.major}.{sys.version_info.minor}"
    monkeypatch.setenv(bundles.LAMBDA_PYTHON_ENV, sys.executable)

    assert compiler_python(this) == sys.executable
    assert compiler_python("2.0") is None  # no such interpreter anywhere: the bundle ships source


def test_bytecode_or_not_is_part_of_what_the_dependencies_were_built_from() -> None:
    core = requirements(CORE)

    assert build_stamp(core, compiled=True) != build_stamp(core, compiled=False)
    assert f"cpython {LAMBDA_PYTHON}" in build_stamp(core, compiled=True)


def test_a_flyte2_connector_runs_from_the_flyte2_bundle(tmp_path: Path) -> None:
    # The connector class of tests/functional/flyte2_connectors.py, named as a user names one.
    manifest = tmp_path / "agents.toml"
    manifest.write_text(
        '[agents.wait]\nclass = "tests.functional.flyte2_connectors:CountdownConnector"\n'
        '[agents.job]\nclass = "serverless_agents.examples:JobAgent"\n'
    )

    plan = plan_deployment(manifest)

    assert {agent.name: agent_family(plan, agent) for agent in plan.agents} == {"wait": "flyte2", "job": CORE}


def test_flytekit_connectors_run_from_the_flytekit_bundle_with_their_plugin(tmp_path: Path) -> None:
    # A flytekitplugins connector by its class path, its package as the agent's requirement, and a team's own.
    manifest = tmp_path / "agents.toml"
    manifest.write_text(
        '[agents.chat]\nclass = "flytekitplugins.openai.chatgpt.connector:ChatGPTConnector"\n'
        'requirements = ["flytekitplugins-openai==1.16.30"]\n'
        '[agents.countdown]\nclass = "tests.functional.flytekit_connectors:CountdownConnector"\n'
    )

    plan = plan_deployment(manifest)
    by_name = {agent.name: agent_family(plan, agent) for agent in plan.agents}

    assert by_name["countdown"] == "flytekit"
    assert by_name["chat"].startswith("flytekit+")
    assert "flytekit==1.16.30" in requirements("flytekit")
    assert bundles.bundle_requirements(by_name["chat"], plan)[-1] == "flytekitplugins-openai==1.16.30"
    assert {AgentKind.SYNC, AgentKind.ASYNC} == {agent.kind for agent in plan.agents}


def test_an_agents_requirements_give_it_a_bundle_of_its_family_plus_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # BatchAgent (tests.infra.agents) stands for a user's agent importing a library of its own.
    manifest = tmp_path / "agents.toml"
    manifest.write_text(
        '[agents.job]\nclass = "serverless_agents.examples:JobAgent"\n'
        '[agents.batch]\nclass = "tests.infra.agents:BatchAgent"\nrequirements = ["httpx==0.27.0"]\n'
        '[agents.etl]\nclass = "tests.infra.agents:EtlAgent"\nrequirements = ["httpx==0.27.0"]\n'
    )
    plan = plan_deployment(manifest)
    by_name = {agent.name: agent_family(plan, agent) for agent in plan.agents}

    assert by_name["job"] == CORE
    assert by_name["batch"] == by_name["etl"] != CORE  # the same requirements: one bundle
    assert by_name["batch"].startswith(f"{CORE}+")
    assert families(plan) == (CORE, by_name["batch"])
    assert bundles.bundle_requirements(CORE, plan) == requirements(CORE)
    assert bundles.bundle_requirements(by_name["batch"], plan) == [*requirements(CORE), "httpx==0.27.0"]

    # What pip is asked for when the bundle is built (pip itself needs PyPI: recorded, not run).
    asked: dict[str, list[str]] = {}

    def pip_install(target: Path, wanted: list[str], compiler: str | None) -> None:
        target.mkdir(parents=True)
        asked[target.name] = wanted

    monkeypatch.setattr(bundles, "_pip_install", pip_install)
    monkeypatch.setattr(bundles, "compiler_python", lambda *_: None)  # no bytecode: the same requirements
    bundles.build_bundle(by_name["batch"], plan, build_dir=tmp_path / "build")

    assert asked == {by_name["batch"]: [*requirements(CORE), "httpx==0.27.0"]}
