"""The whole deployment on moto, in this process: what `cdk deploy` makes, made against the emulator.

Both read one description, `serverless_agents.deployment.plan`: every function (name, handler string, memory,
timeout, environment, log group), each async agent's state machine rendered from the packaged ASL, each
sensor's schedule group and event rules. Besides what the plan names, the local stack makes the tasks table
and the payload bucket (CloudFormation names them on AWS), every bucket the sensors' event patterns name (and,
when a sensor task starts, the bucket its inputs name). Then the in-process Lambda hook, the drivers standing
in for EventBridge (status changes, the sweeper's schedule, sensor schedules and events) and the local API
Gateway on localhost; with `aws_port`, the emulated AWS APIs themselves on localhost too
(`local.aws_endpoint`), so `aws --endpoint-url` or boto3 can upload the file a sensor waits for.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import logging
import os
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError, ParamValidationError

from serverless_agents.aws.s3uri import event_buckets, parse_s3_uri
from serverless_agents.aws.tasks_table import SensorTask, TasksTable, create_table
from serverless_agents.deployment.naming import LOCAL_ACCOUNT
from serverless_agents.deployment.plan import RUNTIME, FunctionPlan, Place, PlannedAgent, plan_deployment
from serverless_agents.deployment.statemachine import agent_definition
from serverless_agents.exceptions import InvalidRequest, TaskNotFound
from serverless_agents.local import moto_fixes
from serverless_agents.local.apigateway import LocalApiGateway
from serverless_agents.local.aws_endpoint import AwsEndpoint
from serverless_agents.local.driver import StatusChangeDriver
from serverless_agents.local.lambda_dispatch import InProcessLambdas
from serverless_agents.local.log_capture import LogCapture
from serverless_agents.local.sensor_triggers import RuleQueue, SensorTriggers, SensorWiring
from serverless_agents.local.task_events import TaskEvents

if TYPE_CHECKING:
    from types import TracebackType

ACCOUNT = LOCAL_ACCOUNT


def _placeholder_zip() -> bytes:
    # moto wants a code package; the handler runs from this process's own imports instead.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README.txt", "dispatched in-process by serverless_agents.local.lambda_dispatch")
    return buffer.getvalue()


class LocalStack:
    """Start with `with LocalStack("agents.toml") as stack:`; `stack.api_url` is the HTTP API.

    `schedule_period` fires every sensor schedule that often (seconds) instead of at its rate: AWS's
    shortest rate is a minute, which is long for a demo or a test. The sweeper runs every
    `sweep_interval` seconds (on AWS, every 15 minutes). `aws_port` serves the emulated AWS APIs on that
    port (0: any free port) at `stack.aws_url`.
    """

    def __init__(
        self,
        manifest_path: str | Path,
        *,
        region: str = "us-east-1",
        host: str = "127.0.0.1",
        port: int = 0,
        driver_interval: float = 0.2,
        schedule_period: float | None = None,
        aws_port: int | None = None,
        sweep_interval: float = 60.0,
    ) -> None:
        self.plan = plan_deployment(manifest_path)
        self.manifest_path = self.plan.manifest_path
        self.registry = self.plan.registry
        self.deployment = self.plan.deployment
        self.region = region
        self.place = Place("aws", region, ACCOUNT)
        self.tasks_table = f"{self.deployment}-tasks"
        self.payload_bucket = f"{self.deployment}-payloads-{ACCOUNT}"
        self.lambdas = InProcessLambdas()
        # The api function serves its invocations at once, as Lambda does in as many containers (a burst of
        # CreateTask waits in no line on AWS): its handler keeps each request to its thread (api.resolver).
        self.lambdas.scale_out.add(self.plan.api.name)
        self._host, self._port, self._driver_interval = host, port, driver_interval
        self._schedule_period = schedule_period
        self._aws_port = aws_port
        self._aws_server: AwsEndpoint | None = None
        self.task_events: TaskEvents | None = None
        self._sweep_interval = sweep_interval
        self._mock: Any = None
        self.api: LocalApiGateway | None = None
        self.driver: StatusChangeDriver | None = None
        self.sensor_triggers: SensorTriggers | None = None
        self.state_machine_arns: dict[str, str] = {}
        self._sensors: list[SensorWiring] = []
        self._rule_queues: list[RuleQueue] = []
        self._shared_env: dict[str, str] = {}
        self._role_arn = ""
        #: Each function's ARN as its callers invoke it: its SnapStart alias's, or its own.
        self._invocable_arns: dict[str, str] = {}

    @property
    def api_url(self) -> str:
        assert self.api is not None, "the stack is not started"
        return self.api.url

    @property
    def aws_url(self) -> str:
        """The emulated AWS APIs' endpoint (`aws --endpoint-url`), when started with `aws_port`."""
        assert self._aws_server is not None, "the stack serves no AWS endpoint: pass aws_port"
        return self._aws_server.url

    def client(self, service: str) -> Any:
        """Any service's client against the emulator (the stack itself uses `_aws`' typed ones)."""
        return self._aws.client(service)  # type: ignore[call-overload]

    @functools.cached_property
    def _aws(self) -> boto3.session.Session:
        # A literal service name gets its boto3-stubs type: `self._aws.client("lambda")` is a LambdaClient.
        return boto3.session.Session(region_name=self.region)

    def start(self) -> LocalStack:
        from moto import mock_aws

        self._mock = mock_aws(
            config={"lambda": {"use_docker": False}, "stepfunctions": {"execute_state_machine": True}}
        )
        self._mock.start()
        try:
            self.lambdas.install()
            moto_fixes.install()
            self._deploy()
            self.driver = StatusChangeDriver(
                self._aws.client("stepfunctions"),
                self._aws.client("lambda"),
                self.state_machine_arns.values(),
                self.plan.finalize.name,
                interval=self._driver_interval,
                sweeper_function=self.plan.sweeper.name if self.plan.sweeper else None,
                sweep_interval=self._sweep_interval,
            )
            self.driver.start()
            self.sensor_triggers = SensorTriggers(
                self._sensors,
                self._rule_queues,
                self._aws.client("lambda"),
                self._aws.client("scheduler"),
                self._aws.client("sqs"),
                interval=min(self._driver_interval, 0.1),
                schedule_period=self._schedule_period,
            )
            self.sensor_triggers.start()
            sync_agents = [agent.name for agent in self.plan.sync_agents]
            self.api = LocalApiGateway(
                self._aws.client("lambda"), self.deployment, self._host, self._port, sync_agents=sync_agents
            )
            self.api.start()
            if self._aws_port is not None:
                self._aws_server = AwsEndpoint(self._host, self._aws_port).start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.task_events is not None:
            self.task_events.stop()
            self.task_events = None
        if self._aws_server is not None:
            self._aws_server.stop()
            self._aws_server = None
        if self.api is not None:
            self.api.stop()
        for driver in (self.driver, self.sensor_triggers):
            if driver is not None:
                driver.stop()
        if self._mock is not None:
            # An execution still running would go on invoking functions, whose AWS calls, once the mock is
            # stopped, head for the real endpoints: stop them all, then let invocations under way finish.
            self._stop_executions()
        self.lambdas.uninstall()
        if self.lambdas.log_capture is not None:
            self.lambdas.log_capture.uninstall()
            self.lambdas.log_capture = None
        if self._mock is not None:
            self._mock.stop()
            self._mock = None

    def _stop_executions(self) -> None:
        """Stop every execution still running: moto runs each in a thread of this process, which would go
        on polling (and taking the CPU) after the stack is gone, into whatever the process does next."""
        sfn = self._aws.client("stepfunctions")
        for arn in self.state_machine_arns.values():
            for page in sfn.get_paginator("list_executions").paginate(
                stateMachineArn=arn, statusFilter="RUNNING"
            ):
                for execution in page["executions"]:
                    with contextlib.suppress(ClientError):
                        sfn.stop_execution(
                            executionArn=execution["executionArn"], cause="the local stack stopped"
                        )

    def watch_tasks(self, say: Callable[[str], object]) -> None:
        """From now on, `say` one line per task event: created, phase change, ended (`local.task_events`)."""
        if self.task_events is None:
            table = TasksTable(self.tasks_table, client=self._aws.client("dynamodb"))
            self.task_events = TaskEvents(table, say, interval=self._driver_interval)
            self.task_events.start()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def create_bucket(self, name: str, *, eventbridge: bool = True) -> None:
        """A bucket of the user's, sending its events to EventBridge as sensors on S3 need."""
        s3 = self.client("s3")
        if name in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
            return
        if self.region == "us-east-1":
            s3.create_bucket(Bucket=name)
        else:
            s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": self.region})
        if eventbridge:
            s3.put_bucket_notification_configuration(
                Bucket=name, NotificationConfiguration={"EventBridgeConfiguration": {}}
            )

    def _deploy(self) -> None:
        create_table(self._aws.client("dynamodb"), self.tasks_table)
        self.create_bucket(self.payload_bucket, eventbridge=False)
        # One role for everything: moto checks no policy (tests/rehearsal audits the template's roles).
        self._role_arn = self._aws.client("iam").create_role(
            RoleName=f"{self.deployment}-local", AssumeRolePolicyDocument="{}"
        )["Role"]["Arn"]
        self._shared_env = self.plan.shared_environment(
            self.place,
            tasks_table=self.tasks_table,
            payload_bucket=self.payload_bucket,
            scheduler_role_arn=self._role_arn,
            manifest=str(self.manifest_path),
        )
        for function in self.plan.functions:
            self._function(function)
        self._capture_logs()
        for agent in self.plan.async_agents:
            self._state_machine(agent)
        for agent in self.plan.sensor_agents:
            self._sensor(agent)

    def _capture_logs(self) -> None:
        """Each function's log records to its log group, as Lambda sends them (`local.log_capture`)."""
        logs = self._aws.client("logs")
        for group in sorted({function.log_group for function in self.plan.functions}):
            logs.create_log_group(logGroupName=group)
        capture = LogCapture(logs, {function.name: function.log_group for function in self.plan.functions})
        capture.install()
        self.lambdas.log_capture = capture

    def _function(self, function: FunctionPlan) -> None:
        client = self._aws.client("lambda")
        arn = client.create_function(
            FunctionName=function.name,
            Runtime=RUNTIME,
            Role=self._role_arn,
            Handler=function.handler,
            Code={"ZipFile": _placeholder_zip()},
            MemorySize=function.memory,
            Timeout=function.timeout,
            Environment={"Variables": function.environment(self._shared_env)},
            LoggingConfig={"LogFormat": "JSON", "LogGroup": function.log_group},
        )["FunctionArn"]
        if function.invocable != function.name:
            # As the CDK app deploys a SnapStart function: a published version behind an alias, which
            # callers invoke (nothing is snapshotted here: the alias is what makes the calls the same).
            version = client.publish_version(FunctionName=function.name)["Version"]
            alias = function.invocable.rpartition(":")[2]
            arn = client.create_alias(FunctionName=function.name, Name=alias, FunctionVersion=version)[
                "AliasArn"
            ]
        self._invocable_arns[function.name] = arn

    def _state_machine(self, agent: PlannedAgent) -> None:
        assert agent.state_machine is not None
        arns = {role: self._invocable_arns[function.name] for role, function in agent.functions.items()}
        definition = agent_definition(agent, self.place.partition, arns)
        self._rules(agent)
        created = self._aws.client("stepfunctions").create_state_machine(
            name=agent.state_machine, definition=definition, roleArn=self._role_arn
        )
        self.state_machine_arns[agent.name] = created["stateMachineArn"]

    def _sensor(self, agent: PlannedAgent) -> None:
        assert agent.schedule_group is not None
        self._aws.client("scheduler").create_schedule_group(Name=agent.schedule_group)
        if agent.rules:
            self._rules(agent)
            for bucket in event_buckets(agent.settings.events):
                self.create_bucket(bucket)
        poke = agent.function("poke").name
        self.lambdas.before_invoke[poke] = self._create_watched_buckets
        self._sensors.append(SensorWiring(agent.settings, poke, agent.schedule_group))

    def _rules(self, agent: PlannedAgent) -> None:
        """The agent's event rules. EventBridge would invoke their target function; moto's rules cannot
        target Lambda, so they target a queue that SensorTriggers delivers from (to that function)."""
        if not agent.rules:
            return
        sqs, events = self._aws.client("sqs"), self._aws.client("events")
        queue_url = sqs.create_queue(QueueName=f"{self.deployment}-{agent.name}-events")["QueueUrl"]
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
        queue_arn = attributes["Attributes"]["QueueArn"]
        (target,) = {rule.target for rule in agent.rules}  # one function per agent: poke, or get
        if agent.listens:
            # An event may come while a get runs: Lambda gives it a container of its own.
            self.lambdas.scale_out.add(target)
        for rule in agent.rules:
            assert rule.name is not None  # an agent's rules are named (naming.agent_rule_name)
            events.put_rule(Name=rule.name, EventPattern=json.dumps(rule.pattern))
            events.put_targets(Rule=rule.name, Targets=[{"Id": "target", "Arn": queue_arn}])
        self._rule_queues.append(RuleQueue(queue_url, self._invocable_arns[target]))

    def _create_watched_buckets(self, event: dict[str, Any]) -> None:
        """Before a task's poke (its first comes right after its creation): the bucket its inputs name, if
        none of the manifest's patterns made it, so a sensor on any bucket can be tried without set-up."""
        table = TasksTable(self.tasks_table, client=self._aws.client("dynamodb"))
        for task_id in event.get("task_ids", []) if isinstance(event, dict) else []:
            # Through the table's own reader: the stored `watch` carries its agent's key prefix.
            try:
                watch = table.get(str(task_id), SensorTask).watch or ""
            except TaskNotFound:
                continue
            if watch.startswith("s3://"):
                # A malformed URI or bucket name: the sensor's own poke says so, as a failed poke.
                with contextlib.suppress(InvalidRequest, ClientError, ParamValidationError):
                    self.create_bucket(parse_s3_uri(watch, "watch", key_required=False)[0])


def quiet_local_observability(verbose: bool = False) -> None:
    """Powertools prints a metrics blob per invocation; on a laptop that drowns the output. And unless
    `verbose`, the emulator's own logs are off: moto's Step Functions logs every failed state as an ERROR
    carrying the Lambda's whole error payload (several KB of emulator frames), while a failed task is already
    its one-line message, under `up` and in `AgentTestClient` alike."""
    if not verbose:
        logging.getLogger("moto").setLevel(logging.CRITICAL)
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    # Many functions share this process's one metrics store: one may find it emptied by another.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
