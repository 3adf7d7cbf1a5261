"""Cold start: what each Lambda's `import` costs, next to flytekit's connector base; bundle size per family.

Each measurement is a fresh interpreter (a subprocess): `time.perf_counter()` around
`importlib.import_module`, and the child's own peak RSS (VmHWM; getrusage's ru_maxrss would carry the
parent's peak across execve); the median of `runs` runs.
Children get what the Lambda runtime sets that changes an import (`LAMBDA_TASK_ROOT`,
`AWS_LAMBDA_FUNCTION_NAME`): Powertools' Tracer is then on and patches botocore at import, as on Lambda.

Three tables of imports:

- in this venv: every handler next to flytekit's `base_connector` (and `connector_service`, what its
  server adds), in one interpreter and one site-packages: the like-for-like comparison;
- as on Lambda: python 3.12 with only the built core bundle (`build/lambda/core`) on the path, compiled
  from source as Lambda must (bundles carry no .pyc, /var/task is read-only), and with .pyc for contrast;
- per agent: its handler plus its module (loaded at first invocation) next to flytekit's base plus the
  flytekit plugin doing the same job.

Bundle sizes: a family `infra/cdk/bundle.py` has built (build/lambda/<family>) is measured on disk as
bundle.py reports it; every family is also measured as the installed size of its dependency closure in
this venv (importlib.metadata RECORD files, .pyc excluded), as is flytekit's connector server.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from bench._common import PYTHON, ROOT, BenchError, Table, bench_main, emit, flytekit_pythonpath, median

RUNS = 5
QUICK_RUNS = 1
#: Imports the child times, one after another; prints their times and its peak RSS as JSON. The peak is
#: VmHWM, not getrusage's ru_maxrss: on Linux ru_maxrss survives execve, so a child started from a
#: larger parent would report the parent's peak.
_CHILD = """
import importlib, json, resource, sys, time
times = []
for name in sys.argv[1:]:
    start = time.perf_counter()
    importlib.import_module(name)
    times.append(time.perf_counter() - start)
try:
    with open("/proc/self/status") as status:
        peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
except (OSError, StopIteration):
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"times": times, "maxrss_kib": peak, "modules": len(sys.modules)}))
"""
#: flytekit's own building blocks, as a user of flytekit's connector server imports them.
FLYTEKIT_BASE = "flytekit.extend.backend.base_connector"
FLYTEKIT_SERVICE = "flytekit.extend.backend.connector_service"
#: The flytekit plugin (connector module) doing the same job as a built-in agent of ours.
FLYTEKIT_EQUIVALENT = {
    "serverless_agents.agents.snowflake": "flytekitplugins.snowflake.connector",
    "serverless_agents.agents.openai_chat": "flytekitplugins.openai.chatgpt.connector",
    "serverless_agents.agents.webhook": "flytekit.extras.webhook.connector",
    "serverless_agents.agents.file_sensor": "flytekit.sensor.file_sensor",
}
#: A python3.12 (Lambda's runtime version) to import the built bundle with; else found on PATH or in pyenv.
LAMBDA_PYTHON_ENV = "BENCH_LAMBDA_PYTHON"
_HANDLER_FOR_KIND = {"async": "create", "sync": "sync", "sensor": "poke"}
_BARE = "(nothing: bare interpreter)"


@dataclass(frozen=True)
class Runtime:
    """An interpreter and the environment it imports in.

    Bytecode never goes into the tree or the venv: `bytecode=True` reads and writes it under `pycache`, a
    private prefix warmed by one uncounted run; `bytecode=False` gives each run an empty prefix and
    writes nothing, so every module is compiled from source.
    """

    name: str
    python: str
    env: dict[str, str]
    bytecode: bool = True
    pycache: str = ""

    def child_env(self, empty_cache: str) -> dict[str, str]:
        if self.bytecode:
            return {**self.env, "PYTHONPYCACHEPREFIX": self.pycache or empty_cache}
        return {**self.env, "PYTHONPYCACHEPREFIX": empty_cache, "PYTHONDONTWRITEBYTECODE": "1"}


def lambda_env(task_root: Path = ROOT, pythonpath: str = "") -> dict[str, str]:
    """What the Lambda runtime sets that changes an import: Powertools' Tracer turns on in Lambda."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_PROFILE", "AWS_SESSION", "PYTHON"))}
    env.update(
        LAMBDA_TASK_ROOT=str(task_root),
        AWS_LAMBDA_FUNCTION_NAME="bench-cold-start",
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
    )
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return env


