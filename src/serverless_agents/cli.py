"""`serverless-agents`: the command line.

serverless-agents up       [--manifest FILE] [--port 8080] [--grpc-port 8000] [--aws-port 4566]
                           [--schedule-period SECONDS] [--demo] [--verbose] [--timeout 10]
serverless-agents adapter  --api URL [--port 8000] [--metrics-port 9090] [--timeout 10] [--workers 32]
                           [--queued-calls 512] [--max-stream-seconds 60]
                           [--tls-cert FILE --tls-key FILE [--health-port 8001]]
serverless-agents check    (--stack NAME | --api URL) [--sensor-bucket BUCKET] [--region R] [--timeout 120]

The adapter signs `resource_meta` with the keys in SA_RESOURCE_META_KEYS (required; `up` makes a random one
per run); SA_TLS_CERT / SA_TLS_KEY stand for the TLS flags.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from serverless_agents.local.stack import LocalStack


def _serve_forever(hint: str) -> None:
    print(f"{hint}   (Ctrl-C to stop)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        print("stopping", flush=True)


def _up(args: argparse.Namespace) -> int:
    # The embedded stack is moto in this process: make sure nothing can reach a real AWS account.
    for name, value in {
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": args.region,
    }.items():
        os.environ[name] = value
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(name, None)
    from serverless_agents.adapter.server import Adapter
    from serverless_agents.exceptions import ManifestError
    from serverless_agents.local.stack import LocalStack, quiet_local_observability

    _configure_logging(args.verbose)
    quiet_local_observability(args.verbose)
    manifest = _manifest(args.manifest, demo=args.demo)
    print(f"manifest: {manifest}", flush=True)
    with LocalStack(
        manifest,
        region=args.region,
        host=args.host,
        port=args.port,
        aws_port=args.aws_port,
        schedule_period=args.schedule_period,
    ) as stack:
        # No keys: a random one, for this run only (what it signed, no later run verifies).
        adapter = Adapter(
            stack.api_url,
            host=args.host,
            port=args.grpc_port,
            metrics_port=args.metrics_port,
            call_timeout=args.timeout,
        ).start()
        try:
            print(
                f"local stack up: HTTP API on {stack.api_url}, gRPC adapter on {adapter.address}", flush=True
            )
            print(f"  emulated AWS APIs on {stack.aws_url} (aws --endpoint-url {stack.aws_url})", flush=True)
            for agent in stack.registry:
                print(f"  agent {agent.name}: {agent.kind.value}, task type {agent.task_type!r}", flush=True)
            if args.demo:
                from serverless_agents.local.demo import TASK_TYPES, run_demo

                missing = sorted(set(TASK_TYPES) - {agent.task_type for agent in stack.registry})
                if missing:
                    raise ManifestError(
                        f"--demo needs agents of task types {', '.join(map(repr, missing))}, which "
                        f"{manifest} does not deploy: run `up --demo` without --manifest (the example agents)"
                    )

                bucket = _sensor_bucket(stack)
                run_demo(
                    adapter.address,
                    say=lambda line: print(line, flush=True),
                    upload=(lambda path: _upload(stack, path)) if bucket else None,
                    sensor_bucket=bucket or "",
                )
                print("demo finished", flush=True)
                if args.exit_after_demo:
                    return 0
            # The demo narrates its own tasks; from here on, every task's events, one line each.
            stack.watch_tasks(lambda line: print(line, flush=True))
            _serve_forever(
                f"flytepropeller's agent endpoint: {adapter.address}; try: curl {stack.api_url}/v1/agents"
            )
        finally:
            adapter.stop()
    return 0


def _manifest(given: str | None, *, demo: bool = False) -> Path:
    """The manifest `up` runs: the one given, else ./agents.toml, else the example manifest of the package
    (so `up --demo` works from any directory, a checkout or not). The demo calls the example agents, so
    `--demo` without `--manifest` runs the example manifest even where ./agents.toml exists."""
    from serverless_agents.deployment.manifest import EXAMPLE_MANIFEST

    if given is not None:
        return Path(given)
    here = Path("agents.toml")
    if demo and here.is_file():
        print("--demo runs the example agents: ./agents.toml is not used (leave out --demo to run it)")
        return EXAMPLE_MANIFEST
    return here if here.is_file() else EXAMPLE_MANIFEST


def _configure_logging(verbose: bool) -> None:
    """Warnings in one line each; the emulator's own logs and the functions' JSON logs with --verbose only
    (a failed job is already one task line, and moto repeats it as a Step Functions error dump)."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if verbose:
        os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "INFO")


