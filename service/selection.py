"""Build the serving model by the ``service.runtime`` plan: each candidate precision in turn, through the
accuracy gate (``service.precision_gate``) against float32 on held-out images, the first that passes.

The float32 reference is PyTorch's own float32 forward pass of the loaded model, on the held-out set
of ``service.calibration``; int8 is calibrated on the other, disjoint set.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from service import calibration, runtime
from service.loaders import LoadedModel
from service.precision_gate import Agreement, GateThresholds, PrecisionRejected, agreement
from service.preprocess import Preprocessor
from service.settings import Settings

logger = logging.getLogger("service")


@dataclass
class Selected:
    """The serving ``module`` (float32 ``[N, 3, H, W]`` -> logits), its ``runtime`` and ``precision``;
    ``report``: what the gate measured (for the log and the compiled artifact's report.json)."""

    module: Callable[[torch.Tensor], torch.Tensor]
    runtime: str
    precision: str
    report: dict = field(default_factory=dict)


def thresholds(settings: Settings) -> GateThresholds:
    """``GATE_MARGIN`` / ``GATE_MIN_CONFIDENT`` / ``GATE_MIN_OVERALL``."""
    return GateThresholds(settings.gate_margin, settings.gate_min_confident, settings.gate_min_overall)


def probabilities(module: Callable, images: torch.Tensor, batch: int = 8) -> torch.Tensor:
    """Softmax of ``module`` on ``images`` ``[N, 3, H, W]`` in chunks of ``batch`` -> ``[N, C]`` float32."""
    with torch.inference_mode():
        rows = []
        for chunk in images.split(batch):
            out = module(chunk)
            rows.append(torch.softmax((out[0] if isinstance(out, (tuple, list)) else out).float(), 1))
    return torch.cat(rows)


def select(settings: Settings, plan: runtime.Plan, load_model: Callable[[], LoadedModel],
           preprocessor: Preprocessor,
           build_torch: Callable[[torch.nn.Module, str], Callable]) -> Selected:
    """Try ``plan.candidates`` in order; return the first one the gate passes (float32 always does).

    ``load_model()`` gives a freshly loaded float32 PyTorch model each call; ``build_torch(module,
    precision)`` makes the PyTorch runtime's serving module. Raises ``PrecisionRejected`` when an
    explicit precision fails, ``ModelLoadError`` for unreadable calibration images or a model OpenVINO
    cannot convert.
    """
    limits = thresholds(settings)
    started = time.perf_counter()
    images = calibration.from_settings(settings, preprocessor)
    loaded = load_model()
    reference = probabilities(loaded.module, images.held_out)
    report = {"plan": plan.reason, "thresholds": vars(limits), "calibration_source": images.source,
              "calibration_files": images.files, "calibration_images": int(images.calibration.shape[0]),
              "held_out_images": int(images.held_out.shape[0]), "candidates": []}
    converted = None
    for precision in plan.candidates:
        t0 = time.perf_counter()
        if plan.runtime == runtime.OPENVINO:
            from service import openvino_backend as ovb

            if converted is None:
                converted = ovb.convert(loaded.program or loaded.module, preprocessor.crop_size)
            model = ovb.quantize(converted, images.calibration) if precision == runtime.INT8 else converted
            module = ovb.compile_model(model, precision, settings.torch_threads)
        else:
            fresh = loaded.module if precision == runtime.FLOAT32 else load_model().module
            module = build_torch(fresh, precision)
        result = agreement(precision, reference, probabilities(module, images.held_out), limits.margin)
        passed = precision == runtime.FLOAT32 or result.passes(limits)
        report["candidates"].append({**result.to_dict(), "passed": passed,
                                     "build_s": round(time.perf_counter() - t0, 2)})
        _log(result, passed, limits)
        if passed:
            report["serving"] = precision
            report["select_s"] = round(time.perf_counter() - started, 2)
            return Selected(module, plan.runtime, precision, report)
        if plan.explicit:
            raise PrecisionRejected(
                f"MODEL_DTYPE={precision} fails the accuracy gate: {result.describe()}; needs >= "
                f"{100 * limits.min_confident:g} % on confident images (float32 lead >= {limits.margin:g}) "
                f"and >= {100 * limits.min_overall:g} % overall")
    raise AssertionError("float32 is always the last candidate")  # plan() guarantees it


def _log(result: Agreement, passed: bool, limits: GateThresholds) -> None:
    verdict = "passes" if passed else "fails"
    logger.log(logging.INFO if passed else logging.WARNING, "accuracy gate: %s -> %s (needs %g %% "
               "confident, %g %% overall)", result.describe(), verdict, 100 * limits.min_confident,
               100 * limits.min_overall)
