"""Lambda code: one asset folder per agent family, built with pip for the Lambda platform (no Docker).

    build/lambda/core/        the core dependencies (pyproject `dependencies`): the api and finalize
                              functions, and every agent whose family needs nothing more
    build/lambda/snowflake/   the core + the `snowflake` extra: the Snowflake agent's functions
    build/lambda/openai/      the core + the `openai` extra: the OpenAI agent's functions
    build/lambda/sensors/     the core + the `sensors` extra (fsspec): the FileSensor's poke function
    build/lambda/flyte2/      the core + the `flyte2` extra (the flyte SDK): Flyte 2 connectors' functions
    build/lambda/flytekit/    the core + the `flytekit` extra: flytekit connectors' functions; a plugin's
                              own package (flytekitplugins-*) goes in the agent's `requirements`

Each folder holds the pip-installed dependencies, then the project's own `serverless_agents/` and
`functions/`, the manifest as `agents.toml` at the root (where `settings.current_settings` looks:
`$LAMBDA_TASK_ROOT/agents.toml`), beside it its compiled form (`manifest.compile_manifest`, at
`compiled_manifest.compiled_path`: what the functions read, without pydantic) and the routes of
connectors' agents (`registry.ROUTES_FILE`: the api and sweeper functions, in the core bundle, route to a
flytekit or Flyte 2 connector without its SDK), and the code of agents that live outside this project.

pip runs only when a family's requirements change (or with `--refresh`): the requirements it was built
from are kept beside the folder. The project code and the manifest are copied again on every build, so a
deploy always ships the working tree. `python infra/cdk/bundle.py` builds every family the manifest needs
and prints their sizes; the CDK app calls the same `build_bundle`, which is a cache hit after that.

Every bundle ships bytecode, because `/var/task` is read-only: without `.pyc` files every cold start
compiles every module it imports (about 1 s for a handler). The bytecode must come from the same Python
version as the runtime (`LAMBDA_PYTHON`, which `handler_function.RUNTIME` deploys): `compiler_python` finds
an interpreter of that version (`$SA_LAMBDA_PYTHON`, the deploying interpreter itself, `python3.12` on
PATH, or pyenv's), and without one the bundle ships source only and says so. The `.pyc` files are
unchecked-hash ones (PEP 552) compiled with a fixed hash seed and `/var/task` as their path: the same
sources always give the same bytes, so an unchanged bundle keeps its asset hash and does not redeploy, and
the runtime never stats a source file to validate them.

Offline synth (tests, `-c bundling=skip`) uses `assemble_standin` instead: the project code and the
manifest only, no dependencies, no pip, no bytecode.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from serverless_agents.deployment.compiled_manifest import compiled_path
from serverless_agents.deployment.manifest import EXAMPLE_MANIFEST, compile_manifest
from serverless_agents.deployment.registry import ROUTES_FILE
from serverless_agents.exceptions import ManifestError
from serverless_agents.runtime.settings import BUNDLE_MANIFEST

if TYPE_CHECKING:
    from serverless_agents.deployment.plan import DeploymentPlan, PlannedAgent
    from serverless_agents.deployment.registry import RegisteredAgent

ROOT = Path(__file__).resolve().parents[3]
PYPROJECT = ROOT / "pyproject.toml"
#: The manifest `cdk synth` and bundle.py read unless told otherwise (`-c manifest=...`, `--manifest`).
DEFAULT_MANIFEST = EXAMPLE_MANIFEST
#: Outside `infra/`: mypy type-checks `infra/`, and must not walk thousands of installed packages.
BUILD_DIR = ROOT / "build" / "lambda"
CORE = "core"
#: The Lambda runtime's Python version: pip resolves wheels for it and bytecode is compiled by it.
LAMBDA_PYTHON = "3.12"
#: An interpreter of `LAMBDA_PYTHON` to compile bytecode with, when the deploying one is another version.
LAMBDA_PYTHON_ENV = "SA_LAMBDA_PYTHON"
#: Where Lambda puts the code: the path tracebacks show for the bundle's modules.
LAMBDA_TASK_ROOT = "/var/task"
#: Lambda's limit is 250 MB unzipped for code and layers together; the rest is headroom.
SIZE_LIMIT_BYTES = 200 * 1024 * 1024
#: Lambda's python3.12 runs on Amazon Linux 2023, glibc 2.34: wheels for any manylinux up to that run there.
#: pip expands `manylinux2014` to the older tags but a `manylinux_2_N` tag to nothing, so each is listed
#: (snowflake-connector-python 5 ships manylinux_2_28 wheels only).
LAMBDA_GLIBC_MINOR = 34
PIP_PLATFORM_ARGS = (
    *(
        arg
        for minor in range(LAMBDA_GLIBC_MINOR, 16, -1)
        for arg in ("--platform", f"manylinux_2_{minor}_x86_64")
    ),
    "--platform",
    "manylinux2014_x86_64",
    "--implementation",
    "cp",
    "--python-version",
    LAMBDA_PYTHON,
    "--only-binary=:all:",
)
#: Beyond pyproject's `dependencies`: Powertools' Tracer needs `aws_xray_sdk` in the functions of agents
#: with `tracing = true` (serverless_agents/handlers/observability.py); the others never import it.
BUNDLE_REQUIREMENTS = ("aws-xray-sdk>=2.14,<3",)
#: Built-in agent modules and the pyproject extra their family needs. Anything else runs on the core.
EXTRA_FOR_MODULE = {
    "serverless_agents.agents.snowflake": "snowflake",
    "serverless_agents.agents.openai_chat": "openai",
    "serverless_agents.agents.ecs": "ecs",
    "serverless_agents.agents.webhook": "webhook",
    # fsspec, for FileSensor paths other than s3:// (a scheme's own backend, e.g. gcsfs, is not included).
    "serverless_agents.agents.file_sensor": "sensors",
    # A Flyte 2 connector runs wrapped in this module's agent class, through the flyte SDK.
    "serverless_agents.agents.flyte2_connector": "flyte2",
    # A flytekit connector (flytekitplugins-*, or a team's own) likewise, through flytekit.
    "serverless_agents.agents.flytekit_connector": "flytekit",
}
#: The project's own packages: every bundle carries them, so an agent class there needs no extra code.
_PROJECT_CODE = ("serverless_agents", "functions")
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc")


class BundleError(Exception):
    """A bundle cannot be built, or came out too large to deploy."""


@dataclass(frozen=True)
class Bundle:
    family: str
    path: Path
    size_bytes: int
    #: The size without its bytecode (`__pycache__`): what a source-only bundle would weigh.
    source_bytes: int = 0
    #: The interpreter that compiled the bytecode, or "" when the bundle ships source only.
    compiled_by: str = ""

    def describe(self) -> str:
        size = f"{self.size_bytes / 2**20:.1f} MB unzipped"
        if self.compiled_by:
            size += (
                f" ({self.source_bytes / 2**20:.1f} MB source + "
                f"{(self.size_bytes - self.source_bytes) / 2**20:.1f} MB bytecode by {self.compiled_by})"
            )
        else:
            size += f", source only: no python{LAMBDA_PYTHON} here to compile it (see ${LAMBDA_PYTHON_ENV})"
        return f"{self.family}: {size} ({self.path})"


@functools.cache  # read for every agent's family and every bundle's requirements: once per process is enough
def _pyproject(pyproject: Path = PYPROJECT) -> dict[str, object]:
    return dict(tomllib.loads(pyproject.read_text())["project"])


def family_for(class_path: str, pyproject: Path = PYPROJECT) -> str:
    """The bundle an agent class runs from: its module's extra, or "core" when that extra adds nothing."""
    return family_for_module(class_path.partition(":")[0], pyproject)