def _sensor_bucket(stack: LocalStack) -> str | None:
    """The first bucket a FileSensor of the manifest watches (the stack made it), for the demo, if any."""
    from serverless_agents.aws.s3uri import event_buckets

    for agent in stack.registry:
        if agent.cls.__name__ == "FileSensor":
            for name in event_buckets(agent.settings.events):
                return name
    return None


def _upload(stack: LocalStack, path: str) -> None:
    from serverless_agents.aws.s3uri import parse_s3_uri

    bucket, key = parse_s3_uri(path, "path")
    stack.client("s3").put_object(Bucket=bucket, Key=key, Body=b"id,value\n1,42\n")


def _adapter(args: argparse.Namespace) -> int:
    from serverless_agents.adapter.server import Adapter
    from serverless_agents.exceptions import ManifestError
    from serverless_agents.flyte.resource_meta import ResourceMetaKeys

    if (args.tls_cert is None) != (args.tls_key is None):
        raise ManifestError("--tls-cert and --tls-key go together (or SA_TLS_CERT and SA_TLS_KEY)")
    tls = None
    if args.tls_cert is not None:
        tls = (Path(args.tls_cert).read_bytes(), Path(args.tls_key).read_bytes())
    adapter = Adapter(
        args.api,
        host=args.host,
        port=args.port,
        metrics_port=args.metrics_port,
        workers=args.workers,
        queued_calls=args.queued_calls,
        max_stream_seconds=args.max_stream_seconds,
        call_timeout=args.timeout,
        keys=ResourceMetaKeys.from_environment(),
        tls=tls,
        health_port=args.health_port,
    ).start()
    try:
        metrics = f", metrics on :{args.metrics_port}/metrics" if args.metrics_port is not None else ""
        scheme = "gRPC with TLS" if tls else "gRPC"
        health = f", health on :{adapter.health_port}" if args.health_port is not None else ""
        _serve_forever(f"adapter: {scheme} on {args.host}:{adapter.port} -> {args.api}{metrics}{health}")
    finally:
        adapter.stop()
    return 0


def _positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < 86_400:
        raise argparse.ArgumentTypeError(f"{text!r}: expected seconds, more than 0 (e.g. 5 or 0.5)")
    return seconds


def _positive_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number, 1 or more")
    return count


def _check(args: argparse.Namespace) -> int:
    """A deployed stack (or an API) verified with the caller's own credentials: `deployment_check`."""
    import dataclasses

    import boto3

    from serverless_agents.api.client import ApiClient
    from serverless_agents.deployment.check import Check, Deployment, Report, from_stack

    session = boto3.session.Session(region_name=args.region)
    if args.stack is not None:
        deployment = from_stack(args.stack, session.client("cloudformation"), session.client("events"))
    else:
        deployment = Deployment(args.api)
    if args.sensor_bucket is not None:
        deployment = dataclasses.replace(deployment, sensor_bucket=args.sensor_bucket)
    print(f"checking {'stack ' + args.stack if args.stack else args.api}: {deployment.api_url}", flush=True)
    report = Report(lambda line: print(line, flush=True))
    failed = Check(ApiClient(deployment.api_url), session.client("s3"), deployment, report, args.timeout)()
    print(f"{'check failed' if failed else 'check passed'}: {len(report.lines)} steps, {failed} failed")
    return 1 if failed else 0


def _add_call_timeout(parser: argparse.ArgumentParser) -> None:
    """`up` and `adapter` run the same adapter, so they take the same flag."""
    parser.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        help="seconds for an HTTP call whose gRPC call carries no deadline; "
        "propeller's calls carry one, and get what remains of it",
    )


