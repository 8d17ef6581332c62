"""Runtimes and precisions side by side, model alone: ``python -m bench.runtimes [--arch resnet50]``.

Each variant runs in its own subprocess, one after the other (no two share the CPUs, none inherits
another's thread pools), on the same seeded torchvision model and the same preprocessed photos:

- ``service:<runtime>:<dtype>``: the service's own ``ImageClassifier.predict`` (what the batcher calls:
  normalised batch in, softmax out) with ``MODEL_RUNTIME`` / ``MODEL_DTYPE`` set; its accuracy gate runs
  (a random-weight model makes its numbers weak: see ``distinct_float32_classes``);
- ``openvino-throughput:int8``: NNCF int8 compiled with OpenVINO's ``THROUGHPUT`` hint and fed by an
  ``AsyncInferQueue`` (all streams busy): the CPU's limit for this model;
- ``aoti:float32``: ``torch.export`` + AOTInductor package (``torch._inductor.aoti_compile_and_package``);
- ``pt2e:int8``: PT2E post-training quantization with torchao's ``X86InductorQuantizer``, then
  ``torch.compile`` (Inductor) with freezing, the route PyTorch documents for x86 int8.

img/s is ``batch / median call time`` over ``--seconds`` s after 2 warm-up calls; ``build_s`` is the time
to load, convert, quantize and compile (the start-up cost each variant adds). A variant that fails or
runs past ``--timeout`` reports its error instead. Prints a Markdown table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

VARIANTS = ("service:torch:float32", "service:torch:bfloat16", "service:openvino:float32",
            "service:openvino:bfloat16", "service:openvino:int8", "openvino-throughput:int8",
            "aoti:float32", "pt2e:int8")


def _timed(call, batch, seconds: float) -> float:
    """Median seconds of ``call(batch)`` over ``seconds`` s (at least 3 calls, after 2 warm-ups)."""
    import torch

    with torch.inference_mode():
        for _ in range(2):
            call(batch)
        durations, start = [], time.perf_counter()
        while len(durations) < 3 or time.perf_counter() - start < seconds:
            t0 = time.perf_counter()
            call(batch)
            durations.append(time.perf_counter() - t0)
    return statistics.median(durations)


def _service(runtime: str, dtype: str, model: Path, labels: Path, images, args) -> tuple:
    from service.model import ImageClassifier
    from service.settings import Settings

    settings = Settings(model_path=model, model_labels=labels, model_runtime=runtime, model_dtype=dtype,
                        torch_threads=args.threads, gate_min_confident=0.0, gate_min_overall=0.0)
    classifier = ImageClassifier(settings)
    classifier.load()
    return classifier.predict, {"gate": classifier.gate_report.get("candidates")}


def _openvino_throughput(model: Path, images, args):
    """(img/s over ``seconds`` with every stream busy, extras)."""
    import openvino as ov

    from service import openvino_backend as ovb
    from service.loaders import load_file

    loaded = load_file(model, "resnet50")
    quantized = ovb.quantize(ovb.convert(loaded.program or loaded.module, 224), images[:32])
    compiled = ov.Core().compile_model(quantized, "CPU", {"PERFORMANCE_HINT": "THROUGHPUT",
                                                          "INFERENCE_NUM_THREADS": args.threads})
    queue = ov.AsyncInferQueue(compiled)
    batch = images[:args.batch].contiguous().numpy()
    done = [0]
    queue.set_callback(lambda *_: done.__setitem__(0, done[0] + 1))
    for _ in range(2 * len(queue)):
        queue.start_async({0: batch})
    queue.wait_all()
    done[0], start = 0, time.perf_counter()
    while time.perf_counter() - start < args.seconds:
        queue.start_async({0: batch})
    queue.wait_all()
    elapsed = time.perf_counter() - start
    return done[0] * args.batch / elapsed, {"streams": len(queue)}


def _aoti(pt2: Path, images, args):
    import torch

    program = torch.export.load(str(pt2))
    package_path = str(pt2.with_suffix(".aoti.pt2"))
    package = torch._inductor.aoti_compile_and_package(program, package_path=package_path)
    return torch._inductor.aoti_load_package(package), {}


def _pt2e(pt2: Path, images, args):
    import torch
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as xiq
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    program = torch.export.load(str(pt2))
    quantizer = xiq.X86InductorQuantizer().set_global(xiq.get_default_x86_inductor_quantization_config())
    prepared = prepare_pt2e(program.module(), quantizer)
    with torch.no_grad():
        for chunk in images[:32].split(8):
            prepared(chunk)
    converted = convert_pt2e(prepared)
    torch._inductor.config.freezing = True
    return torch.compile(converted), {}


def run_variant(name: str, args) -> dict:
    """Build and time one variant in this process; returns its JSON row."""
    import torch

    from bench import assets, model_alone

    torch.set_num_threads(args.threads)
    cache = Path(args.cache)
    model, labels = assets.ensure_model(args.arch, cache / "models")
    pt2 = cache / "models" / f"{args.arch}.pt2"
    if not pt2.exists():
        from tools.make_model import build_model, save_model

        save_model(build_model(args.arch), pt2, "export")
    images = model_alone.photo_tensor(assets.write_photos(cache / "photos"))
    images = images[torch.arange(max(32, args.batch)) % images.shape[0]].contiguous()
    started = time.perf_counter()
    kind, _, dtype = name.partition(":")
    extras: dict = {}
    if kind.startswith("service"):
        runtime, _, dtype = dtype.partition(":")
        call, extras = _service(runtime, dtype, model, labels, images, args)
    elif kind == "openvino-throughput":
        img_per_s, extras = _openvino_throughput(model, images, args)
        return {"variant": name, "img_per_s": round(img_per_s, 1), "build_s": None, **extras}
    elif kind == "aoti":
        call, extras = _aoti(pt2, images, args)
    else:
        call, extras = _pt2e(pt2, images, args)
    build_s = time.perf_counter() - started
    row = {"variant": name, "build_s": round(build_s, 1)}
    for size in sorted({1, args.batch}):
        seconds = _timed(call, images[:size].contiguous(), args.seconds)
        row[f"b{size}_img_per_s"] = round(size / seconds, 1)
        row[f"b{size}_ms"] = round(seconds * 1000, 2)
    row["img_per_s"] = row[f"b{args.batch}_img_per_s"]
    return {**row, **extras}


def main(argv: list[str] | None = None) -> int:
    """Run every variant in a subprocess; print the table; return 0 when all produced numbers."""
    p = argparse.ArgumentParser(prog="python -m bench.runtimes", description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="resnet50")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--seconds", type=float, default=5.0, help="timed seconds per batch size")
    p.add_argument("--timeout", type=float, default=900, help="seconds per variant, build included")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--cache", default=str(Path(__file__).resolve().parent.parent / "build" / "bench"))
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "runtimes.json")
    p.add_argument("--variant", help=argparse.SUPPRESS)  # child mode: one variant, JSON on stdout
    args = p.parse_args(argv)
    if args.variant:
        print("RESULT " + json.dumps(run_variant(args.variant, args)))
        return 0
    rows = []
    for name in args.variants:
        command = [sys.executable, "-m", "bench.runtimes", "--variant", name, *(argv or sys.argv[1:])]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout, check=False)
            lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
            row = json.loads(lines[-1][7:]) if lines else {
                "variant": name, "error": (done.stderr.strip().splitlines() or ["no output"])[-1][:300]}
        except subprocess.TimeoutExpired:
            row = {"variant": name, "error": f"over --timeout {args.timeout:g} s"}
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    print(table(rows, args.batch))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"arch": args.arch, "batch": args.batch, "threads": args.threads,
                                    "rows": rows}, indent=2))
    return 0 if all("error" not in row for row in rows) else 1


def table(rows: list[dict], batch: int) -> str:
    """Markdown table: variant, img/s at ``batch``, ms at batch 1, build s, and each row / the best."""
    best = max((row["img_per_s"] for row in rows if "img_per_s" in row), default=0) or 1
    lines = [f"| variant | img/s (batch {batch}) | ms (batch 1) | build s | / best |",
             "|---|---:|---:|---:|---:|"]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['variant']} | error: {row['error']} | | | |")
            continue
        lines.append(f"| {row['variant']} | {row['img_per_s']:.1f} | {row.get('b1_ms', '–')} | "
                     f"{row.get('build_s') or '–'} | {row['img_per_s'] / best:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