def agent_family(plan: DeploymentPlan, agent: PlannedAgent) -> str:
    """The bundle its functions run from: "core", or the pyproject extra of its agent family; with the
    manifest's `requirements`, that family plus them, `<family>+<digest of the requirements>` (agents
    asking for the same requirements share one bundle)."""
    family = _family(plan.registry.by_name(agent.name))
    added = sorted(agent.settings.requirements)
    if not added:
        return family
    return f"{family}+{hashlib.sha256(chr(10).join(added).encode()).hexdigest()[:10]}"


def bundle_requirements(family: str, plan: DeploymentPlan) -> list[str]:
    """What pip installs into `family`'s bundle: `requirements(base family)`, and the manifest's
    `requirements` of the agents running from it."""
    base, _, _ = family.partition("+")
    added = next(
        (sorted(a.settings.requirements) for a in plan.agents if agent_family(plan, a) == family), []
    )
    return [*requirements(base), *added]


def families(plan: DeploymentPlan) -> tuple[str, ...]:
    """Every bundle the deployment needs; "core" always (the api and finalize functions)."""
    return tuple(sorted({CORE, *(agent_family(plan, a) for a in plan.agents)}))


def _family(agent: RegisteredAgent) -> str:
    """The bundle by the module whose code runs: a flytekit or Flyte 2 connector runs inside the agent class
    its SDK's adapter made (`adapter_module`: serverless_agents.agents.connectors), through that SDK,
    whatever package defines it."""
    adapter_module = getattr(agent.cls, "adapter_module", None)
    if adapter_module is not None:
        return family_for_module(adapter_module)
    return family_for_module(agent.settings.class_path.partition(":")[0])


