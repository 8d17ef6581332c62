"""What the host CPU can do for inference, read from ``/proc/cpuinfo``'s ``flags`` line (Linux).

The flags are the kernel's names for CPUID feature bits (``arch/x86/include/asm/cpufeatures.h``):
``amx_bf16`` / ``amx_int8`` / ``amx_tile`` (Advanced Matrix Extensions: Sapphire Rapids and later),
``avx512_bf16``, ``avx512_vnni`` / ``avx_vnni`` (int8 dot products), ``avx512f``, ``avx2``. oneDNN, which
both PyTorch and OpenVINO run on x86, picks its kernels by the same bits, so they say which reduced
precisions run at hardware speed: int8 is fast with VNNI or AMX-INT8, bfloat16 only with AVX512-BF16 or
AMX-BF16 (without them oneDNN emulates it, slower than float32).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")

#: The tiers ``CpuFeatures.tier`` names, best first (``MODEL_TARGET_CPU`` accepts them, and ``host``).
TIERS = ("amx", "avx512_vnni", "avx512", "avx2", "baseline")
#: The flags a CPU of each tier has, as the reference CPUs show them: amx = Sapphire / Emerald Rapids
#: (Azure Dsv6 / Ddsv6), avx512_vnni = Ice Lake / Cascade Lake (no bfloat16; Azure Ddsv5 runs Ice Lake or
#: Emerald Rapids), avx512 = Skylake-SP, avx2 = Haswell to Zen 3 (Azure Dadsv5's EPYC Milan).
TIER_FLAGS = {
    "amx": {"amx_int8", "amx_bf16", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512f", "avx2"},
    "avx512_vnni": {"avx512_vnni", "avx512f", "avx2"},
    "avx512": {"avx512f", "avx2"},
    "avx2": {"avx2"},
    "baseline": set(),
}


@dataclass(frozen=True)
class CpuFeatures:
    """The inference-relevant x86 feature flags of the host (all False when unknown, e.g. on ARM)."""

    amx_int8: bool = False
    amx_bf16: bool = False
    avx512_vnni: bool = False
    avx_vnni: bool = False
    avx512_bf16: bool = False
    avx512f: bool = False
    avx2: bool = False

    @classmethod
    def from_flags(cls, flags: set[str]) -> CpuFeatures:
        """Build from a set of ``/proc/cpuinfo`` flag names."""
        return cls(**{name: name in flags for name in cls.__dataclass_fields__})

    @classmethod
    def for_tier(cls, tier: str) -> CpuFeatures:
        """The features of a CPU of ``tier`` (``TIER_FLAGS``); raises ``KeyError`` for another name."""
        return cls.from_flags(TIER_FLAGS[tier])

    def lacks(self, tier: str) -> bool:
        """True when this CPU's tier is below ``tier`` (``TIERS`` order); False for an unknown name."""
        return tier in TIERS and TIERS.index(self.tier) > TIERS.index(tier)

    @property
    def fast_int8(self) -> bool:
        """int8 matrix instructions (AMX-INT8, AVX-512 VNNI or AVX-VNNI) are there."""
        return self.amx_int8 or self.avx512_vnni or self.avx_vnni

    @property
    def fast_bfloat16(self) -> bool:
        """bfloat16 arithmetic in hardware (AMX-BF16 or AVX512-BF16)."""
        return self.amx_bf16 or self.avx512_bf16

    @property
    def tier(self) -> str:
        """The best matrix instruction set: ``amx``, ``avx512_vnni``, ``avx512``, ``avx2`` or ``baseline``."""
        if self.amx_int8 or self.amx_bf16:
            return "amx"
        if self.avx512_vnni:
            return "avx512_vnni"
        if self.avx512f:
            return "avx512"
        return "avx2" if self.avx2 else "baseline"

    def describe(self) -> str:
        """One phrase for the start-up log, e.g. ``amx (amx_int8 amx_bf16 avx512_vnni ...)``."""
        present = [name for name in self.__dataclass_fields__ if getattr(self, name)]
        return f"{self.tier} ({' '.join(present) or 'no AVX2'})"


def parse_flags(cpuinfo_text: str) -> set[str]:
    """The flags of the first processor in ``/proc/cpuinfo`` text (the ``flags`` line; empty if none)."""
    for line in cpuinfo_text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "flags":
            return set(value.split())
    return set()


def detect(path: Path = CPUINFO) -> CpuFeatures:
    """The host's ``CpuFeatures`` (all False when ``path`` cannot be read)."""
    try:
        return CpuFeatures.from_flags(parse_flags(path.read_text(encoding="utf-8", errors="replace")))
    except OSError:
        return CpuFeatures()
