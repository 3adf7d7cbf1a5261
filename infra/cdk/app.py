"""`cdk synth` / `cdk deploy` run this (cdk.json); the app itself is `serverless_agents_cdk.app`."""

import os
import sys
from pathlib import Path

# The repository root, so `infra.cdk.serverless_agents_cdk` imports as it does under pytest and mypy.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from infra.cdk.serverless_agents_cdk.toolchain import packaged_node

os.environ.setdefault("JSII_NODE", packaged_node())  # before the import below starts jsii

from infra.cdk.serverless_agents_cdk.app import main
from infra.cdk.serverless_agents_cdk.bundles import BundleError

from serverless_agents.exceptions import ServerlessAgentsError

try:
    main()
except (ServerlessAgentsError, BundleError) as e:  # a bad manifest is one line, as in `up`, not a traceback
    sys.exit(f"app.py: {e}")
