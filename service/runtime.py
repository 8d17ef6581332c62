"""Which runtime and precision serve the model (``MODEL_RUNTIME``, ``MODEL_DTYPE``, the host CPU).

``plan`` decides the order of candidates; ``service.model`` builds each and lets the accuracy gate
(``service.precision_gate``) accept or reject it:

- ``MODEL_RUNTIME=auto``: OpenVINO when the ``openvino`` package imports, else PyTorch.
- ``MODEL_DTYPE=auto``: int8 (OpenVINO only, where the CPU has VNNI or AMX-INT8), then bfloat16 (where
  it has AVX512-BF16 or AMX-BF16), then float32; the first that passes the gate serves.
- An explicit ``MODEL_DTYPE`` is the only candidate: float32 serves as is, a reduced precision that
  fails the gate stops the start-up (``PrecisionRejected``).

- ``MODEL_TARGET_CPU=<tier>`` (``service.hostcpu.TIERS``) plans for a CPU of that tier instead of the
  host's, for compiling an archive on a machine other than the nodes (``python -m service --compile``).

``MODEL_RUNTIME=torch MODEL_DTYPE=float32`` is PyTorch's float32 path with no gate and no calibration.
Measured speeds of each combination: docs/performance.md ("Runtimes and precisions").
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from service.errors import ModelLoadError
from service.hostcpu import CpuFeatures

TORCH, OPENVINO = "torch", "openvino"
FLOAT32, BFLOAT16, INT8 = "float32", "bfloat16", "int8"


@dataclass(frozen=True)
class Plan:
    """``runtime`` (torch | openvino) and the ``candidates`` precisions to try in order; ``explicit``:
    the precision was asked for (a gate failure is fatal); ``reason``: one phrase for the log."""

    runtime: str
    candidates: tuple[str, ...]
    explicit: bool
    reason: str


def openvino_available() -> bool:
    """True when the ``openvino`` package is installed (it is imported only if it serves)."""
    return importlib.util.find_spec("openvino") is not None


def plan(runtime: str, dtype: str, cpu: CpuFeatures, have_openvino: bool,
         host: CpuFeatures | None = None) -> Plan:
    """The runtime and precision order for ``MODEL_RUNTIME`` / ``MODEL_DTYPE`` values on ``cpu``.

    ``host``: the CPU that builds and measures the candidates when ``cpu`` is another one (a
    ``MODEL_TARGET_CPU`` tier, e.g. an image built on an AVX2 runner for AMX nodes); None: ``cpu`` itself.
    int8 is quantized and gated on any x86 host (slower without VNNI), but bfloat16 is only a compile hint
    that a host without AVX512-BF16 / AMX-BF16 ignores: its gate would compare float32 with float32, so
    bfloat16 is then left out of ``auto``'s candidates (the reason says so) and refused when explicit.
    Raises ``ModelLoadError`` for ``MODEL_RUNTIME=openvino`` without the package, for int8 on the
    PyTorch runtime (it serves int8 only from an already quantized TorchScript file), and for that
    explicit bfloat16.
    """
    if runtime == OPENVINO and not have_openvino:
        raise ModelLoadError("MODEL_RUNTIME=openvino: the openvino package is not installed "
                             "(pip install -r service/requirements.txt)")
    chosen = runtime if runtime != "auto" else (OPENVINO if have_openvino else TORCH)
    why = f"MODEL_RUNTIME={runtime}" + ("" if runtime != "auto" else f" -> {chosen}")
    unmeasurable = host is not None and cpu.fast_bfloat16 and not host.fast_bfloat16
    if dtype != "auto":
        if dtype == INT8 and chosen == TORCH:
            raise ModelLoadError("MODEL_DTYPE=int8 needs MODEL_RUNTIME=openvino (or auto with openvino "
                                 "installed)")
        if dtype == BFLOAT16 and unmeasurable:
            raise ModelLoadError(f"MODEL_DTYPE=bfloat16 for a {cpu.tier} target: this host "
                                 f"({host.describe()}) has no bfloat16 hardware to measure it on; compile on "
                                 "one that has, or use MODEL_DTYPE=auto")
        return Plan(chosen, (dtype,), dtype != FLOAT32, f"{why}, MODEL_DTYPE={dtype}")
    candidates = []
    if chosen == OPENVINO and cpu.fast_int8:
        candidates.append(INT8)
    if cpu.fast_bfloat16 and not unmeasurable:
        candidates.append(BFLOAT16)
    candidates.append(FLOAT32)
    where = f"on a {cpu.tier} CPU" if host is None else f"for a {cpu.tier} target (MODEL_TARGET_CPU)"
    skipped = "" if not unmeasurable else (f"; bfloat16 skipped: this host ({host.tier}) has no AVX512-BF16 "
                                           "or AMX-BF16, its gate would measure float32")
    return Plan(chosen, tuple(candidates), False,
                f"{why}, MODEL_DTYPE=auto {where} -> try {' then '.join(candidates)}{skipped}")
