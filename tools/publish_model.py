"""Publish a model version to the stack's model repository (Azure Blob Storage) and print the rollout.

    python -m tools.publish_model --stack dev --file model.pt --labels labels.txt --name resnet --version 2

uploads `model.pt` and `labels.txt` to `<container URL>/resnet/2/`, refusing to overwrite an existing
version, and prints the `pulumi config set` lines (modelUri, modelLabelsUri, modelSha256, modelVersion)
that roll it out with `pulumi up`. `--show` uploads nothing and prints the same lines for a version already
published (read from the blobs' `sha256` and `role` metadata): rolling back is `--show` of the old version.

Where to upload (one of):
- `--stack dev`: reads the stack output `model_repository_url` with `pulumi stack output` (needs the
  Pulumi CLI, logged in to the stack's backend);
- `--account-url https://<account>.blob.core.windows.net` with `--container` (default `models`);
- `--connection-string` (or `AZURE_STORAGE_CONNECTION_STRING`): an emulator such as Azurite, with
  `--container`.
Authentication with `--stack` or `--account-url`: `DefaultAzureCredential` (`az login`; in CI the pipeline's
identity); the stack grants its `modelPublishers` Storage Blob Data Contributor on the container.

The refusal is atomic: each blob is written with `If-None-Match: *` (`overwrite=False`), so two
publishers of the same version cannot both succeed; the model file is written last, so a version whose
model exists is complete. Exit status: 0 published, 1 the version exists, 2 usage or upload error.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from azure.core.exceptions import AzureError, ResourceExistsError
from azure.storage.blob import ContainerClient

from service.hostcpu import TIERS
from service.model_repository import sha256_file

STACK_OUTPUT = "model_repository_url"
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class PublishError(Exception):
    """Publishing failed; `exit_status` is what `main` returns."""

    exit_status = 2


class VersionExists(PublishError):
    """`<name>/<version>/` already holds blobs: versions are immutable."""

    exit_status = 1


def stack_container_url(stack: str) -> str:
    """`pulumi stack output model_repository_url --stack <stack>`; raises `PublishError` without the CLI."""
    pulumi = shutil.which("pulumi")
    if pulumi is None:
        raise PublishError("--stack needs the Pulumi CLI; pass --account-url (the stack output "
                           "model_storage_account_url) or --connection-string instead")
    result = subprocess.run([pulumi, "stack", "output", STACK_OUTPUT, "--stack", stack],
                            capture_output=True, text=True, check=False)
    url = result.stdout.strip()
    if result.returncode != 0 or not url:
        raise PublishError(f"stack {stack} has no output {STACK_OUTPUT} (modelRepository off, or not yet "
                           f"deployed): {result.stderr.strip()[:300]}")
    return url


def container_client(args: argparse.Namespace) -> ContainerClient:
    """The models container named by `--stack`, `--account-url` + `--container`, or a connection string."""
    connection_string = args.connection_string or os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
    if connection_string and not (args.account_url or args.stack):
        return ContainerClient.from_connection_string(connection_string, args.container)
    from azure.identity import DefaultAzureCredential

    if args.account_url:
        return ContainerClient(args.account_url, args.container, credential=DefaultAzureCredential())
    return ContainerClient.from_container_url(stack_container_url(args.stack),
                                              credential=DefaultAzureCredential())


def _progress(label: str, total: int):
    """An upload `progress_hook(current, total)` drawing a tqdm bar on stderr; returns (hook, close)."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=label, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
               disable=None)  # None: no bar when stderr is not a terminal

    def hook(current: int, _total: int | None) -> None:
        bar.update(current - bar.n)

    return hook, bar.close


def upload(container: ContainerClient, blob: str, path: Path, sha256: str, role: str = "model") -> None:
    """Upload `path` to `blob` unless it exists (`If-None-Match: *`), with metadata `sha256` (hex) and
    `role` (`model` or `labels`); raises `VersionExists`."""
    hook, close = _progress(blob, path.stat().st_size)
    try:
        with path.open("rb") as data:
            container.upload_blob(blob, data, overwrite=False, metadata={"sha256": sha256, "role": role},
                                  progress_hook=hook, max_concurrency=4)
    except ResourceExistsError:
        raise VersionExists(f"{container.url}/{blob} already exists: versions are immutable, publish "
                            "a new --version") from None
    finally:
        close()


def publish(container: ContainerClient, model: Path, labels: Path | None, name: str,
            version: str, compiled: Path | None = None, report: Path | None = None) -> dict[str, str]:
    """Upload a version; return the config to roll it out (`modelUri`, `modelSha256`, ...).

    With `compiled` (an OpenVINO archive of `model`, `tools.compile_model`) and its `report` (JSON), the
    source model is stored as role `source`, the report as `report`, and the archive is the version's
    `model` (written last): pods load it without converting or re-quantizing.
    Raises `VersionExists` if any blob is already under `<name>/<version>/`, `PublishError` otherwise.
    """
    prefix = f"{name}/{version}/"
    try:
        if not container.exists():
            raise PublishError(f"container {container.url} does not exist (deploy the stack first)")
        existing = [blob.name for blob in container.list_blobs(name_starts_with=prefix)]
        if existing:
            raise VersionExists(f"{container.url}/{prefix} already holds {', '.join(existing)}: versions "
                                "are immutable, publish a new --version")
        served = compiled or model
        digest = sha256_file(served)
        config = {"modelUri": f"{container.url}/{prefix}{served.name}", "modelSha256": digest,
                  "modelVersion": version}
        if labels is not None:  # labels first: the model blob, written last, marks a complete version
            upload(container, prefix + labels.name, labels, sha256_file(labels), role="labels")
            config["modelLabelsUri"] = f"{container.url}/{prefix}{labels.name}"
        if compiled is not None:
            upload(container, prefix + model.name, model, sha256_file(model), role="source")
            if report is not None:
                upload(container, prefix + report.name, report, sha256_file(report), role="report")
        upload(container, prefix + served.name, served, digest)
    except AzureError as exc:
        raise PublishError(f"upload to {container.url} failed: {str(exc).strip().splitlines()[0]}") from None
    return config


