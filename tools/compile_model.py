"""Compile a model file into an OpenVINO archive the service loads without converting or re-quantizing.

    python -m tools.compile_model --file model.pt2 --labels labels.txt --out model.openvino.zip
        [--dtype auto|int8|bfloat16|float32] [--calibration photos/ | --calibration-uri <blob prefix>]
        [--target-cpu host|amx|avx512_vnni|avx512|avx2|baseline]

runs the service's own start-up choice through ``service.archive.compile_archive`` (the code behind
``python -m service --compile`` in the image build): conversion, NNCF int8 calibrated on ``--calibration``
(a folder), ``--calibration-uri`` (a Blob prefix, read like ``MODEL_URI``: ``AZURE_STORAGE_CONNECTION_STRING``
or ``DefaultAzureCredential``) or the bundled photos, the accuracy gate against float32 on held-out images,
fallback int8 -> bfloat16 -> float32, and writes what serves as one zip: the IR (``openvino/model.xml`` +
``.bin``) and ``openvino/report.json``. ``MODEL_PATH=<the zip>`` then starts in the time it takes to read and
compile the IR. Prints the report's summary and the archive's SHA-256 (``MODEL_SHA256`` for ``MODEL_URI``).
Exit status: 0 written, 2 an invalid setting, 3 the model did not load, 4-7 ``--calibration-uri`` could not
be fetched (as for ``MODEL_URI``), 9 an explicit ``--dtype`` failed the gate.

The candidates follow the CPU the pods run on: ``--target-cpu`` names its tier when this machine is another
one (bfloat16 is then measured only if this machine has bfloat16 hardware; docs/performance.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from service.model_repository import sha256_file

__all__ = ["compile_file", "main", "sha256_file"]


def compile_file(model: Path, out: Path, labels: Path | None = None, dtype: str = "auto",
                 calibration: Path | None = None, calibration_uri: str | None = None,
                 target_cpu: str = "host", **settings) -> dict:
    """Compile ``model`` into the archive ``out``; return its report (``report["archive_sha256"]`` added).

    ``settings``: further ``service.settings.Settings`` fields (e.g. ``crop_size``). Raises
    ``ModelLoadError`` (``PrecisionRejected`` for an explicit ``dtype`` that fails the gate, a
    ``ModelFetchError`` for ``calibration_uri``); ``pydantic.ValidationError`` for invalid settings.
    """
    from service.archive import compile_archive

    return compile_archive(compile_settings(model, labels, dtype, calibration, calibration_uri, target_cpu,
                                            **settings), out)


def compile_settings(model: Path, labels: Path | None = None, dtype: str = "auto",
                     calibration: Path | None = None, calibration_uri: str | None = None,
                     target_cpu: str = "host", **settings):
    """The ``service.settings.Settings`` that compile ``model`` on OpenVINO with these options. Raises
    ``pydantic.ValidationError`` for invalid ones."""
    from service.settings import Settings

    return Settings(model_path=model, model_labels=labels, model_runtime="openvino", model_dtype=dtype,
                    calibration_dir=calibration, calibration_uri=calibration_uri, model_target_cpu=target_cpu,
                    **settings)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, compile, print the summary. Returns the exit status (see module doc)."""
    from pydantic import ValidationError

    from service.archive import compile_and_print
    from service.hostcpu import TIERS
    from service.logs import configure_logging
    from service.settings import describe_error

    parser = argparse.ArgumentParser(prog="python -m tools.compile_model", description=__doc__.split("\n")[0])
    parser.add_argument("--file", type=Path, required=True, help="TorchScript, .pt2 or state_dict file")
    parser.add_argument("--labels", type=Path, help="labels file, one per line")
    parser.add_argument("--out", type=Path, required=True, help="archive to write (.zip)")
    parser.add_argument("--dtype", default="auto", choices=("auto", "int8", "bfloat16", "float32"))
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--calibration", type=Path, help="folder of images (default: the bundled photos)")
    source.add_argument("--calibration-uri", help="Blob prefix of images, e.g. "
                        "https://<account>.blob.core.windows.net/models/calibration/")
    parser.add_argument("--target-cpu", default="host", choices=("host", *TIERS),
                        help="plan the precisions for pods on this CPU tier (default: this machine's)")
    args = parser.parse_args(argv)
    configure_logging("info", "text")
    try:
        config = compile_settings(args.file, args.labels, args.dtype, args.calibration, args.calibration_uri,
                                  args.target_cpu)
    except ValidationError as exc:
        print(f"error: {describe_error(exc)}", file=sys.stderr)
        return 2
    return compile_and_print(config, args.out)


if __name__ == "__main__":
    sys.exit(main())