def venv_runtime(bytecode: bool = True, flytekit: bool = False) -> Runtime:
    """This venv's python; for flytekit, with what its connector server needs beyond the venv, if given."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    extra = flytekit_pythonpath() if flytekit else ""
    return Runtime(
        f"this venv (python {version})", PYTHON, lambda_env(pythonpath=extra), bytecode, _pycache()
    )


def lambda_python() -> str | None:
    """A working python3.12, if this machine has one."""
    candidates = [os.environ.get(LAMBDA_PYTHON_ENV, ""), shutil.which("python3.12") or ""]
    candidates += sorted(str(p) for p in Path.home().glob(".pyenv/versions/3.12*/bin/python3.12"))
    for candidate in filter(None, candidates):
        try:
            done = subprocess.run(
                [candidate, "-c", "import sys; print(sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except OSError:
            continue
        if done.returncode == 0 and done.stdout.strip() == "(3, 12)":
            return candidate
    return None


def bundle_runtime(python: str, bytecode: bool) -> Runtime:
    """Lambda's view: python3.12, the built core bundle's dependencies, the working tree's project code.

    The working tree's `serverless_agents` and `functions` come first (the bundle's copies are as old as
    its last build); nothing from this venv is on the path.
    """
    core = ROOT / "build" / "lambda" / "core"
    pythonpath = os.pathsep.join([str(ROOT / "src"), str(ROOT), str(core)])
    return Runtime(
        "python 3.12 + build/lambda/core", python, lambda_env(core, pythonpath), bytecode, _pycache()
    )


_PYCACHE_ROOT: list[str] = []  # the run's private bytecode prefix, set by `run`


def _pycache() -> str:
    return _PYCACHE_ROOT[-1] if _PYCACHE_ROOT else ""


@dataclass
class Sample:
    label: str
    times: list[list[float]]  # per run, per module
    maxrss_kib: list[int]
    module_counts: list[int]
    process_seconds: list[float]
    error: str = ""

    @property
    def import_ms(self) -> float:
        """Median over runs of the imports' total time."""
        if self.error or not self.times:
            return float("nan")
        return median([sum(run) for run in self.times]) * 1000

    @property
    def rss_mib(self) -> float:
        return median([float(k) for k in self.maxrss_kib]) / 1024 if self.maxrss_kib else float("nan")

    @property
    def modules_loaded(self) -> int:
        return int(median([float(c) for c in self.module_counts])) if self.module_counts else 0

    @property
    def process_ms(self) -> float:
        return median(self.process_seconds) * 1000 if self.process_seconds else float("nan")


def measure(label: str, modules: Sequence[str], runs: int, runtime: Runtime) -> Sample:
    sample = Sample(label, [], [], [], [])
    with tempfile.TemporaryDirectory(prefix="bench-empty-pycache-") as empty:
        env = runtime.child_env(empty)
        warm_up = 1 if runtime.bytecode else 0
        for attempt in range(warm_up + runs):
            start = time.perf_counter()
            done = subprocess.run(
                [runtime.python, "-c", _CHILD, *modules],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=180,
                check=False,
            )
            elapsed = time.perf_counter() - start
            if done.returncode != 0:
                sample.error = (done.stderr.strip().splitlines() or ["no output"])[-1]
                return sample
            if attempt < warm_up:
                continue
            result = json.loads(done.stdout.strip().splitlines()[-1])
            sample.times.append([float(t) for t in result["times"]])
            sample.maxrss_kib.append(int(result["maxrss_kib"]))
            sample.module_counts.append(int(result["modules"]))
            sample.process_seconds.append(elapsed)
    return sample


_IMPORTTIME = re.compile(r"^import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)$")


