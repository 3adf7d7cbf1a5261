"""Test-only agents for the infra tests: the example job agent under other task types, so one manifest can
hold several async agents (the registry rejects two agents serving one task type)."""

from serverless_agents.examples import JobAgent


class BatchAgent(JobAgent):
    task_type = "example_batch"


class EtlAgent(JobAgent):
    task_type = "example_etl"
