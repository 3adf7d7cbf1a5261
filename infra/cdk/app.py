"""`cdk synth` / `cdk deploy` run this (cdk.json); the app itself is `serverless_agents_cdk.app`."""

import os
import sys
from pathlib import Path

# The repository root, so `infra.cdk.serverless_agents_cdk` imports as it does under pytest and mypy.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from infra.cdk.serverless_agents_cdk.toolchain import packaged_node

os.environ.setdefault("JSII_NODE", packaged_node())  # before the import below starts jsii

from infra.cdk.serverless_agents_cdk.app import main

main()
