"""Fixtures for the Pulumi program tests: each stack file run once under mocks per test module."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.stack_mocks import MockRun, run_program, stack_file_config

ROOT = Path(__file__).resolve().parents[2]


def run_stack(stack: str, *, preview: bool = False, **overrides) -> MockRun:
    """Run `Pulumi.<stack>.yaml` (plus `overrides`, short keys) under mocks."""
    config = stack_file_config(stack, ROOT)
    config.update({k if ":" in k else f"aks-image-classifier:{k}": v for k, v in overrides.items()})
    return run_program(config, stack, preview=preview)


@pytest.fixture(scope="module")
def dev() -> MockRun:
    return run_stack("dev")


@pytest.fixture(scope="module")
def prod() -> MockRun:
    return run_stack("prod")


@pytest.fixture(scope="module")
def local() -> MockRun:
    return run_stack("local")