def agent_code(plan: DeploymentPlan) -> tuple[Path, ...]:
    """Top-level packages (or modules) of agent classes outside this project, copied into every bundle."""
    roots: set[Path] = set()
    for class_path in (agent.settings.class_path for agent in plan.agents):
        top = class_path.partition(":")[0].split(".")[0]
        if top in _PROJECT_CODE:
            continue
        spec = importlib.util.find_spec(top)  # imported already by the registry, so it is found
        if spec is None:
            raise ManifestError(f"cannot find the code of agent class {class_path!r}")
        locations = list(spec.submodule_search_locations or [])
        if len(locations) > 1:
            raise ManifestError(
                f"agent class {class_path!r} lives in namespace package {top!r} spread over "
                f"{len(locations)} directories: bundle it as one package"
            )
        if locations:
            roots.add(Path(locations[0]))
        elif spec.origin:
            roots.add(Path(spec.origin))
    return tuple(sorted(roots))


def family_for_module(module: str, pyproject: Path = PYPROJECT) -> str:
    extra = next(
        (e for m, e in EXTRA_FOR_MODULE.items() if module == m or module.startswith(m + ".")),
        None,
    )
    if extra is None:
        return CORE
    return extra if _extra_requirements(extra, pyproject) else CORE


def _extra_requirements(extra: str, pyproject: Path) -> list[str]:
    extras = _pyproject(pyproject).get("optional-dependencies", {})
    assert isinstance(extras, dict)
    if extra not in extras:
        raise BundleError(f"{pyproject} has no extra {extra!r} for the {extra} agent family")
    return [str(r) for r in extras[extra]]


def requirements(family: str, pyproject: Path = PYPROJECT) -> list[str]:
    """What pip installs into a family's bundle: the core dependencies, plus its extra."""
    core = _pyproject(pyproject).get("dependencies", [])
    assert isinstance(core, list)
    extra = [] if family == CORE else _extra_requirements(family, pyproject)
    return [*(str(r) for r in core), *BUNDLE_REQUIREMENTS, *extra]


def folder_size(path: Path, *, bytecode: bool = True) -> int:
    total = 0
    for directory, _, files in os.walk(path):
        if not bytecode and "__pycache__" in Path(directory).parts:
            continue
        total += sum(os.lstat(os.path.join(directory, name)).st_size for name in files)
    return total


