"""Render the Kubernetes objects a stack would apply, one YAML file per object.

    python -m tools.render_manifests --stack dev --out build/manifests/dev

Runs the Pulumi program in-process under mocks (`tests.harness.stack_mocks`) with the stack's own
`Pulumi.<stack>.yaml`, so no Pulumi CLI, cloud account or cluster is needed. Values only the cloud
knows are replaced by plausible stand-ins: the image becomes
`<registry>.azurecr.io/<repository>:<stack>@sha256:<64 hex>`, the registry `aic<stack>x7k2p9`.
Files are named `NN-<kind>-<name>.yaml` in apply order. Exit status 2 on a config error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def render(stack: str, out: Path, root: Path = ROOT) -> list[Path]:
    """Write the stack's Kubernetes objects into `out` (emptied of old *.yaml first); return the paths."""
    from tests.harness.stack_mocks import kubernetes_objects, run_program, stack_file_config

    run = run_program(stack_file_config(stack, root), stack)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.yaml"):
        old.unlink()
    paths = []
    for index, obj in enumerate(kubernetes_objects(run), start=1):
        path = out / f"{index:02d}-{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"
        path.write_text(yaml.safe_dump(obj, sort_keys=False))
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default="dev", help="stack name: reads Pulumi.<stack>.yaml (default dev)")
    parser.add_argument(
        "--out", type=Path, default=None, help="output folder (default build/manifests/<stack>)"
    )
    args = parser.parse_args(argv)
    from stacks.config import ConfigError

    out = args.out or ROOT / "build" / "manifests" / args.stack
    try:
        paths = render(args.stack, out)
    except (ConfigError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
