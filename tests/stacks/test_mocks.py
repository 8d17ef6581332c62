"""The mock runner itself: it must work wherever pytest runs it, after any other test."""

from __future__ import annotations

import asyncio

from tests.stacks.conftest import run_stack


def test_program_runs_after_an_earlier_asyncio_run_cleared_the_event_loop():
    async def other_test() -> str:
        return "done"

    assert asyncio.run(other_test()) == "done"  # leaves the main thread without a current event loop
    run = run_stack("local")
    assert run.outputs["image"]
