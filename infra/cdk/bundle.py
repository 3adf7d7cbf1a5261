"""Build the Lambda bundles a manifest needs, with pip for the Lambda platform (no Docker), and print sizes.

    python infra/cdk/bundle.py                        # the example manifest
    python infra/cdk/bundle.py --manifest my.toml     # another manifest
    python infra/cdk/bundle.py --refresh              # pip again even if the requirements did not change
    python infra/cdk/bundle.py --accept-metadata-changes job   # no task of `job` in flight: see below

Checks first that every async agent's metadata still reads what the deployed one stored
(`serverless_agents.deployment.evolution`, against the lock beside the manifest), and updates that lock.

Needs PyPI (or your index). Fails if a bundle is over 200 MB unzipped. `cdk synth` / `cdk deploy` reuse
these folders (build/lambda/<family>), refreshing only the project code and the manifest.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, as in app.py

from infra.cdk.serverless_agents_cdk.bundles import DEFAULT_MANIFEST, BundleError, build_bundle, families

from serverless_agents.deployment.evolution import accepted, check_and_lock, metadata_schemas
from serverless_agents.deployment.plan import plan_deployment
from serverless_agents.exceptions import ManifestError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST, help="default: %(default)s")
    parser.add_argument("--refresh", action="store_true", help="run pip even when the cache is current")
    parser.add_argument(
        "--accept-metadata-changes",
        metavar="AGENT[,AGENT...]",
        help="deploy these agents' incompatible metadata changes: none of their tasks is in flight",
    )
    args = parser.parse_args(argv)
    try:
        plan = plan_deployment(args.manifest)
        check_and_lock(
            plan.manifest_path, metadata_schemas(plan.registry), accept=accepted(args.accept_metadata_changes)
        )
        for family in families(plan):
            print(f"bundle {build_bundle(family, plan, refresh=args.refresh).describe()}", flush=True)
    except (BundleError, ManifestError) as e:
        print(f"bundle.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
