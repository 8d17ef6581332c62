"""The model step of the request path: ``ImageClassifier`` loads / predicts / postprocesses, with a
``ready`` flag for probes. Its ``preprocessor`` (``service.preprocess``) is fixed at load time."""

from __future__ import annotations

import logging
import time

import torch
import torchvision

from service import hostcpu, loaders, runtime
from service.errors import ModelLoadError
from service.postprocess import Prediction, top_k
from service.preprocess import Preprocessor
from service.settings import Settings

logger = logging.getLogger("service")

#: V2 metadata ``platform`` per artifact format (Triton's name for TorchScript is ``pytorch_libtorch``).
PLATFORMS = {"torchscript": "pytorch_libtorch", "export": "pytorch_export", "state_dict": "pytorch_eager",
             "torchvision": "pytorch_eager", loaders.OPENVINO_ARCHIVE: "openvino"}


class ImageClassifier:
    """A torchvision-style classifier: normalised ``[N, 3, crop, crop]`` -> probabilities ``[N, C]``.

    ``load()`` reads the model (``MODEL_PATH`` file or torchvision ``MODEL_ARCH``/``MODEL_WEIGHTS``), the
    labels, fixes ``preprocessor`` (the weights' own transforms, or the settings), picks the runtime and
    precision (``service.runtime.plan`` on the host's ``service.hostcpu`` features, through the accuracy
    gate of ``service.selection``) and warms the model up; then ``ready`` is True. ``runtime`` /
    ``precision`` say what serves, ``gate_report`` what the gate measured. Raises ``ModelLoadError``
    (one line) on any failure, e.g. labels that do not match the output width; ``PrecisionRejected``
    when an explicit ``MODEL_DTYPE`` fails the gate.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.name = settings.resolved_model_name
        self.version = settings.model_version
        self.ready = False
        self.module: torch.nn.Module | None = None
        self.source_format = ""
        self.labels: list[str] = []
        self.batch_limit = settings.max_batch_size  # lowered to 1 for a model fixed to batch size 1
        self.preprocessor = Preprocessor.from_settings(settings)  # replaced by load() for torchvision weights
        self.dtype = torch.bfloat16 if settings.model_dtype == "bfloat16" else torch.float32
        self.memory_format = torch.channels_last if settings.channels_last else torch.contiguous_format
        self.cpu = hostcpu.detect()
        self.runtime, self.precision = runtime.TORCH, runtime.FLOAT32
        self.gate_report: dict = {}

    @property
    def num_classes(self) -> int:
        """Output width C (valid after ``load``)."""
        return len(self.labels)

    @property
    def crop_size(self) -> int:
        """Side (px) of the model's square input ``[N, 3, crop, crop]``."""
        return self.preprocessor.crop_size

    @property
    def platform(self) -> str:
        """Open Inference Protocol ``platform`` string for the loaded artifact."""
        return PLATFORMS.get(self.source_format, "pytorch")

    def load(self) -> None:
        """Load, check and warm up the model; sets ``ready``. Raises ``ModelLoadError``."""
        started = time.perf_counter()
        s = self.settings
        if s.model_path and loaders.detect_format(s.model_path) == loaders.OPENVINO_ARCHIVE:
            loaded = self._load_archive()
        else:
            loaded = self._read()
            plan = self._plan()
            logger.info("runtime plan: %s; host CPU %s", plan.reason, self.cpu.describe())
            self.module, self.source_format = loaded.module, loaded.source_format
            self.preprocessor = Preprocessor.from_settings(s, loaded.weights)
            if plan.runtime == runtime.TORCH and plan.candidates == (runtime.FLOAT32,):
                self.dtype = torch.float32
                self._optimize()  # PyTorch float32: no calibration, no gate
            else:
                self._select(plan)
        self._size_torch_threads()
        width = self._output_width()
        self.labels = self._load_labels(loaded, width)
        self._warm_up()
        self.ready = True
        logger.info("model %s v%s ready: %s, %s %s, %d classes, input [N, 3, %d, %d], %.1f s", self.name,
                    self.version, self.source_format, self.runtime, self.precision, width, self.crop_size,
                    self.crop_size, time.perf_counter() - started)

    def _size_torch_threads(self) -> None:
        """PyTorch's intra-op threads: ``TORCH_THREADS`` when PyTorch runs the model, 1 when OpenVINO does.

        With OpenVINO, PyTorch only runs the glue (normalising the batch, softmax). A parallel PyTorch op
        leaves its OpenMP worker spinning after the region, on the CPU OpenVINO's threads need next:
        measured on 2 vCPUs (AMD EPYC, int8 ResNet-50, batch 1), one normalisation before each forward pass
        made it 14.6 ms instead of 12.3 (median of 4 rounds); serially the same op costs under 1 ms a batch.
        """
        torch.set_num_threads(1 if self.runtime == runtime.OPENVINO else self.settings.torch_threads)

    def _plan(self) -> runtime.Plan:
        """``runtime.plan`` for this host's CPU, or for ``MODEL_TARGET_CPU``'s tier measured on this host."""
        s = self.settings
        if s.model_target_cpu == "host":
            return runtime.plan(s.model_runtime, s.model_dtype, self.cpu, runtime.openvino_available())
        return runtime.plan(s.model_runtime, s.model_dtype, hostcpu.CpuFeatures.for_tier(s.model_target_cpu),
                            runtime.openvino_available(), host=self.cpu)

    def _read(self) -> loaders.LoadedModel:
        s = self.settings
        return loaders.load_file(s.model_path, s.model_arch) if s.model_path else loaders.load_torchvision(
            s.model_arch, s.model_weights)

    def _select(self, plan: runtime.Plan) -> None:
        """Serve the first of ``plan``'s candidates that passes the accuracy gate."""
        from service.selection import select

        def build_torch(module: torch.nn.Module, precision: str):
            self.module, self.dtype = module, torch.bfloat16 if precision == "bfloat16" else torch.float32
            self.memory_format = torch.channels_last if self.settings.channels_last else \
                torch.contiguous_format
            self._optimize()
            return self._forward

        chosen = select(self.settings, plan, self._read, self.preprocessor, build_torch)
        self.runtime, self.precision, self.gate_report = chosen.runtime, chosen.precision, chosen.report
        if chosen.runtime == runtime.OPENVINO:
            self.module, self.dtype = chosen.module, torch.float32
            self.memory_format = torch.contiguous_format

    def _load_archive(self) -> loaders.LoadedModel:
        """An OpenVINO archive (``tools.compile_model``): compiled as stored, no calibration, no gate."""
        from service import openvino_backend as ovb

        s = self.settings
        if s.model_runtime == runtime.TORCH:
            raise ModelLoadError(f"MODEL_PATH={s.model_path} is an OpenVINO archive: MODEL_RUNTIME=torch "
                                 "cannot serve it")
        model, report = ovb.read_archive(s.model_path)
        precision = report.get("serving", runtime.FLOAT32)
        if s.model_dtype not in ("auto", precision):
            raise ModelLoadError(f"MODEL_PATH={s.model_path} holds a {precision} model; MODEL_DTYPE="
                                 f"{s.model_dtype} asks for another (unset it, or compile that one)")
        target = report.get("target_cpu") or str(report.get("cpu", "")).partition(" ")[0]
        if self.cpu.lacks(target):  # e.g. int8 planned for AMX nodes on an AVX2 host: right, but slow
            logger.warning("OpenVINO archive compiled for %s CPUs; this host is %s: it serves %s anyway, "
                           "slower than on its target", target, self.cpu.describe(), precision)
        stored = report.get("preprocessing")
        if stored and s.uses_default_preprocessing():  # as compiled (e.g. the weights' own transforms)
            self.preprocessor = Preprocessor(stored["resize_size"], stored["crop_size"],
                                             tuple(stored["mean"]), tuple(stored["std"]))
        self.module = ovb.compile_model(model, precision, s.torch_threads)
        self.runtime, self.precision, self.gate_report = runtime.OPENVINO, precision, report
        self.dtype, self.memory_format = torch.float32, torch.contiguous_format
        self.source_format = loaders.OPENVINO_ARCHIVE
        logger.info("OpenVINO archive: %s, gate measured at compile time: %s", precision,
                    "; ".join(f"{c['precision']} {100 * c['overall']:.1f} %" for c in report.get(
                        "candidates", [])) or "none")
        return loaders.LoadedModel(self.module, loaders.OPENVINO_ARCHIVE, None)

    def _optimize(self) -> None:
        """Apply ``CHANNELS_LAST``, ``MODEL_DTYPE`` and ``TORCHSCRIPT_FREEZE`` to the module (the input
        follows in ``_forward``). Measured effects: docs/performance.md. Raises ``ModelLoadError`` if
        the model cannot take ``MODEL_DTYPE`` (e.g. an int8 quantized model)."""
        if self.memory_format is torch.channels_last:
            try:
                self.module = self.module.to(memory_format=torch.channels_last)
            except (RuntimeError, TypeError) as exc:
                logger.warning("model stays in contiguous format (CHANNELS_LAST): %s", str(exc)[:200])
                self.memory_format = torch.contiguous_format
        if self.dtype is not torch.float32:
            try:
                self.module = self.module.to(self.dtype)
            except (RuntimeError, TypeError) as exc:
                raise ModelLoadError(f"MODEL_DTYPE={self.settings.model_dtype}: cannot convert the model: "
                                     f"{str(exc).strip()[:200]}") from None
        if self.settings.torchscript_freeze and isinstance(self.module, torch.jit.ScriptModule):
            try:  # weights become constants: batch-norm folds into convolutions, oneDNN picks kernels
                self.module = torch.jit.optimize_for_inference(torch.jit.freeze(self.module.eval()))
            except Exception as exc:  # e.g. a module freeze cannot handle: serve it unfrozen
                logger.warning("TorchScript model not frozen (TORCHSCRIPT_FREEZE): %s",
                               str(exc).strip().splitlines()[0][:200])

    def _output_width(self) -> int:
        probe = torch.zeros(1, 3, self.crop_size, self.crop_size)
        try:
            out = self._forward(probe)
        except Exception as exc:
            raise ModelLoadError(f"model fails on a [1, 3, {self.crop_size}, {self.crop_size}] input "
                                 f"(CROP_SIZE?): {str(exc).strip().splitlines()[0][:300]}") from None
        if out.ndim != 2 or out.shape[0] != 1:
            raise ModelLoadError(f"model output has shape {list(out.shape)}; expected [N, C] logits")
        return int(out.shape[1])

    def _load_labels(self, loaded: loaders.LoadedModel, width: int) -> list[str]:
        path = self.settings.model_labels
        if path is not None:
            labels = loaders.read_labels(path)
            if len(labels) != width:
                raise ModelLoadError(f"MODEL_LABELS={path} has {len(labels)} labels but the model "
                                     f"outputs {width} classes")
            return labels
        weights = loaded.weights or torchvision.models.ResNet50_Weights.IMAGENET1K_V2  # ImageNet-1k names
        categories = list(weights.meta.get("categories") or [])
        if len(categories) == width:
            return categories
        logger.warning("no MODEL_LABELS for a %d-class model: labels are the class indices", width)
        return [str(i) for i in range(width)]

    def _warm_up(self) -> None:
        """Run a few passes (first calls pay for allocation and TorchScript profiling), the last at the
        full batch size: the process's peak RSS then holds the largest pass's activations
        (``service.memory`` counts it as the model's footprint)."""
        sample = torch.zeros(1, 3, self.crop_size, self.crop_size)
        self._forward(sample)
        if self.batch_limit > 1:
            try:
                self._forward(sample.expand(2, -1, -1, -1).contiguous())
            except Exception as exc:
                logger.warning("model rejects batch size 2 (%s): batching disabled",
                               str(exc).strip().splitlines()[0][:200])
                self.batch_limit = 1
        if self.batch_limit > 2:
            try:
                self._forward(sample.expand(self.batch_limit, -1, -1, -1).contiguous())
            except Exception as exc:
                logger.warning("model rejects batch size %d (%s): batches of 2 at most", self.batch_limit,
                               str(exc).strip().splitlines()[0][:200])
                self.batch_limit = 2

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            out = self.module(batch.to(dtype=self.dtype, memory_format=self.memory_format))
        if isinstance(out, (tuple, list)):
            out = out[0]
        elif isinstance(out, dict):
            out = out.get("out", next(iter(out.values())))
        return out

    def predict(self, batch: torch.Tensor) -> torch.Tensor:
        """Normalised float32 ``[N, 3, crop, crop]`` (``Preprocessor.collate``) -> softmax probabilities
        ``[N, C]``: one forward pass in inference mode, in ``MODEL_DTYPE`` and ``CHANNELS_LAST``."""
        with torch.inference_mode():
            return torch.softmax(self._forward(batch).float(), dim=1)

    def postprocess(self, probabilities: torch.Tensor, k: int) -> list[list[Prediction]]:
        """Probabilities ``[N, C]`` -> per row the ``k`` most likely classes with their labels, score
        descending (``service.postprocess.top_k``)."""
        return top_k(probabilities, self.labels, k)
