"""The OpenVINO runtime: convert a PyTorch model, quantize it to int8 (NNCF), compile it for the CPU.

``convert`` takes what ``service.loaders`` loaded (an eager module, a TorchScript module or the module
of a ``torch.export`` program) and gives an ``openvino.Model`` with a dynamic batch ``[-1, 3, H, W]``.
``quantize`` is NNCF post-training quantization (8-bit weights and activations, per-channel weights,
``PERFORMANCE`` preset, fast bias correction) calibrated on ``[N, 3, H, W]`` images. ``compile`` returns
an ``OpenVINOModel``: a callable from a float32 batch to logits, like the PyTorch module it replaces.
``write_archive`` / ``read_archive`` store a converted (maybe quantized) model as one zip: the IR
(``model.xml`` + ``model.bin``) and its ``report.json`` (precision, gate result, versions).
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import torch

from service.errors import ModelLoadError

#: ``INFERENCE_PRECISION_HINT`` per precision. int8 leaves it unset: OpenVINO then runs the layers it
#: does not quantize in bf16 on AMX/AVX512-BF16 CPUs, f32 elsewhere (OpenVINO CPU plugin docs).
PRECISION_HINTS = {"float32": "f32", "bfloat16": "bf16", "int8": None}

#: Archive member names (``detect_format`` recognises the zip by ``ARCHIVE_XML``).
ARCHIVE_XML, ARCHIVE_BIN, ARCHIVE_REPORT = "openvino/model.xml", "openvino/model.bin", "openvino/report.json"


class OpenVINOModel:
    """A compiled OpenVINO model: float32 ``[N, 3, H, W]`` (any memory format) -> logits ``[N, C]``.

    Two compilations of one model: ``latency`` (one stream on all threads) answers a single image;
    ``throughput`` (OpenVINO's ``THROUGHPUT`` hint: one stream per thread group, ``streams`` of them)
    takes a batch split into ``streams`` parts run at once. On 2 vCPUs int8 ResNet-50 measured about
    2x the images per second with both streams busy than one stream on both threads
    (docs/performance.md). ``precision`` is what it was built for; ``model`` the ``openvino.Model``
    (for ``write_archive``). Calls must come from one thread at a time (the batcher's model thread).
    """

    def __init__(self, latency, throughput, model, precision: str) -> None:
        import openvino as ov

        self.model, self.precision = model, precision
        self._request = latency.create_infer_request()
        self._queue = ov.AsyncInferQueue(throughput) if throughput is not None else None
        self.streams = len(self._queue) if self._queue is not None else 1
        self._results: list = []
        if self._queue is not None:
            self._queue.set_callback(self._done)

    def _done(self, request, index: int) -> None:
        self._results[index] = request.get_output_tensor(0).data.copy()

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        array = batch.detach().float().contiguous().numpy()  # NCHW, as the IR's input says
        if self._queue is None or array.shape[0] < 2:
            self._request.infer({0: array}, share_inputs=True)
            return torch.from_numpy(self._request.get_output_tensor(0).data.copy())
        parts = np.array_split(array, min(self.streams, array.shape[0]))
        self._results = [None] * len(parts)
        for index, part in enumerate(parts):
            self._queue.start_async({0: part}, index)
        self._queue.wait_all()
        return torch.from_numpy(np.concatenate(self._results))

    def eval(self) -> OpenVINOModel:
        """For symmetry with ``torch.nn.Module`` (nothing to switch)."""
        return self


def convert(module, crop: int):
    """``module`` (``torch.nn.Module``, ``ScriptModule`` or ``torch.export.ExportedProgram``) ->
    ``openvino.Model`` taking ``[-1, 3, crop, crop]`` float32. Raises ``ModelLoadError`` when OpenVINO
    cannot convert it."""
    import openvino as ov

    example = None if isinstance(module, torch.export.ExportedProgram) else torch.zeros(2, 3, crop, crop)
    try:
        with torch.no_grad():
            model = ov.convert_model(module, example_input=example)
        model.reshape({model.inputs[0]: ov.PartialShape([-1, 3, crop, crop])})
    except Exception as exc:
        raise ModelLoadError(f"MODEL_RUNTIME=openvino: cannot convert the model: "
                             f"{str(exc).strip().splitlines()[0][:300]}") from None
    return model


def quantize(model, calibration: torch.Tensor):
    """NNCF 8-bit post-training quantization of ``model`` on ``calibration`` ``[N, 3, H, W]`` (one
    image per step, all N used)."""
    import nncf

    samples = [image.unsqueeze(0).contiguous().numpy() for image in calibration]
    return nncf.quantize(model, nncf.Dataset(samples), subset_size=len(samples),
                         preset=nncf.QuantizationPreset.PERFORMANCE, fast_bias_correction=True)


def compile_model(model, precision: str, threads: int) -> OpenVINOModel:
    """Compile ``model`` for the CPU with ``threads`` inference threads and ``precision``'s hint: a
    ``LATENCY`` compilation (one stream) and, with 2 or more threads, a ``THROUGHPUT`` one."""
    import openvino as ov

    core, hint = ov.Core(), {"INFERENCE_NUM_THREADS": threads}
    if PRECISION_HINTS[precision]:
        hint["INFERENCE_PRECISION_HINT"] = PRECISION_HINTS[precision]
    latency = core.compile_model(model, "CPU", {**hint, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1})
    throughput = core.compile_model(model, "CPU", {**hint, "PERFORMANCE_HINT": "THROUGHPUT"}) \
        if threads > 1 else None
    return OpenVINOModel(latency, throughput, model, precision)


def write_archive(path: Path, model, report: dict) -> Path:
    """Write ``model`` (IR) and ``report`` (JSON) into the zip ``path``; returns ``path``."""
    import tempfile

    import openvino as ov

    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "model.xml"
        ov.save_model(model, str(xml), compress_to_fp16=False)
        path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
            archive.write(xml, ARCHIVE_XML)
            archive.write(xml.with_suffix(".bin"), ARCHIVE_BIN)
            archive.writestr(ARCHIVE_REPORT, json.dumps(report, indent=2, sort_keys=True))
    return path


def read_archive(path: Path):
    """``(openvino.Model, report dict)`` from an archive made by ``write_archive``. Raises
    ``ModelLoadError``."""
    import openvino as ov

    try:
        with zipfile.ZipFile(path) as archive:
            xml, weights = archive.read(ARCHIVE_XML), archive.read(ARCHIVE_BIN)
            report = json.loads(archive.read(ARCHIVE_REPORT))
        model = ov.Core().read_model(io.BytesIO(xml).getvalue().decode(),
                                     ov.Tensor(np.frombuffer(weights, dtype=np.uint8).copy()))
    except (KeyError, zipfile.BadZipFile, json.JSONDecodeError, RuntimeError, OSError) as exc:
        raise ModelLoadError(f"MODEL_PATH={path}: not a readable OpenVINO archive: "
                             f"{str(exc).strip().splitlines()[0][:300]}") from None
    return model, report
