"""Test-only agents: the example job agent under other task types, so one manifest holds it with
different settings (fast polling, slow polling, a short execution timeout)."""

from serverless_agents.examples import JobAgent


class SlowJobAgent(JobAgent):
    task_type = "example_job_slow"


class ShortTimeoutJobAgent(JobAgent):
    task_type = "example_job_short_timeout"
