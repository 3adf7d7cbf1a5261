"""Async cost per task: Step Functions state transitions, history events and dollars, by job length.

The model follows `statemachines/async_agent.asl.json` for a job that ends on its own:

    Started? -> Create -> Ended? -> (Wait -> Get -> Ended?) x polls -> Succeeded

and, every `polls_per_execution` gets, `Ended? -> Continue -> Continued` in the execution that continues and
`Started? -> Wait` in its successor (continue as new). The get Lambda asks for the next wait from the agent's
`PollBackoff` (`wait_after(polls)`), so a job of length T needs the smallest number of polls whose waits
add up to at least T. Then:

- states entered = 4 + 3 * polls + 3 * continuations: every state entered is a step Step Functions bills as
  one transition (the tasks table's `custom_info.state_transitions` leaves out the final Succeed state);
- history events of one execution = 13 + 9 * polls: ExecutionStarted; Started? entered and exited; Create's
  TaskStateEntered, TaskScheduled, TaskStarted, TaskSucceeded, TaskStateExited; each Choice and Wait entered
  and exited; the poll's Get (5 events); SucceedStateEntered / Exited; ExecutionSucceeded. An execution that
  continues adds Continue's 6 (TaskStateEntered, TaskScheduled, TaskStarted, TaskSubmitted, TaskSucceeded,
  TaskStateExited) and ends in Continued; so no execution holds more than 19 + 9 * polls_per_execution
  events, whatever the job's length. Retries would add more; none are modelled.

The model is grounded on the local stack: one real job, polled every second, run through the real ASL on
moto, and moto's `get_execution_history` for it compared with the model's prediction. Policies: the
project's default backoff, each async agent's in the example manifest, and a fixed 10-second poll for
contrast.
"""

from __future__ import annotations

import collections
import os
import time
from dataclasses import dataclass

from bench._common import BENCH_MANIFEST, OFFLINE_AWS_ENV, BenchError, Table, bench_main
from serverless_agents.aws.prices import PRICE_PER_TRANSITION, PRICE_SOURCE
from serverless_agents.deployment.manifest import (
    DEFAULT_POLLS_PER_EXECUTION,
    EXAMPLE_MANIFEST,
    AgentSettings,
    PollBackoff,
    load_manifest,
)

HISTORY_LIMIT = 25_000
NEAR_FRACTION = 0.8
JOB_LENGTHS = (("1 min", 60), ("10 min", 600), ("1 h", 3600), ("1 day", 86_400))
#: The grounding job: polls before it ends on its own.
GROUND_POLLS = 5
_MAX_POLLS = 10_000_000


#: States entered per continuation: Continue and Continued, then the successor's Started?.
TRANSITIONS_PER_CONTINUATION = 3
#: One year: the most `execution_timeout` allows, and the goal for the longest job.
YEAR = 31_536_000


def continuations(polls: int, polls_per_execution: int = DEFAULT_POLLS_PER_EXECUTION) -> int:
    """Executions after the first: one each time an execution reaches its polls and the job runs on."""
    return max(polls - 1, 0) // polls_per_execution


def states_entered(polls: int, polls_per_execution: int = DEFAULT_POLLS_PER_EXECUTION) -> int:
    return 4 + 3 * polls + TRANSITIONS_PER_CONTINUATION * continuations(polls, polls_per_execution)


def history_events(polls: int, polls_per_execution: int = DEFAULT_POLLS_PER_EXECUTION) -> int:
    """Events of the execution holding the most: the first, or the only one."""
    if polls <= polls_per_execution:
        return 13 + 9 * polls
    return 19 + 9 * polls_per_execution


@dataclass(frozen=True)
class Policy:
    name: str
    initial: int
    factor: float
    cap: int
    execution_timeout: int | None = None

    def backoff(self) -> PollBackoff:
        return PollBackoff(initial=self.initial, factor=self.factor, cap=self.cap)

    def describe(self) -> str:
        if self.factor == 1.0 or self.initial == self.cap:
            return f"every {self.cap} s"
        return f"{self.initial} s x{self.factor:g}, cap {self.cap} s"


@dataclass(frozen=True)
class Polling:
    polls: int
    seen_done_after: int  # seconds from Create to the Get that sees the job done


def polls_for(policy: Policy, job_seconds: int) -> Polling:
    """The number of gets until one sees a job of `job_seconds` done, and when that get runs."""
    backoff = policy.backoff()
    elapsed = polls = 0
    while elapsed < job_seconds:
        wait = backoff.wait_after(polls)
        if wait == 0 and backoff.cap == 0:
            raise BenchError(f"{policy.name}: a cap of 0 s polls without waiting: no finite count")
        elapsed += wait
        polls += 1
        if polls > _MAX_POLLS:
            raise BenchError(f"{policy.name}: more than {_MAX_POLLS} polls for {job_seconds} s")
    return Polling(max(polls, 1), elapsed)


