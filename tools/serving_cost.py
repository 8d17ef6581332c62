"""Cost per million images per VM size: measured img/s per vCPU, the node's allocatable CPUs, list prices.

    python -m tools.serving_cost --markdown

    cost per million images = hourly price / (img/s per vCPU x allocatable vCPUs x 3600) x 1e6

Throughput comes from `THROUGHPUT`, one entry per CPU class, measured by `python -m bench` on a machine of
that class (per vCPU: the run's img/s over the vCPUs it had). Prices come from docs/deploy.md's price table
(the one source of prices: the stacks' cost estimate reads the same rows, `vm_prices`). A VM size maps to a
CPU class through its family (`FAMILY_CPU`); a family whose hosts are of more than one class, or of a class
not measured, gets no figure (`UNMEASURED` says why) rather than a guess.

Allocatable CPU is the node's vCPUs less AKS's kube-reserved CPU (`KUBE_RESERVED_MILLICORES`). Not counted:
the DaemonSet pods' requests on each node (kube-proxy, the CNI, the monitoring agents), whole-pod packing
(pods of `cpuRequest` each fill the allocatable CPU only if it divides evenly) and the system pool: each
makes a real image dearer than the table says.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path

from stacks.config.cluster import vm_size_family

DEPLOY_DOC = Path(__file__).resolve().parents[1] / "docs" / "deploy.md"
SECONDS_PER_HOUR = 3600

#: CPU classes the default (`MODEL_RUNTIME=auto`, `MODEL_DTYPE=auto`) serves int8 on (service/hostcpu.py).
AMX = "Intel Xeon with AMX (amx_int8, amx_bf16)"
GENOA = "AMD EPYC Genoa (avx512_vnni, avx512_bf16)"


@dataclass(frozen=True)
class Throughput:
    """One measurement of a CPU class: `model_alone` (the OpenVINO int8 model alone, batch 8) and
    `service_c16` (the service with its defaults over HTTP at concurrency 16), img/s on a machine of `vcpus`
    vCPUs; `date` ISO; `status` "measured" or "estimated" (printed next to every figure derived from it;
    `machine` says how an estimate was made)."""

    runtime: str
    vcpus: int
    model_alone: float
    service_c16: float
    date: str
    status: str
    machine: str
    command: str

    @property
    def model_alone_per_vcpu(self) -> float:
        """img/s per vCPU of the model alone."""
        return self.model_alone / self.vcpus

    @property
    def service_per_vcpu(self) -> float:
        """img/s per vCPU of the service at c=16."""
        return self.service_c16 / self.vcpus


_BENCH = "python -m bench --levels 1 16 64 --duration 15 --set GATE_MIN_CONFIDENT=0 --set GATE_MIN_OVERALL=0"
#: The service's paired c=16 / model-alone ratio measured on Genoa (docs/performance.md, "Runtimes and
#: precisions"): the AMX entry's service figure is its model alone times this, not a measurement.
GENOA_SERVICE_RATIO = 0.775
#: Measured throughput per CPU class (ResNet-50, 2 vCPUs, OpenVINO int8 with the gate's thresholds at 0 for a
#: seeded random-weight model). To replace a figure, edit the entry's numbers line.
THROUGHPUT: dict[str, Throughput] = {
    AMX: Throughput(
        "OpenVINO int8",
        vcpus=2, model_alone=382.0, service_c16=round(382.0 * GENOA_SERVICE_RATIO), date="2026-12-01",
        status="estimated",
        machine='cloud VM, lscpu "Intel(R) Xeon(R) Processor", amx_int8, amx_bf16: model alone measured on a '
                "quiet host (batch 8); service = model alone x the service / model alone ratio measured on "
                "Genoa (0.775), not measured on this class",
        command=_BENCH,
    ),
    GENOA: Throughput(
        "OpenVINO int8",
        vcpus=2, model_alone=82.9, service_c16=66.1, date="2026-12-02", status="measured",
        machine='cloud VM, lscpu "AMD EPYC" (family 25 model 17: Genoa), avx512_vnni, avx512_bf16, no AMX; '
                "model alone batch 8 and the service at c=16 in one run",
        command=_BENCH,
    ),
}  # fmt: skip

#: VM family -> CPU class. Ddsv6 / Dsv6: 5th Generation Intel Xeon Platinum 8573C (Emerald Rapids) with Intel
#: AVX-512 and Advanced Matrix Extensions (Microsoft Learn, "Ddsv6 sizes series", "Dsv6 sizes series").
#: Dadsv6 / Dasv6: AMD's 4th Generation EPYC 9004 (Microsoft Learn, "Dadsv6 sizes series"), Zen 4, whose ISA
#: has AVX512_VNNI and AVX512_BF16 but no AMX (GCC manual, "x86 Options", `-march=znver4`).
FAMILY_CPU = {"Ddsv6": AMX, "Dsv6": AMX, "Dadsv6": GENOA, "Dasv6": GENOA}
#: Families without a figure, and why.
UNMEASURED = {
    "Ddsv5": "Ice Lake or Emerald Rapids: not measured",  # "Ddsv5 sizes series": 8370C or 8573C
    "Dsv5": "Ice Lake or Emerald Rapids: not measured",
    "Dadsv5": "AMD Milan or Genoa: not measured",  # "Dadsv5 sizes series": EPYC 7763v or 9004
}
#: Kube-reserved CPU by the node's cores, millicores (Microsoft Learn, "Node resource reservations in AKS").
KUBE_RESERVED_MILLICORES = {1: 60, 2: 100, 4: 140, 8: 180, 16: 260, 32: 420, 64: 740}

_PRICE_ROW = re.compile(
    r"^\| (Standard_\S+(?: / \S+)*) \| (\$[\d.]+(?: / \$[\d.]+)*) per hour \|$", re.MULTILINE
)


def vm_prices(deploy_md: str) -> dict[str, float]:
    """USD per hour by VM size from the rows `| Standard_A / B ... | $a / $b ... per hour |` of deploy_md's
    price table (after its `<!-- price-table` marker); a short name (`D4ds_v5`) means `Standard_D4ds_v5`.
    Raises ValueError when the table has no such row or a row's names and prices differ in number."""
    table = deploy_md[deploy_md.index("<!-- price-table") :]
    prices: dict[str, float] = {}
    for row in _PRICE_ROW.finditer(table):
        names = [n if n.startswith("Standard_") else f"Standard_{n}" for n in row.group(1).split(" / ")]
        values = [float(p.strip("$")) for p in row.group(2).split(" / ")]
        if len(names) != len(values):
            raise ValueError(f"price table row {row.group(0)!r}: {len(names)} sizes, {len(values)} prices")
        prices.update(zip(names, values, strict=True))
    if not prices:
        raise ValueError("docs/deploy.md: no `| Standard_... | $... per hour |` row in the price table")
    return prices


