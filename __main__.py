"""Pulumi program of aks-image-classifier: read the stack config once, declare the stack, export outputs."""

import pulumi

from stacks.config import load_config
from stacks.program import build

for key, value in build(load_config()).items():
    pulumi.export(key, value)