def show(container: ContainerClient, name: str, version: str) -> dict[str, str]:
    """The rollout config of a published version, from its blobs' metadata. Raises `PublishError`."""
    prefix = f"{name}/{version}/"
    try:
        blobs = {b.metadata.get("role"): b for b in container.list_blobs(name_starts_with=prefix,
                                                                           include=["metadata"])}
    except AzureError as exc:
        raise PublishError(f"cannot list {container.url}: {str(exc).strip().splitlines()[0]}") from None
    model = blobs.get("model")
    if model is None or "sha256" not in model.metadata:
        raise PublishError(f"{container.url}/{prefix} holds no model published by tools.publish_model")
    config = {"modelUri": f"{container.url}/{model.name}", "modelSha256": model.metadata["sha256"],
              "modelVersion": version}
    if "labels" in blobs:
        config["modelLabelsUri"] = f"{container.url}/{blobs['labels'].name}"
    return config


def _compile_and_publish(container: ContainerClient, args: argparse.Namespace) -> dict[str, str]:
    """`tools.compile_model` into a temporary folder, then `publish` with the archive and its report."""
    import json
    import tempfile

    from pydantic import ValidationError

    from service.errors import ModelLoadError
    from service.settings import describe_error
    from tools.compile_model import compile_file

    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / f"{args.file.stem}.openvino.zip"
        try:
            report = compile_file(args.file, archive, args.labels, calibration=args.calibration,
                                  calibration_uri=args.calibration_uri, target_cpu=args.target_cpu)
        except ModelLoadError as exc:
            raise PublishError(f"--compile: {exc}") from None
        except ValidationError as exc:
            raise PublishError(f"--compile: {describe_error(exc)}") from None
        report_file = Path(tmp) / f"{args.file.stem}.calibration.json"
        report_file.write_text(json.dumps(report, indent=2, sort_keys=True))
        print(f"compiled {args.file.name}: {report['serving']} ({report['plan']})", file=sys.stderr)
        return publish(container, args.file, args.labels, args.name, args.version, archive, report_file)


def config_lines(config: dict[str, str], stack: str | None) -> list[str]:
    """`pulumi config set [--stack S] <key> <value>` for each key, then `pulumi up`."""
    flag = f" --stack {stack}" if stack else ""
    return [f"pulumi config set{flag} {key} {value}" for key, value in config.items()] + [f"pulumi up{flag}"]


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, publish, print the rollout commands. Returns the exit status (see module doc)."""
    parser = argparse.ArgumentParser(prog="python -m tools.publish_model", description=__doc__.split("\n")[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--stack", help=f"read the container URL from this stack's output {STACK_OUTPUT}")
    where.add_argument("--account-url", help="https://<account>.blob.core.windows.net (with --container)")
    parser.add_argument("--connection-string", help="storage connection string (default: "
                        "$AZURE_STORAGE_CONNECTION_STRING), e.g. Azurite's")
    parser.add_argument("--container", default="models", help="with --account-url or --connection-string "
                        "(default: models)")
    parser.add_argument("--file", type=Path, help="model file (TorchScript, .pt2, state_dict)")
    parser.add_argument("--show", action="store_true",
                        help="upload nothing: print the rollout lines of the published --version (roll back)")
    parser.add_argument("--labels", type=Path, help="labels file, one per line")
    parser.add_argument("--compile", action="store_true",
                        help="also compile --file for OpenVINO (tools.compile_model: int8 / bfloat16 via the "
                        "accuracy gate) and publish that archive, with its calibration report, as the model")
    calibration = parser.add_mutually_exclusive_group()
    calibration.add_argument("--calibration", type=Path, help="with --compile: calibration images folder "
                             "(default: the service's bundled photos)")
    calibration.add_argument("--calibration-uri", help="with --compile: Blob prefix of calibration images "
                             "(read like MODEL_URI: the connection string or DefaultAzureCredential)")
    parser.add_argument("--target-cpu", default="host", choices=("host", *TIERS),
                        help="with --compile: plan the precisions for pods on this CPU tier (default: this "
                        "machine's; docs/performance.md)")
    parser.add_argument("--name", required=True, help="model name (first path segment)")
    parser.add_argument("--version", required=True, help="version (second path segment), e.g. 2")
    args = parser.parse_args(argv)
    for option in ("name", "version"):
        if not _SEGMENT.match(getattr(args, option)):
            parser.error(f"--{option} must be letters, digits, '.', '_' or '-'")
    if not args.show and args.file is None:
        parser.error("--file is required (or --show for a published version)")
    for path in (args.file, args.labels):
        if path is not None and not path.is_file():
            parser.error(f"{path}: no such file")
    if not (args.stack or args.account_url or args.connection_string
            or os.environ.get("AZURE_STORAGE_CONNECTION_STRING")):
        parser.error("say where to publish: --stack, --account-url or --connection-string")
    try:
        with container_client(args) as container:
            if args.show:
                config = show(container, args.name, args.version)
            elif args.compile:
                config = _compile_and_publish(container, args)
            else:
                config = publish(container, args.file, args.labels, args.name, args.version)
    except PublishError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_status
    done = "published" if not args.show else "found"
    print(f"{done} {args.name} version {args.version} (sha256 {config['modelSha256']}); roll it out with:",
          file=sys.stderr)
    print("\n".join(config_lines(config, args.stack)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
