"""Model loaders: detect a model file's format from its contents and load it, or fetch torchvision weights.

Detection (``detect_format``), by what is inside the file rather than its name:
- zip with a ``<root>/code/`` folder: TorchScript (``torch.jit.save``), quantized ones included;
- zip with ``<root>/archive_format``: a ``torch.export`` program archive (``.pt2``);
- zip with ``openvino/model.xml``: an OpenVINO archive (``tools.compile_model``: IR + report.json),
  served by ``ImageClassifier`` itself (``service.openvino_backend.read_archive``), not by ``load_file``;
- zip with ``<root>/data.pkl`` only, or a legacy pickle (first byte 0x80): a ``torch.save`` file,
  loaded with ``weights_only=True`` (no code runs) and expected to be a ``state_dict``.
"""

from __future__ import annotations

import logging
import urllib.error
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision

from service.errors import ModelLoadError

logger = logging.getLogger("service")

TORCHSCRIPT, EXPORT, STATE_DICT, OPENVINO_ARCHIVE = "torchscript", "export", "state_dict", "openvino"


@dataclass
class LoadedModel:
    """A loaded model: ``module`` maps ``[N, 3, H, W]`` float32 to logits ``[N, C]``."""

    module: torch.nn.Module
    source_format: str  # torchscript | export | state_dict | torchvision
    weights: torchvision.models.WeightsEnum | None = None  # torchvision weights, when known
    program: torch.export.ExportedProgram | None = None  # the .pt2 program (OpenVINO converts it)


def detect_format(path: Path) -> str:
    """Return ``TORCHSCRIPT``, ``EXPORT``, ``STATE_DICT`` or ``OPENVINO_ARCHIVE`` for the file at ``path``.

    Raises ``ModelLoadError`` if the file is missing, unreadable, or none of these formats.
    """
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
    except FileNotFoundError:
        raise ModelLoadError(f"MODEL_PATH={path}: no such file") from None
    except OSError as exc:
        raise ModelLoadError(f"MODEL_PATH={path}: cannot read it ({exc.strerror or exc})") from None
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError) as exc:
            raise ModelLoadError(f"MODEL_PATH={path}: damaged archive ({exc})") from None
        if "openvino/model.xml" in names:
            return OPENVINO_ARCHIVE
        if any("/code/" in name for name in names):
            return TORCHSCRIPT
        if any(name.endswith("archive_format") for name in names):
            return EXPORT
        if any(name.endswith("data.pkl") for name in names):
            return STATE_DICT
    elif head[:1] == b"\x80":  # pickle protocol 2+ (torch.save with _use_new_zipfile_serialization=False)
        return STATE_DICT
    raise ModelLoadError(
        f"MODEL_PATH={path}: not a TorchScript, torch.export (.pt2), state_dict or OpenVINO archive file")


def load_file(path: Path, arch: str) -> LoadedModel:
    """Load the model file at ``path``; ``arch`` (torchvision name) is used only for a state_dict.

    Raises ``ModelLoadError`` with one line saying what is wrong.
    """
    fmt = detect_format(path)
    program = None
    try:
        if fmt == TORCHSCRIPT:
            module = torch.jit.load(str(path), map_location="cpu")
            module.eval()
        elif fmt == EXPORT:
            with path.open("rb") as handle:  # a file object: the name need not end in .pt2
                program = torch.export.load(handle)
            module = program.module()
        else:
            module = _load_state_dict(path, arch)
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"MODEL_PATH={path}: cannot load {fmt} file: {_first_line(exc)}") from None
    return LoadedModel(module, fmt, _weights_or_none(arch, "DEFAULT") if fmt == STATE_DICT else None,
                       program)


def _load_state_dict(path: Path, arch: str) -> torch.nn.Module:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelLoadError(
            f"MODEL_PATH={path}: not a plain state_dict ({_first_line(exc)}); save model.state_dict(), "
            "or a TorchScript / torch.export file") from None
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]  # common checkpoint layout {"state_dict": ..., "epoch": ...}
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelLoadError(f"MODEL_PATH={path}: expected a state_dict (names -> tensors)")
    state = {key.removeprefix("module."): value for key, value in state.items()}  # DataParallel
    matrices = [value for value in state.values() if value.ndim == 2]
    if not matrices:
        raise ModelLoadError(f"MODEL_PATH={path}: state_dict has no classifier layer")
    num_classes = matrices[-1].shape[0]
    try:
        module = torchvision.models.get_model(arch, weights=None, num_classes=num_classes)
    except ValueError:
        raise ModelLoadError(f"MODEL_ARCH={arch}: unknown torchvision architecture") from None
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelLoadError(
            f"MODEL_PATH={path}: state_dict does not fit MODEL_ARCH={arch}: {_first_line(exc)}") from None
    return module.eval()


def _weights_or_none(arch: str, name: str) -> torchvision.models.WeightsEnum | None:
    try:
        return resolve_weights(arch, name)
    except ModelLoadError:
        return None


def resolve_weights(arch: str, name: str) -> torchvision.models.WeightsEnum:
    """The torchvision weights enum member ``name`` (e.g. ``DEFAULT``, ``IMAGENET1K_V2``) of ``arch``."""
    try:
        enum = torchvision.models.get_model_weights(arch)
    except (ValueError, KeyError):
        raise ModelLoadError(f"MODEL_ARCH={arch}: unknown torchvision architecture") from None
    try:
        return enum[name]
    except KeyError:
        choices = ", ".join(["DEFAULT", *enum.__members__])
        raise ModelLoadError(f"MODEL_WEIGHTS={name}: not a weights name of {arch} ({choices})") from None


def load_torchvision(arch: str, weights_name: str) -> LoadedModel:
    """Build ``arch`` with weights ``weights_name``, downloading them into the torch hub cache if needed.

    The cache is ``$TORCH_HOME/hub/checkpoints`` (default ``~/.cache/torch``). Offline with an empty
    cache, raises ``ModelLoadError`` telling how to supply a model file instead.
    """
    weights = resolve_weights(arch, weights_name)
    try:
        module = torchvision.models.get_model(arch, weights=weights)
    except (urllib.error.URLError, OSError, RuntimeError) as exc:
        cache = Path(torch.hub.get_dir()) / "checkpoints"
        raise ModelLoadError(
            f"cannot fetch torchvision weights {arch}/{weights.name} from {weights.url} into {cache} "
            f"({_first_line(exc)}). Offline? Set MODEL_PATH to a TorchScript, .pt2 or state_dict file "
            "(python -m tools.make_model writes one), or copy the weights file into that cache") from None
    return LoadedModel(module.eval(), "torchvision", weights)


def read_labels(path: Path) -> list[str]:
    """Labels file: one label per line, line i = class i (trailing blank lines ignored)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ModelLoadError(f"MODEL_LABELS={path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"MODEL_LABELS={path}: cannot read it ({exc})") from None
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise ModelLoadError(f"MODEL_LABELS={path}: file has no labels")
    return [line.strip() for line in lines]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