class _DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's help line ends with its default, except where there is none to show: a flag (off
    unless given) or an option whose help says what happens when it is not given."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or isinstance(action.default, bool):
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="serverless-agents", description="Flyte agents on AWS Lambda.")
    commands = parser.add_subparsers(dest="command", required=True)

    defaults = _DefaultsFormatter
    up = commands.add_parser(
        "up",
        help="run the manifest's agents on the embedded AWS emulator, with the adapter",
        formatter_class=defaults,
    )
    up.add_argument(
        "--manifest",
        default=None,
        help="the agents to run (when not given: ./agents.toml if there is one and --demo is not, "
        "else the example manifest)",
    )
    up.add_argument("--host", default="127.0.0.1", help="the address every local server listens on")
    up.add_argument("--port", type=int, default=8080, help="the HTTP API's port (0: any free port)")
    up.add_argument("--grpc-port", type=int, default=8000, help="the adapter's gRPC port (0: any free port)")
    up.add_argument(
        "--aws-port",
        type=int,
        default=4566,
        help="serve the emulated AWS APIs (S3, ...) on this port, for aws --endpoint-url (0: any free port)",
    )
    up.add_argument(
        "--schedule-period",
        type=_positive_seconds,
        default=None,
        help="fire sensor schedules every SECONDS instead of at their manifest rate (when not given: "
        "the manifest's rate, a minute at least)",
    )
    up.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve Prometheus metrics on this port (when not given: none)",
    )
    up.add_argument("--region", default="us-east-1", help="the emulated AWS region")
    up.add_argument(
        "--demo", action="store_true", help="run a short demo through the adapter, as Flyte would"
    )
    up.add_argument("--exit-after-demo", action="store_true", help="stop once the demo is done")
    up.add_argument(
        "--verbose", action="store_true", help="also the emulator's logs and the functions' JSON logs"
    )
    _add_call_timeout(up)
    up.set_defaults(run=_up)

    adapter = commands.add_parser(
        "adapter", help="serve flyteidl's agent services in front of the HTTP API", formatter_class=defaults
    )
    adapter.add_argument(
        "--api", required=True, help="the HTTP API's base URL (API Gateway stage URL on AWS)"
    )
    adapter.add_argument("--host", default="0.0.0.0", help="the address the gRPC server listens on")
    adapter.add_argument("--port", type=int, default=8000, help="the gRPC port")
    adapter.add_argument("--metrics-port", type=int, default=9090, help="Prometheus metrics port")
    adapter.add_argument(
        "--workers",
        type=_positive_count,
        default=32,
        help="calls served at once (task calls and streams); health and discovery have threads of their own",
    )
    adapter.add_argument(
        "--queued-calls",
        type=_positive_count,
        default=512,  # adapter.capacity.QUEUED_CALLS (not imported here: it brings grpc)
        help="task calls that may wait for a worker, each within its deadline (the Flyte 2 executor's "
        "burst: 512); streams and calls beyond are answered RESOURCE_EXHAUSTED",
    )
    adapter.add_argument(
        "--max-stream-seconds",
        type=_positive_seconds,
        default=60.0,
        help="a stream (ExecuteTaskSync) open longer is cancelled: above your slowest sync agent'stimeout",
    )
    adapter.add_argument(
        "--tls-cert",
        default=os.environ.get("SA_TLS_CERT"),
        help="serve gRPC with TLS: the certificate chain, PEM (env SA_TLS_CERT)",
    )
    adapter.add_argument(
        "--tls-key", default=os.environ.get("SA_TLS_KEY"), help="its private key, PEM (env SA_TLS_KEY)"
    )
    adapter.add_argument(
        "--health-port",
        type=int,
        default=None,
        help="also serve grpc.health.v1 alone, plain, on this port (for the kubelet's probes under TLS)",
    )
    _add_call_timeout(adapter)
    adapter.set_defaults(run=_adapter)

    check = commands.add_parser(
        "check",
        help="verify a deployment: list its agents, run a canary task of each built-in kind, clean up",
        formatter_class=defaults,
    )
    target = check.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--stack",
        help="the CloudFormation stack `cdk deploy` made (API and bucket from its outputs and rules)",
    )
    target.add_argument("--api", help="an HTTP API's base URL instead (the local stack's)")
    check.add_argument(
        "--sensor-bucket",
        default=None,
        help="where the FileSensor canary puts its test object (when not given: the bucket the stack's "
        "S3 rule watches; with --api, no FileSensor step)",
    )
    check.add_argument(
        "--region", default=None, help="the stack's region (when not given: your AWS config's)"
    )
    check.add_argument(
        "--timeout", type=_positive_seconds, default=120.0, help="seconds each canary task has to end"
    )
    check.set_defaults(run=_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from serverless_agents.exceptions import ServerlessAgentsError

    try:
        return int(args.run(args))
    except (ServerlessAgentsError, OSError) as e:
        print(f"serverless-agents: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
