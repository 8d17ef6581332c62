"""The `azurite` fixture: Azurite (tests/harness/emulator.py) for a whole test session; import it into a
test module.

Without `tests/harness/azurite/node_modules` (`make install` runs `npm ci` there) the tests that need it are
skipped, except under CI (`CI` set), where that is an error.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.harness.emulator import ACCOUNT, ACCOUNT_KEY, Azurite, free_port, start_azurite, stop_azurite

__all__ = ["ACCOUNT", "ACCOUNT_KEY", "Azurite", "azurite", "free_port"]


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """The emulator for the whole test session (stopped at the end)."""
    try:
        emulator = start_azurite()
    except FileNotFoundError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))
    try:
        yield emulator
    finally:
        stop_azurite(emulator)
