"""Pulumi program of the delivery bootstrap: read the config once, declare, export.

Pulumi runs this file with `bootstrap/` as the working directory; the repository root goes on `sys.path`
so the modules import as the `bootstrap` package (as the tests import them).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pulumi

from bootstrap.config import load_config
from bootstrap.program import build

for key, value in build(load_config()).items():
    pulumi.export(key, value)