def heaviest_imports(module: str, runtime: Runtime, top: int = 3) -> str:
    """One `python -X importtime` run: the packages `module` pulls in with the largest cumulative time.

    The report lists imports children first; read backwards it is a tree (two spaces a level). A
    package's time is counted where it is first entered from another package, not again inside itself.
    """
    if not module:
        return ""
    with tempfile.TemporaryDirectory(prefix="bench-empty-pycache-") as empty:
        done = subprocess.run(
            [runtime.python, "-X", "importtime", "-c", f"import {module}"],
            cwd=ROOT,
            env=runtime.child_env(empty),
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    entries = [
        (len(m[2]) // 2, m[3], int(m[1]))
        for line in done.stderr.splitlines()
        if (m := _IMPORTTIME.match(line))
    ]
    if not entries or entries[-1][1] != module:
        return ""
    own = module.split(".")[0]
    totals: dict[str, int] = {}
    ancestors: list[str] = []
    for depth, name, cumulative_us in reversed(entries[:-1]):
        if depth == 0:
            break  # start-up imports, before the module's own
        del ancestors[depth - 1 :]
        package = name.split(".")[0]
        if package != own and package not in ancestors:
            totals[package] = totals.get(package, 0) + cumulative_us
        ancestors.append(package)
    ranked = sorted(((us, name) for name, us in totals.items()), reverse=True)
    return ", ".join(f"{name} {us / 1000:.0f}" for us, name in ranked[:top])


def handler_modules() -> list[str]:
    return [f"functions.{path.parent.name}.handler" for path in sorted(ROOT.glob("functions/*/handler.py"))]


def venv_table(runs: int) -> Table:
    """Handlers next to flytekit's connector base, in one interpreter and one site-packages."""
    cached, compiled = venv_runtime(bytecode=True), venv_runtime(bytecode=False)
    table = Table(
        f"Cold start in {cached.name}: each import in a fresh interpreter, median of {runs}",
        [
            "module",
            "import ms",
            "import ms, no .pyc",
            "process ms",
            "peak RSS MiB",
            "modules",
            "heaviest imports, ms",
        ],
    )
    rows: list[tuple[str, str]] = [(_BARE, "")]
    rows += [(name, name) for name in handler_modules()]
    rows += [
        (f"flytekit: {FLYTEKIT_BASE}", FLYTEKIT_BASE),
        (f"flytekit: {FLYTEKIT_SERVICE}", FLYTEKIT_SERVICE),
    ]
    for label, module in rows:
        emit(f"  venv: importing {label} ...")
        if module.startswith("flytekit"):
            cached, compiled = venv_runtime(True, flytekit=True), venv_runtime(False, flytekit=True)
        modules = [module] if module else []
        sample = measure(label, modules, runs, cached)
        if sample.error:
            table.add(label, "n/a", "n/a", "n/a", "n/a", "n/a", f"failed: {sample.error[:120]}")
            continue
        fresh = measure(label, modules, runs, compiled)
        table.add(
            label,
            sample.import_ms,
            fresh.import_ms,
            sample.process_ms,
            sample.rss_mib,
            sample.modules_loaded,
            heaviest_imports(module, cached),
        )
    table.notes += [
        "import ms: perf_counter around importlib.import_module in the child, with bytecode (compiled "
        "by an uncounted first run into a private cache); no .pyc: every module compiled from source; "
        "process ms: the child's whole life seen from the parent (interpreter start-up, the import, "
        "exit), with bytecode; peak RSS: the child's VmHWM; modules: len(sys.modules) after; "
        "heaviest imports: one `-X importtime` run, cumulative ms per package.",
        "With the Lambda environment set, Powertools' Tracer patches every library X-Ray supports that is "
        "installed: this venv has more of them (aiobotocore, aiohttp) than a Lambda bundle, so the next "
        "table is the closer picture of a real cold start.",
    ]
    return table


def bundle_import_table(runs: int) -> Table | None:
    python = lambda_python()
    if python is None or not (ROOT / "build" / "lambda" / "core").is_dir():
        return None
    shipped, compiled = bundle_runtime(python, bytecode=False), bundle_runtime(python, bytecode=True)
    table = Table(
        f"Cold start as on Lambda ({shipped.name}): median of {runs}",
        [
            "handler",
            "import ms, as shipped (no .pyc)",
            "import ms, if .pyc shipped",
            "process ms, as shipped",
            "peak RSS MiB",
            "modules",
            "heaviest imports, ms",
        ],
    )
    for module in ["", *handler_modules()]:
        label = module or _BARE
        emit(f"  bundle: importing {label} ...")
        modules = [module] if module else []
        sample = measure(label, modules, runs, shipped)
        if sample.error:
            table.add(label, "n/a", "n/a", "n/a", "n/a", "n/a", f"failed: {sample.error[:120]}")
            continue
        with_pyc = measure(label, modules, runs, compiled)
        table.add(
            label,
            sample.import_ms,
            with_pyc.import_ms,
            sample.process_ms,
            sample.rss_mib,
            sample.modules_loaded,
            heaviest_imports(module, shipped),
        )
    table.notes += [
        f"{python}; PYTHONPATH: src, the repository root (functions/), then build/lambda/core, the core "
        "family's dependencies as `infra/cdk/bundle.py` built them for Lambda (manylinux, cp312); nothing "
        "from the venv.",
        "as shipped: bundle.py installs with --no-compile and Lambda's /var/task is read-only, so every cold "
        "start compiles every module; if .pyc shipped: the same imports with bytecode compiled beforehand.",
    ]
    return table


def agent_table(runs: int) -> Table:
    """Each manifest agent: its handler then its class's module (loaded at first invocation)."""
    from serverless_agents.manifest import load_manifest
    from serverless_agents.registry import AgentRegistry

    runtime = venv_runtime()
    registry = AgentRegistry.from_manifest(load_manifest(ROOT / "agents.toml"))
    table = Table(
        f"Cold start per agent in {runtime.name}: handler + agent module vs flytekit base + plugin, "
        f"median of {runs}",
        [
            "agent",
            "ours: imports",
            "ours ms",
            "ours peak MiB",
            "flytekit: imports",
            "flytekit ms",
            "flytekit MiB",
        ],
    )
    seen: set[str] = set()
    for agent in registry:
        module = agent.settings.class_path.partition(":")[0]
        if module in seen:
            continue
        seen.add(module)
        handler = f"functions.{_HANDLER_FOR_KIND[agent.kind.value]}.handler"
        emit(f"  agent {agent.name}: {handler} + {module} ...")
        ours = measure(agent.name, [handler, module], runs, runtime)
        equivalent = FLYTEKIT_EQUIVALENT.get(module)
        theirs = None
        if equivalent:
            theirs = measure(agent.name, [FLYTEKIT_BASE, equivalent], runs, venv_runtime(flytekit=True))
        table.add(
            agent.name,
            f"{handler.split('.')[1]} handler + {module.rsplit('.', 1)[-1]}",
            _ms_or_reason(ours),
            ours.rss_mib,
            f"base_connector + {equivalent}" if equivalent else "(none)",
            _ms_or_reason(theirs),
            theirs.rss_mib if theirs and not theirs.error else float("nan"),
        )
    table.notes.append(
        "ours: the function's handler module (Lambda init) then the agent's module (first invocation), in "
        "one fresh interpreter; flytekit: base_connector then the plugin's connector module, the same way."
    )
    return table


def _ms_or_reason(sample: Sample | None) -> float | str:
    if sample is None:
        return "n/a"
    if sample.error:
        return f"failed: {sample.error[:80]}"
    return sample.import_ms


# ------------------------------------------------------------------------------------------ bundle sizes


def requirement_closure(requirements: Iterable[str]) -> tuple[dict[str, metadata.Distribution], set[str]]:
    """Installed distributions `requirements` need (extras and markers honoured), and those not installed."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    found: dict[str, metadata.Distribution] = {}
    missing: set[str] = set()
    pending: list[tuple[str, frozenset[str]]] = []
    for text in requirements:
        requirement = Requirement(text)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            pending.append((requirement.name, frozenset(requirement.extras)))
    done: set[tuple[str, frozenset[str]]] = set()
    while pending:
        name, extras = pending.pop()
        key = canonicalize_name(name)
        if (key, extras) in done:
            continue
        done.add((key, extras))
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            missing.add(key)
            continue
        found[key] = dist
        for text in dist.requires or []:
            requirement = Requirement(text)
            marker = requirement.marker
            if marker is None or any(marker.evaluate({"extra": extra}) for extra in ("", *extras)):
                pending.append((requirement.name, frozenset(requirement.extras)))
    return found, missing


def installed_size(dists: Iterable[metadata.Distribution]) -> int:
    """Bytes on disk of the distributions' files inside site-packages, without bytecode."""
    total = 0
    for dist in dists:
        for file in dist.files or []:
            if file.suffix == ".pyc" or str(file).startswith(".."):
                continue
            path = Path(str(dist.locate_file(file)))
            if path.is_file():
                total += path.stat().st_size
    return total


def project_code_size() -> int:
    total = 0
    for root in (ROOT / "src" / "serverless_agents", ROOT / "functions"):
        for path in root.rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                total += path.stat().st_size
    return total


def bundle_table() -> Table:
    sys.path.insert(0, str(ROOT))
    try:
        from infra.cdk.serverless_agents_cdk import bundles
    finally:
        sys.path.remove(str(ROOT))
    from serverless_agents.manifest import load_manifest

    manifest = load_manifest(ROOT / "agents.toml")
    families: dict[str, list[str]] = {bundles.CORE: []}
    for name, settings in manifest.agents.items():
        families.setdefault(bundles.family_for(settings.class_path), []).append(name)
    code = project_code_size()
    table = Table(
        "Bundle size per agent family, unzipped MiB (Lambda's limit: 250 MiB unzipped)",
        [
            "family",
            "agents (agents.toml)",
            "built bundle (build/lambda)",
            "venv closure + project code",
            "flytekit connector: venv closure",
        ],
    )
    flytekit_server = ["flytekit", "grpcio-health-checking", "httpx", "prometheus-client"]
    extra_path = [p for p in flytekit_pythonpath().split(os.pathsep) if p]
    sys.path.extend(extra_path)  # importlib.metadata finds httpx there, if that is where it is
    flytekit_plugin = {"snowflake": ["flytekitplugins-snowflake"], "openai": ["flytekitplugins-openai"]}
    all_missing: set[str] = set()
    for family in sorted(families):
        target = bundles.BUILD_DIR / family
        stamp = bundles.BUILD_DIR / f"{family}.requirements.txt"
        built = "not built"
        if target.is_dir():
            wanted = "\n".join([" ".join(bundles.PIP_PLATFORM_ARGS), *bundles.requirements(family)]) + "\n"
            current = stamp.exists() and stamp.read_text() == wanted
            built = f"{bundles.folder_size(target) / 2**20:.1f}" + (
                "" if current else " (stale requirements)"
            )
        dists, missing = requirement_closure(bundles.requirements(family))
        theirs, theirs_missing = requirement_closure(flytekit_server + flytekit_plugin.get(family, []))
        all_missing |= missing | theirs_missing
        table.add(
            family,
            ", ".join(families[family]) + (" + api, finalize, sweeper" if family == bundles.CORE else ""),
            built,
            f"{(installed_size(dists.values()) + code) / 2**20:.1f} ({len(dists)} dists)",
            f"{installed_size(theirs.values()) / 2**20:.1f} ({len(theirs)} dists)",
        )
    for path in extra_path:
        sys.path.remove(path)
    table.notes += [
        "built bundle: `bundles.folder_size` of build/lambda/<family> as `python infra/cdk/bundle.py` left "
        "it (pip for Lambda's python3.12 x86_64, no .pyc); only the families built on this machine.",
        "venv closure: the family's requirements (`bundles.requirements`) resolved through this venv's "
        "importlib.metadata, files from RECORD without .pyc, plus src/serverless_agents and functions/; "
        "the wheels are this venv's (CPython 3.11), not Lambda's.",
        "flytekit connector: flytekit + its `connector` extra (grpcio-health-checking, httpx, "
        "prometheus-client) + the family's flytekit plugin, measured the same way; on Kubernetes one "
        "always-on image holds every plugin.",
    ]
    if all_missing:
        table.notes.append(f"not installed in this venv, so not counted: {', '.join(sorted(all_missing))}")
    return table


def run(quick: bool = False) -> list[Table]:
    runs = QUICK_RUNS if quick else RUNS
    with tempfile.TemporaryDirectory(prefix="bench-pycache-") as cache:
        _PYCACHE_ROOT.append(cache)
        try:
            return _tables(runs)
        finally:
            _PYCACHE_ROOT.remove(cache)


def _tables(runs: int) -> list[Table]:
    try:
        tables = [venv_table(runs)]
        lambda_like = bundle_import_table(runs)
        if lambda_like is None:
            tables[0].notes.append(
                "not measured as on Lambda: no python3.12 or no build/lambda/core here (build it with "
                f"`python infra/cdk/bundle.py`; name a python3.12 in ${LAMBDA_PYTHON_ENV})"
            )
        else:
            tables.append(lambda_like)
        return [*tables, agent_table(runs), bundle_table()]
    except subprocess.TimeoutExpired as e:
        raise BenchError(f"an import took longer than {e.timeout} s") from e


def main(argv: list[str] | None = None) -> int:
    return bench_main(__doc__, f"one run per import instead of {RUNS}", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