def _python_version(python: str) -> str | None:
    try:
        done = subprocess.run(
            [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def compiler_python(version: str = LAMBDA_PYTHON) -> str | None:
    """An interpreter of the Lambda runtime's Python version on this machine, or None.

    Looked for in order: `$SA_LAMBDA_PYTHON`, the interpreter running this (a deploy from a python3.12
    venv needs nothing more), `python3.12` on PATH, then pyenv's versions.
    """
    candidates = [
        os.environ.get(LAMBDA_PYTHON_ENV, ""),
        sys.executable,
        shutil.which(f"python{version}") or "",
    ]
    pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    candidates += sorted(
        (str(p) for p in pyenv_root.glob(f"versions/{version}.*/bin/python{version}")), reverse=True
    )
    return next((c for c in candidates if c and _python_version(c) == version), None)


#: Run by the runtime's interpreter: unchecked-hash .pyc for argv[1] (a package folder, or one module),
#: recorded as if compiled at argv[2], so tracebacks name /var/task/... and the bytes do not depend on
#: where the bundle was built.
_COMPILE = """
import compileall, os, py_compile, sys
path, recorded_as = sys.argv[1:3]
common = dict(quiet=2, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
if os.path.isdir(path):
    ok = compileall.compile_dir(path, stripdir=path, prependdir=recorded_as, workers=1, **common)
else:
    strip, prepend = os.path.dirname(path), os.path.dirname(recorded_as)
    ok = compileall.compile_file(path, stripdir=strip, prependdir=prepend, **common)
sys.exit(0 if ok else 3)
"""


def compile_bytecode(path: Path, python: str, *, recorded_as: str = LAMBDA_TASK_ROOT) -> bool:
    """Compile every module under `path` (or the module `path`) with `python`; False if some did not.

    `recorded_as` is where `path` lands on Lambda. The hash seed is fixed because set and frozenset
    constants are marshalled in hash order: with a random seed the same source gives other bytes. A
    module that does not compile (a test file of some package written for another Python) stays source
    only, as pip leaves it.
    """
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    env.pop("PYTHONPYCACHEPREFIX", None)  # the bytecode must land beside its source, in the bundle
    done = subprocess.run(
        [python, "-c", _COMPILE, str(path), recorded_as],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode not in (0, 3):
        raise BundleError(f"{python} could not compile {path}: {done.stderr.strip()[-300:]}")
    return done.returncode == 0


def check_size(bundle: Bundle, limit: int = SIZE_LIMIT_BYTES) -> Bundle:
    if bundle.size_bytes > limit:
        raise BundleError(
            f"bundle {bundle.describe()} is over the {limit / 2**20:.0f} MB limit: "
            "split the agent family or trim its extra"
        )
    return bundle


def assemble_project_code(
    target: Path,
    manifest: Path,
    agent_code: Sequence[Path] = (),
    *,
    compiler: str | None = None,
    routes: Mapping[str, object] | None = None,
) -> None:
    """Copy the project's code, the agents' code and the manifest into `target` (replacing old copies),
    compiled to bytecode by `compiler` if given, with the manifest's compiled form and the connectors'
    `routes` beside it (`registry.ROUTES_FILE`: the api and sweeper functions route to them without
    their SDKs)."""
    target.mkdir(parents=True, exist_ok=True)
    record = target.parent / f"{target.name}.project-code"
    copied_before = set(record.read_text().split()) if record.exists() else set(_PROJECT_CODE)
    sources = [ROOT / "src" / "serverless_agents", ROOT / "functions", *agent_code]
    for source in sources:
        destination = target / source.name
        if destination.exists() and source.name not in copied_before:
            raise BundleError(
                f"agent code {source} would replace {destination}, which pip installed: rename the package"
            )
    for name in copied_before:
        stale = target / name
        if stale.is_dir():
            shutil.rmtree(stale)
        elif stale.exists():
            stale.unlink()
    for source in sources:
        if source.is_dir():
            shutil.copytree(source, target / source.name, ignore=_IGNORED)
        else:
            shutil.copy2(source, target / source.name)
        if compiler and (source.is_dir() or source.suffix == ".py"):
            compile_bytecode(target / source.name, compiler, recorded_as=f"{LAMBDA_TASK_ROOT}/{source.name}")
    shutil.copyfile(manifest, target / BUNDLE_MANIFEST)
    compiled_path(target / BUNDLE_MANIFEST).write_text(compile_manifest(target / BUNDLE_MANIFEST))
    routes_file = target / ROUTES_FILE
    routes_file.unlink(missing_ok=True)
    if routes:
        routes_file.write_text(json.dumps(routes, indent=2, sort_keys=True) + "\n")
    record.write_text("\n".join(sorted(s.name for s in sources)) + "\n")


def assemble_standin(target: Path, plan: DeploymentPlan) -> Path:
    """The offline stand-in for every bundle: the project code and the manifest, no dependencies."""
    if target.exists():
        shutil.rmtree(target)
    assemble_project_code(
        target, plan.manifest_path, agent_code(plan), routes=plan.registry.connector_routes()
    )
    return target


def build_bundle(
    family: str,
    plan: DeploymentPlan,
    *,
    build_dir: Path = BUILD_DIR,
    refresh: bool = False,
    limit: int = SIZE_LIMIT_BYTES,
) -> Bundle:
    """The family's asset folder, pip-installing its dependencies only when they changed."""
    target = build_dir / family
    compiler = install_dependencies(target, bundle_requirements(family, plan), refresh=refresh)
    assemble_project_code(
        target,
        plan.manifest_path,
        agent_code(plan),
        compiler=compiler,
        routes=plan.registry.connector_routes(),
    )
    return check_size(measure_bundle(family, target, compiler), limit)


def install_dependencies(
    target: Path, requirement_list: Sequence[str], *, refresh: bool = False
) -> str | None:
    """pip-install `requirement_list` for Lambda into `target`, compiled by `compiler_python()`, unless the
    stamp beside it says that is what it holds already; returns the compiler (None: source only)."""
    stamp = target.with_name(f"{target.name}.requirements.txt")
    compiler = compiler_python()
    wanted = build_stamp(requirement_list, compiled=compiler is not None)
    if refresh or not target.is_dir() or not stamp.exists() or stamp.read_text() != wanted:
        _pip_install(target, list(requirement_list), compiler)
        stamp.write_text(wanted)
    return compiler


def measure_bundle(name: str, target: Path, compiler: str | None) -> Bundle:
    return Bundle(
        name,
        target,
        folder_size(target),
        source_bytes=folder_size(target, bytecode=False),
        compiled_by=f"{compiler} ({LAMBDA_PYTHON})" if compiler else "",
    )


def build_stamp(requirement_list: Sequence[str], *, compiled: bool) -> str:
    """What a folder's dependencies were built from: pip's platform, the requirements, and bytecode or not.
    A change in any of them installs the dependencies again."""
    bytecode = f"bytecode: cpython {LAMBDA_PYTHON}, unchecked-hash" if compiled else "bytecode: none"
    return "\n".join([" ".join(PIP_PLATFORM_ARGS), *requirement_list, bytecode]) + "\n"


def _pip_install(target: Path, requirement_list: list[str], compiler: str | None) -> None:
    family = target.name
    staging = target.with_name(f".{family}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    print(f"bundle {family}: pip install for Lambda (python {LAMBDA_PYTHON}, x86_64)", flush=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--progress-bar",
        "off",
        # pip would compile with this interpreter, whatever its version, and stamp .pyc with install
        # times (a new asset hash on every build): `compile_bytecode` does it for Lambda's version instead.
        "--no-compile",
        "--target",
        str(staging),
        *PIP_PLATFORM_ARGS,
        *requirement_list,
    ]
    if subprocess.run(command, check=False).returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise BundleError(f"pip could not build the {family} bundle: {' '.join(command)}")
    shutil.rmtree(staging / "bin", ignore_errors=True)  # console scripts: nothing on Lambda runs them
    if compiler:
        print(f"bundle {family}: compiling bytecode with {compiler}", flush=True)
        compile_bytecode(staging, compiler)
    if target.exists():
        shutil.rmtree(target)
    (target.parent / f"{family}.project-code").unlink(missing_ok=True)  # a fresh folder holds none
    staging.rename(target)
