"""``python -m bench.compiled_startup``: start-up time to ``/readyz``, model file vs its compiled archive.

The same seeded random-weight model is started two ways, alternating: ``MODEL_PATH=<model.pt>`` with the
defaults (``MODEL_RUNTIME=auto``, ``MODEL_DTYPE=auto``: OpenVINO conversion, NNCF int8 calibration and the
accuracy gate at every start) and ``MODEL_PATH=<archive>`` written once by ``tools.compile_model`` (the IR
read and compiled, nothing else). A random-weight model's answers do not depend on the photo, so the
gate's thresholds are set to 0 here: the gate still runs, its verdict means nothing. Prints one line per
run and the median of each.

Usage: ``python -m bench.compiled_startup --arch resnet50 --runs 2``
"""

from __future__ import annotations

import argparse
import statistics
import sys

from bench.model_startup import CACHE, model_file, photo_jpeg, time_to_ready

NO_GATE = {"GATE_MIN_CONFIDENT": "0", "GATE_MIN_OVERALL": "0"}


def main(argv: list[str] | None = None) -> int:
    """Compile once, then time both ways ``--runs`` times each. Returns 0."""
    parser = argparse.ArgumentParser(prog="python -m bench.compiled_startup",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--arch", default="resnet50")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--torch-threads", default="2")
    args = parser.parse_args(argv)
    from tools.compile_model import compile_file

    source = model_file(args.arch)
    archive = CACHE / f"{args.arch}.openvino.zip"
    report = compile_file(source, archive, gate_min_confident=0.0, gate_min_overall=0.0)
    print(f"archive {archive.name}: {report['serving']}, {archive.stat().st_size / 2**20:.1f} MiB")
    times: dict[str, list[float]] = {"file": [], "archive": []}
    base = {"TORCH_THREADS": args.torch_threads, "MODEL_RUNTIME": "auto", "MODEL_DTYPE": "auto", **NO_GATE}
    photo = photo_jpeg()
    for run in range(args.runs):
        for name, path in (("file", source), ("archive", archive)):
            start = time_to_ready({**base, "MODEL_PATH": str(path)}, photo, timeout_s=900)
            times[name].append(start.ready_s)
            print(f"run {run + 1} {name}: {start.ready_s:.1f} s to /readyz ({start.cpu_s:.1f} CPU s), first "
                  f"request {1000 * start.first_predict_s:.0f} ms", flush=True)
    for name, values in times.items():
        print(f"{name}: median {statistics.median(values):.1f} s (n={len(values)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