def seconds_per_execution(policy: Policy, polls_per_execution: int = DEFAULT_POLLS_PER_EXECUTION) -> int:
    """Seconds of job one execution of the chain covers once the waits reach the cap (its later ones)."""
    return polls_per_execution * policy.cap


def policies() -> list[Policy]:
    default = PollBackoff()
    timeout = int(AgentSettings.model_fields["execution_timeout"].default)
    found = [
        Policy("fixed 10 s polling (for contrast)", 10, 1.0, 10, timeout),
        Policy("project default", default.initial, default.factor, default.cap, timeout),
    ]
    manifest = load_manifest(EXAMPLE_MANIFEST)
    for name, settings in manifest.agents.items():
        if "poll" not in settings.model_fields_set:
            continue  # sync agents and sensors set none; an async agent without one is the default
        poll = settings.poll
        found.append(
            Policy(f"agents.toml: {name}", poll.initial, poll.factor, poll.cap, settings.execution_timeout)
        )
    return found


def _human(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 2 * 86_400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.1f} d"


def model_table() -> Table:
    table = Table(
        "Async cost per task: Standard workflow, by job length and polling policy",
        [
            "policy",
            "waits",
            "job",
            "gets",
            "transitions",
            "history events",
            "% of 25,000",
            "$ per task",
            "$ per 1,000 tasks",
            "seen done late by",
            "flags",
        ],
    )
    for policy in policies():
        for label, seconds in JOB_LENGTHS:
            polling = polls_for(policy, seconds)
            events = history_events(polling.polls)
            transitions = states_entered(polling.polls)
            flags = []
            if events >= HISTORY_LIMIT:
                flags.append("OVER the history limit: the execution fails")
            elif events >= NEAR_FRACTION * HISTORY_LIMIT:
                flags.append("NEAR the history limit")
            if policy.execution_timeout is not None and polling.seen_done_after >= policy.execution_timeout:
                flags.append(f"hits execution_timeout ({_human(policy.execution_timeout)})")
            table.add(
                policy.name,
                policy.describe(),
                label,
                polling.polls,
                transitions,
                events,
                f"{100 * events / HISTORY_LIMIT:.1f}%",
                f"${transitions * PRICE_PER_TRANSITION:.5f}",
                f"${1000 * transitions * PRICE_PER_TRANSITION:.2f}",
                _human(polling.seen_done_after - seconds),
                "; ".join(flags) or "ok",
            )
    table.notes += [
        f"price: {PRICE_SOURCE}.",
        "transitions = states entered = 4 + 3 x gets + 3 x continuations; history events = those of the "
        "fullest execution: 13 + 9 x gets, at most 19 + 9 x polls_per_execution "
        f"({DEFAULT_POLLS_PER_EXECUTION:,} by default; the grounding below checks one execution against "
        "moto); no retries, no Lambda or DynamoDB charges.",
        "seen done late by: from the job's end to the get that sees it (the price of fewer gets); "
        "execution_timeout is the agent's (86,400 s by default) and covers the job plus that lateness.",
    ]
    return table


def limits_table() -> Table:
    """The longest job: not the history limit (each execution continues as new), execution_timeout only."""
    per = DEFAULT_POLLS_PER_EXECUTION
    table = Table(
        f"Longest job: a chain of executions of {per:,} gets each (polls_per_execution), "
        "up to execution_timeout",
        [
            "policy",
            "waits",
            "events per execution (max)",
            "one execution covers",
            "longest job at this execution_timeout",
            "a 1-year job: gets",
            "executions",
            "transitions",
            "of which continuations",
            "$ per task",
            "continuations' $",
        ],
    )
    for policy in policies():
        polling = polls_for(policy, YEAR)
        extra = continuations(polling.polls, per)
        transitions = states_entered(polling.polls, per)
        table.add(
            policy.name,
            policy.describe(),
            history_events(per + 1, per),
            _human(seconds_per_execution(policy, per)),
            _human(policy.execution_timeout) if policy.execution_timeout else "-",
            polling.polls,
            1 + extra,
            transitions,
            f"{TRANSITIONS_PER_CONTINUATION * extra} "
            f"({100 * TRANSITIONS_PER_CONTINUATION * extra / transitions:.2f}%)",
            f"${transitions * PRICE_PER_TRANSITION:.4f}",
            f"${TRANSITIONS_PER_CONTINUATION * extra * PRICE_PER_TRANSITION:.6f}",
        )
    table.notes += [
        "No execution nears the 25,000-event limit: each continues as a new one after polls_per_execution "
        "gets, so a job's length is bounded by its agent's execution_timeout alone (at most 1 year, "
        "31,536,000 s, the manifest's limit; the default is 1 day).",
        "a 1-year job: what a task with execution_timeout = 31536000 and this policy's waits costs.",
    ]
    return table


