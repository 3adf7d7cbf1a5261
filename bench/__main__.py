"""`python -m bench`: the five benchmarks, one after another, each printing its tables as markdown.

    .venv/bin/python -m bench                       # all five, full size (about 10 minutes on 2 cores)
    .venv/bin/python -m bench --quick               # a smoke run: small counts, 2-3 minutes
    .venv/bin/python -m bench --only sync,scale     # some of them: cold_start, sync, async_cost, scale, burst

A benchmark that cannot run says why and the others still run; the exit status is then 1. Figures are
printed, never asserted: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import time
import traceback
from collections.abc import Callable

from bench import async_cost, burst, cold_start, scale, sync_latency
from bench._common import FLYTEKIT_PYTHONPATH_ENV, BenchError, Table, emit, flytekit_pythonpath, machine_lines

BENCHMARKS: dict[str, tuple[str, Callable[[bool], list[Table]]]] = {
    "cold_start": ("1. Cold start and bundle size", cold_start.run),
    "sync": ("2. Sync latency and throughput", sync_latency.run),
    "async_cost": ("3. Async cost per task", async_cost.run),
    "scale": ("4. Scale", scale.run),
    "burst": ("5. Burst of CreateTask", burst.run),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run")
    parser.add_argument(
        "--only", default=",".join(BENCHMARKS), help=f"comma-separated, of: {', '.join(BENCHMARKS)}"
    )
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")

    emit("## Machine\n")
    emit("\n".join(f"- {line}" for line in machine_lines()))
    if flytekit_pythonpath():
        emit(f"- flytekit's connector extras from ${FLYTEKIT_PYTHONPATH_ENV}: {flytekit_pythonpath()}")
    emit(f"- mode: {'quick (smoke run, small counts)' if args.quick else 'full'}\n")
    started = time.monotonic()
    durations: list[tuple[str, float, str]] = []
    for name in chosen:
        title, run = BENCHMARKS[name]
        emit(f"## {title}\n")
        begin = time.monotonic()
        try:
            tables = run(args.quick)
        except BenchError as e:
            durations.append((title, time.monotonic() - begin, f"not measured: {e}"))
            emit(f"NOT MEASURED: {e}\n")
            continue
        except Exception:
            durations.append((title, time.monotonic() - begin, "failed (traceback above)"))
            emit(f"FAILED:\n{traceback.format_exc()}")
            continue
        for table in tables:
            emit(table.render())
        durations.append((title, time.monotonic() - begin, "ok"))
    summary = Table("Run time", ["benchmark", "seconds", "outcome"])
    for title, seconds, outcome in durations:
        summary.add(title, seconds, outcome)
    summary.add("total", time.monotonic() - started, "")
    emit(summary.render())
    return 0 if all(outcome == "ok" for _, _, outcome in durations) else 1


if __name__ == "__main__":
    raise SystemExit(main())
