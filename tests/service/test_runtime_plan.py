"""service.hostcpu (``/proc/cpuinfo`` flags) and service.runtime.plan (which runtime, which precisions)."""

from __future__ import annotations

from pathlib import Path

import pytest

from service import hostcpu
from service.errors import ModelLoadError
from service.runtime import plan

# Flags lines as the kernel prints them (arch/x86/include/asm/cpufeatures.h names), trimmed.
SAPPHIRE_RAPIDS = "avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8 avx_vnni"
ICE_LAKE = "avx2 avx512f avx512dq avx512_vnni avx512_bitalg"
HASWELL = "sse4_2 avx avx2 fma"


def _cpu(flags: str) -> hostcpu.CpuFeatures:
    return hostcpu.CpuFeatures.from_flags(hostcpu.parse_flags(f"processor\t: 0\nflags\t\t: {flags}\n"))


def test_flags_are_read_from_proc_cpuinfo_text(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: Intel(R) Xeon(R)\nflags\t\t: {SAPPHIRE_RAPIDS}\n\n"
                       "processor\t: 1\nflags\t\t: avx2\n")
    cpu = hostcpu.detect(cpuinfo)
    assert cpu.amx_int8 and cpu.avx512_bf16 and cpu.tier == "amx" and cpu.fast_int8 and cpu.fast_bfloat16
    assert hostcpu.detect(tmp_path / "missing") == hostcpu.CpuFeatures()


@pytest.mark.parametrize(("flags", "tier", "auto"), [
    (SAPPHIRE_RAPIDS, "amx", ("int8", "bfloat16", "float32")),
    (ICE_LAKE, "avx512_vnni", ("int8", "float32")),  # VNNI int8, no bfloat16 in hardware
    (HASWELL, "avx2", ("float32",)),
    ("", "baseline", ("float32",)),
])
def test_auto_tries_what_the_cpu_runs_in_hardware(flags, tier, auto) -> None:
    cpu = _cpu(flags)
    assert cpu.tier == tier
    chosen = plan("auto", "auto", cpu, have_openvino=True)
    assert (chosen.runtime, chosen.candidates, chosen.explicit) == ("openvino", auto, False)
    assert tier in chosen.reason


def test_without_openvino_auto_is_pytorch_and_never_int8() -> None:
    chosen = plan("auto", "auto", _cpu(SAPPHIRE_RAPIDS), have_openvino=False)
    assert (chosen.runtime, chosen.candidates) == ("torch", ("bfloat16", "float32"))
    with pytest.raises(ModelLoadError, match="MODEL_DTYPE=int8 needs MODEL_RUNTIME=openvino"):
        plan("torch", "int8", _cpu(SAPPHIRE_RAPIDS), have_openvino=True)
    with pytest.raises(ModelLoadError, match="MODEL_RUNTIME=openvino: the openvino package is not installed"):
        plan("openvino", "auto", _cpu(SAPPHIRE_RAPIDS), have_openvino=False)


def test_an_explicit_precision_is_the_only_candidate() -> None:
    assert plan("torch", "float32", _cpu(SAPPHIRE_RAPIDS), True).candidates == ("float32",)
    strict = plan("openvino", "bfloat16", _cpu(HASWELL), True)
    assert strict.candidates == ("bfloat16",) and strict.explicit
    assert not plan("openvino", "float32", _cpu(HASWELL), True).explicit


def test_torch_float32_keeps_the_float32_pytorch_path(model_files, labels_file, monkeypatch) -> None:
    """MODEL_RUNTIME=torch MODEL_DTYPE=float32: frozen TorchScript in channels_last as before; no
    calibration image is read and no gate runs."""
    import torch

    from service import calibration
    from service.model import ImageClassifier
    from service.settings import Settings

    monkeypatch.setattr(calibration, "load", lambda *a, **k: pytest.fail("no calibration expected"))
    classifier = ImageClassifier(Settings(model_path=model_files("torchscript"), model_labels=labels_file,
                                          model_runtime="torch", model_dtype="float32"))
    classifier.load()
    assert (classifier.runtime, classifier.precision, classifier.gate_report) == ("torch", "float32", {})
    assert isinstance(classifier.module, torch.jit.ScriptModule) and classifier.dtype is torch.float32
    assert classifier.memory_format is torch.channels_last


@pytest.mark.parametrize("tier", hostcpu.TIERS)
def test_a_named_tier_has_the_features_of_that_tier(tier) -> None:
    cpu = hostcpu.CpuFeatures.for_tier(tier)
    assert cpu.tier == tier
    assert [cpu.lacks(other) for other in hostcpu.TIERS] == [
        hostcpu.TIERS.index(other) < hostcpu.TIERS.index(tier) for other in hostcpu.TIERS]
    assert not cpu.lacks("no-such-tier")


def test_a_target_tier_plans_as_on_that_cpu_and_skips_bfloat16_a_builder_cannot_measure() -> None:
    amx = hostcpu.CpuFeatures.for_tier("amx")
    on_avx2 = plan("auto", "auto", amx, True, host=_cpu(HASWELL))  # a GitHub runner (EPYC Milan): AVX2
    assert on_avx2.candidates == ("int8", "float32")
    assert "for a amx target (MODEL_TARGET_CPU)" in on_avx2.reason
    assert on_avx2.reason.endswith("bfloat16 skipped: this host (avx2) has no AVX512-BF16 or AMX-BF16, its "
                                   "gate would measure float32")
    assert plan("auto", "auto", amx, True, host=_cpu(SAPPHIRE_RAPIDS)).candidates == ("int8", "bfloat16",
                                                                                       "float32")
    assert plan("auto", "auto", hostcpu.CpuFeatures.for_tier("avx2"), True, host=_cpu(SAPPHIRE_RAPIDS)
                ).candidates == ("float32",)  # what an AVX2 node runs fast, though this host has more
    with pytest.raises(ModelLoadError, match="MODEL_DTYPE=bfloat16 for a amx target: this host"):
        plan("openvino", "bfloat16", amx, True, host=_cpu(HASWELL))
    assert plan("openvino", "int8", amx, True, host=_cpu(HASWELL)).candidates == ("int8",)


def test_pytorch_runs_single_threaded_glue_when_openvino_serves(tmp_path: Path, model_files,
                                                                  labels_file) -> None:
    """With OpenVINO serving, PyTorch's ops (normalising, softmax) run on one thread: a parallel one leaves
    its OpenMP worker spinning on the CPU OpenVINO's next forward pass needs (service.model). PyTorch serving
    keeps TORCH_THREADS."""
    pytest.importorskip("openvino")
    import torch

    from service.model import ImageClassifier
    from tests.service.tiny import save_tiny_torchscript, tiny_settings

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        served = ImageClassifier(tiny_settings(model_path=save_tiny_torchscript(tmp_path / "tiny.pt"),
                                               model_runtime="openvino", model_dtype="float32",
                                               torch_threads=2))
        served.load()
        assert served.runtime == "openvino" and torch.get_num_threads() == 1
        plain = ImageClassifier(tiny_settings(model_path=model_files("torchscript"), model_labels=labels_file,
                                              model_runtime="torch", model_dtype="float32", torch_threads=2,
                                              resize_size=256, crop_size=224))
        plain.load()
        assert plain.runtime == "torch" and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
