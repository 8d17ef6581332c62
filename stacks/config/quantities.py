"""Kubernetes resource quantities (`resource.Quantity`): CPU ("500m", "1", "1.5") and memory ("512Mi", "2Gi",
"1G"), as the API server parses them (Kubernetes "Resource units in Kubernetes")."""

from __future__ import annotations

import re

# Kubernetes resource.Quantity for CPU ("500m", "1", "1.5") and memory ("512Mi", "2Gi", "1G").
CPU = re.compile(r"^(\d+(\.\d+)?|\d+m)$")
MEMORY = re.compile(r"^\d+(\.\d+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$")
_MEMORY_FACTOR = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


def cpu_millicores(value: str) -> int:
    """Parse a Kubernetes CPU quantity ("250m", "1", "1.5") into millicores (int)."""
    if value.endswith("m"):
        return int(value[:-1])
    return round(float(value) * 1000)


def memory_bytes(value: str) -> int:
    """Parse a Kubernetes memory quantity ("512Mi", "2Gi", "1G", "1048576") into bytes."""
    match = re.match(r"^(\d+(?:\.\d+)?)([A-Za-z]*)$", value)
    if not match or match.group(2) not in _MEMORY_FACTOR:
        raise ValueError(f"not a memory quantity: {value!r}")
    return round(float(match.group(1)) * _MEMORY_FACTOR[match.group(2)])