def size_family(size: str) -> tuple[str, int]:
    """(family, vCPUs) of a VM size name: Standard_D4ds_v6 -> ("Ddsv6", 4), as the stacks read it
    (`stacks.config.cluster.vm_size_family`). Raises ValueError for other names."""
    family = vm_size_family(size)
    if family is None:
        raise ValueError(f"not a VM size name of the form Standard_D4ds_v6: {size!r}")
    return family


def allocatable_vcpus(vcpus: int) -> float:
    """vCPUs less kube-reserved CPU. Raises KeyError for a core count AKS's table does not list."""
    return vcpus - KUBE_RESERVED_MILLICORES[vcpus] / 1000


def per_million(price_per_hour: float, img_s: float) -> float:
    """USD per million images at `img_s` images per second for `price_per_hour` USD per hour."""
    return price_per_hour / (img_s * SECONDS_PER_HOUR) * 1e6


@dataclass(frozen=True)
class Row:
    """One VM size: `service_img_s` img/s per node (None: no measured class); costs USD per million."""

    size: str
    price: float
    cpu: str
    allocatable: float
    throughput: Throughput | None

    @property
    def service_img_s(self) -> float | None:
        return None if self.throughput is None else self.throughput.service_per_vcpu * self.allocatable

    @property
    def service_cost(self) -> float | None:
        img_s = self.service_img_s
        return None if img_s is None else per_million(self.price, img_s)

    @property
    def model_alone_cost(self) -> float | None:
        if self.throughput is None:
            return None
        return per_million(self.price, self.throughput.model_alone_per_vcpu * self.allocatable)


def rows(prices: dict[str, float]) -> list[Row]:
    """A row per priced size of a known family, ordered by family then vCPUs. Raises KeyError for a priced
    size whose family is neither measured nor listed as unmeasured."""
    out = []
    for size, price in prices.items():
        family, vcpus = size_family(size)
        cls = FAMILY_CPU.get(family)
        cpu = cls or UNMEASURED[family]
        out.append(Row(size, price, cpu, allocatable_vcpus(vcpus), THROUGHPUT.get(cls) if cls else None))
    return sorted(out, key=lambda r: (size_family(r.size)[0], size_family(r.size)[1]))


def _money(value: float | None) -> str:
    return "–" if value is None else f"${value:.3f}"


def markdown(prices: dict[str, float]) -> str:
    """The measurements table and the cost table, as docs/performance.md shows them."""
    lines = [
        "| CPU class | runtime | vCPUs | model alone img/s (per vCPU) | service c=16 img/s (per vCPU) "
        "| date | status | machine | command |",
        "|---|---|---:|---:|---:|---|---|---|---|",
    ]
    for cls, t in THROUGHPUT.items():
        lines.append(
            f"| {cls} | {t.runtime} | {t.vcpus} | {t.model_alone:g} ({t.model_alone_per_vcpu:.0f}) "
            f"| {t.service_c16:g} ({t.service_per_vcpu:.0f}) | {t.date} | {t.status} | {t.machine} "
            f"| `{t.command}` |"
        )
    lines += [
        "",
        "| VM size | $ per hour | CPU | allocatable vCPUs | service img/s per node "
        "| $ per million images, service | $ per million, model alone |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows(prices):
        img_s = "–" if r.service_img_s is None else f"{r.service_img_s:.0f}"
        status = "" if r.throughput is None else f" ({r.throughput.status})"
        lines.append(
            f"| {r.size} | ${r.price:.3f} | {r.cpu} | {r.allocatable:.2f} | {img_s} "
            f"| {_money(r.service_cost)}{status} | {_money(r.model_alone_cost)} |"
        )
    return "\n".join(lines)


def summary(prices: dict[str, float]) -> str:
    """One sentence with the service's cost per million images on every measured, priced size."""
    measured = [r for r in rows(prices) if r.throughput is not None]
    parts = ", ".join(f"{r.size} {_money(r.service_cost)} ({r.throughput.status})" for r in measured)
    return f"Cost per million images at list prices, the service at c=16: {parts}."


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print docs/performance.md's tables")
    parser.add_argument("--deploy-doc", type=Path, default=DEPLOY_DOC, help="the price table's file")
    args = parser.parse_args(argv)
    prices = vm_prices(args.deploy_doc.read_text())
    print(markdown(prices) if args.markdown else summary(prices))


if __name__ == "__main__":
    main()