# ------------------------------------------------------------------------------------------- grounding


def ground() -> Table:
    """One real job on the local stack, its real history next to the model's prediction."""
    for name, value in OFFLINE_AWS_ENV.items():
        os.environ.setdefault(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(name, None)
    from serverless_agents.agent import Phase
    from serverless_agents.api.client import ApiClient
    from serverless_agents.flyte.resource_meta import task_id_from_resource_meta
    from serverless_agents.local.stack import LocalStack, quiet_local_observability
    from serverless_agents.testing import task_request

    quiet_local_observability()
    with LocalStack(BENCH_MANIFEST) as stack:
        (settings,) = [agent.settings for agent in stack.plan.async_agents if agent.name == "job"]
        policy = Policy("bench job", settings.poll.initial, settings.poll.factor, settings.poll.cap)
        api = ApiClient(stack.api_url)
        request = task_request(
            "example_job",
            {"n": 1},
            {"n": int, "polls": int},
            {"polls": GROUND_POLLS},
            execution=f"cost{time.time_ns()}",
        )
        started = time.monotonic()
        task_id = task_id_from_resource_meta(api.create_task(request).resource_meta)
        deadline = started + 120
        while True:
            resource = api.get_task(task_id).resource
            if Phase(resource.phase).is_terminal:
                break
            if time.monotonic() > deadline:
                raise BenchError(f"the grounding job is still {Phase(resource.phase).name} after 120 s")
            time.sleep(0.1)
        elapsed = time.monotonic() - started
        info = dict(resource.custom_info)
        arn = str(info["execution_arn"])
        sfn = stack.client("stepfunctions")
        while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING" and time.monotonic() < deadline:
            time.sleep(0.1)
        events: list[dict[str, object]] = []
        token: str | None = None
        while True:
            page = sfn.get_execution_history(executionArn=arn, **({"nextToken": token} if token else {}))
            events += page["events"]
            token = page.get("nextToken")
            if not token:
                break
        status = sfn.describe_execution(executionArn=arn)["status"]
    polls = int(info["polls"])
    types = collections.Counter(str(e["type"]) for e in events)
    entered = sum(n for kind, n in types.items() if kind.endswith("StateEntered"))
    predicted = polls_for(policy, GROUND_POLLS * policy.cap)
    table = Table(
        f"Async cost model vs moto: one job of {GROUND_POLLS} polls, waits of {policy.describe()}",
        ["quantity", "model", "moto (real execution)", "match"],
    )
    rows: list[tuple[str, object, object]] = [
        ("gets (polls)", predicted.polls, polls),
        ("states entered (billed transitions)", states_entered(predicted.polls), entered),
        ("history events", history_events(predicted.polls), len(events)),
        ("Task states (Create + Gets)", 1 + predicted.polls, types["TaskStateEntered"]),
        ("Wait states", predicted.polls, types["WaitStateEntered"]),
        ("Choice states (Started? + Ended? each)", 2 + predicted.polls, types["ChoiceStateEntered"]),
    ]
    for quantity, model, real in rows:
        table.add(quantity, model, real, "yes" if model == real else "NO")
    table.add(
        "custom_info.state_transitions (tasks table)",
        states_entered(predicted.polls) - 1,
        int(info.get("state_transitions", -1)),
        "yes" if states_entered(predicted.polls) - 1 == int(info.get("state_transitions", -1)) else "NO",
    )
    table.notes += [
        f"execution {status}; waits summed {predicted.seen_done_after} s, create to SUCCEEDED seen through "
        f"the API {elapsed:.1f} s (the rest is Lambda, moto and this poll loop).",
        "event types: " + ", ".join(f"{kind} {n}" for kind, n in sorted(types.items())),
        "custom_info.state_transitions leaves out the final Succeed state: one transition less than "
        "the states entered.",
    ]
    return table


def run(quick: bool = False) -> list[Table]:
    return [model_table(), limits_table(), ground()]


def main(argv: list[str] | None = None) -> int:
    return bench_main(__doc__, "the same (it is quick)", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
