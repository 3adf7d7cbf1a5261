"""`serverless-agents`: the command line.

serverless-agents up [--manifest agents.toml] [--port 8080] [--demo] [--exit-after-demo]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading


def _up(args: argparse.Namespace) -> int:
    # The embedded stack is moto in this process: make sure nothing can reach a real AWS account.
    for name, value in {
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": args.region,
    }.items():
        os.environ[name] = value
    os.environ.pop("AWS_PROFILE", None)
    from serverless_agents.local.stack import LocalStack, quiet_local_observability

    quiet_local_observability()
    with LocalStack(args.manifest, region=args.region, host=args.host, port=args.port) as stack:
        print(f"local stack up: HTTP API on {stack.api_url}", flush=True)
        for agent in stack.registry:
            print(f"  agent {agent.name}: {agent.kind.value}, task type {agent.task_type!r}", flush=True)
        if args.demo:
            from serverless_agents.demo import run_demo

            run_demo(stack.api_url, say=lambda line: print(line, flush=True))
            print("demo finished", flush=True)
            if args.exit_after_demo:
                return 0
        print(f"try: curl {stack.api_url}/v1/agents   (Ctrl-C to stop)", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("stopping", flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="serverless-agents", description=__doc__.splitlines()[0] if __doc__ else ""
    )
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="run every agent in the manifest on the embedded AWS emulator")
    up.add_argument("--manifest", default="agents.toml", help="the agents to run (default: agents.toml)")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=8080, help="the HTTP API's port (0: any free port)")
    up.add_argument("--region", default="us-east-1")
    up.add_argument("--demo", action="store_true", help="run a short demo through the HTTP API")
    up.add_argument("--exit-after-demo", action="store_true", help="stop once the demo is done")
    up.set_defaults(run=_up)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from serverless_agents.exceptions import ServerlessAgentsError

    try:
        return int(args.run(args))
    except ServerlessAgentsError as e:
        print(f"serverless-agents: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
