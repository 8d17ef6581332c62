"""The service in a real memory cgroup of 2 GiB (the dev stack's ``memoryLimit``) under an upload flood:
300 clients each stream a 19 MiB body (under the 20 MiB ``MAX_BODY_BYTES``) at 0.5 MiB/s, reconnecting
when refused, while one legitimate client classifies a real photo every 0.5 s. The process is never
OOM-killed and every legitimate request gets 200 or a JSON 503/429.

``python -m service`` runs with its defaults (no API key, as both stacks ship) on a seeded ResNet-50,
one torch and one decode thread (the dev pod's 1-CPU limit). Needs root and a writable memory cgroup
(v1 ``memory.limit_in_bytes`` or v2 ``memory.max``), else skipped. The attackers are raw asyncio
sockets writing slices of one shared buffer, so the test itself stays small.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import threading
from pathlib import Path

import httpx
import pytest

from bench import cgroup
from tests.service.conftest import encode, metric, wait_until
from tests.service.test_shutdown import ServiceProcess
from tools.make_model import build_model, save_model

pytestmark = pytest.mark.slow

LIMIT = 2 * 2**30
ATTACKERS = 300
BODY = 19 * 2**20
RATE = 2**19  # bytes/s per attacker: 0.5 MiB/s
CHUNK = 2**16
BASELINE_S, ATTACK_S = 10.0, 45.0
LEGIT_EVERY_S = 0.5
#: JSON 503 codes a legitimate client may get while the server sheds (service.errors, service.connections).
SHED_CODES = {"memory_budget_full", "overloaded", "too_many_connections"}


@pytest.fixture(scope="module")
def memory_root() -> cgroup.CgroupRoot:
    try:
        return cgroup.find_root("memory")
    except cgroup.CgroupUnavailable as error:
        pytest.skip(str(error))


@pytest.fixture(scope="module")
def resnet50(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("r50") / "r50.pt"
    return save_model(build_model("resnet50", seed=0), path, "torchscript")


def _vm_hwm(pid: int) -> int:
    """Peak RSS (bytes) of process ``pid`` (``VmHWM``, proc(5))."""
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", text).group(1)) * 1024


class Legit:
    """A thread that POSTs ``photo`` every ``LEGIT_EVERY_S`` and records (status, JSON error code) or
    the transport error's name, then ``/readyz``'s status."""

    def __init__(self, url: str, photo: bytes) -> None:
        self.url, self.photo = url, photo
        self.results: list[tuple[int | str, str | None]] = []
        self.ready: list[int | str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as client:
            while not self.stop.wait(LEGIT_EVERY_S):
                try:
                    r = client.post("/predict", content=self.photo, headers={"Content-Type": "image/jpeg"})
                except httpx.TransportError as error:
                    self.results.append((type(error).__name__, None))
                    continue
                code = None
                if r.status_code != 200:
                    try:
                        code = r.json().get("error")
                    except json.JSONDecodeError:
                        code = "not json: " + r.text[:80]
                self.results.append((r.status_code, code))
                try:  # readiness does not depend on the budget: a shedding pod keeps its traffic
                    self.ready.append(client.get("/readyz").status_code)
                except httpx.TransportError as error:
                    self.ready.append(type(error).__name__)


async def _attacker(port: int, body: memoryview, until: float, outcomes: dict[str, int]) -> None:
    """Stream ``body`` at ``RATE`` over and over until ``until`` (loop time); reconnect 1 s after a
    refusal (the ``Retry-After``); count how each upload ended in ``outcomes``."""
    loop = asyncio.get_running_loop()
    head = (f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    while loop.time() < until:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            outcomes["connect failed"] = outcomes.get("connect failed", 0) + 1
            await asyncio.sleep(1)
            continue
        answer = asyncio.ensure_future(reader.read(256))
        outcome = "unfinished"
        try:
            writer.write(head)
            sent = 0
            while sent < len(body) and not answer.done() and loop.time() < until:
                writer.write(body[sent:sent + CHUNK])
                sent += CHUNK
                await writer.drain()
                await asyncio.wait([answer], timeout=CHUNK / RATE)
            if answer.done() or sent >= len(body):
                data = await asyncio.wait_for(answer, max(0.1, until - loop.time()))
                outcome = data.split(b"\r\n", 1)[0].decode(errors="replace") or "closed"
        except (TimeoutError, OSError) as error:
            outcome = type(error).__name__
        finally:
            answer.cancel()
            writer.close()
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        await asyncio.sleep(1)


async def _flood(port: int, seconds: float) -> dict[str, int]:
    body = memoryview(os.urandom(BODY))
    outcomes: dict[str, int] = {}
    until = asyncio.get_running_loop().time() + seconds
    await asyncio.gather(*(_attacker(port, body, until, outcomes) for _ in range(ATTACKERS)))
    return outcomes


def test_upload_flood_in_a_2_gib_cgroup_sheds_with_json_503_and_is_never_oom_killed(
        memory_root, resnet50, photos, tmp_path, capsys):
    env = {"MODEL_PATH": str(resnet50), "MODEL_NAME": "r50", "TORCH_THREADS": "1", "DECODE_THREADS": "1"}
    photo = encode(photos["chelsea"], "JPEG", quality=90)
    parent = cgroup.own_group(memory_root, "memory")
    with cgroup.MemoryGroup(memory_root, LIMIT, "attack", parent=parent) as group:
        with ServiceProcess(env, tmp_path / "service.log", prefix=group.prefix) as service:
            pid = service.proc.pid
            legit = Legit(service.url, photo)
            legit.thread.start()
            wait_until(lambda: len(legit.results) >= BASELINE_S / LEGIT_EVERY_S, timeout=BASELINE_S * 4)
            baseline_peak = _vm_hwm(pid)
            baseline = list(legit.results)
            outcomes = asyncio.run(_flood(service.port, ATTACK_S))
            alive = service.proc.poll() is None
            attack_peak = _vm_hwm(pid) if alive else None
            legit.stop.set()
            legit.thread.join(90)
            if alive:  # every reservation is released once its connection is gone
                wait_until(lambda: _reserved(service.metrics_url) == 0, timeout=30)
            log = service.output()
        oom_kills, group_peak = group.oom_kills(), group.peak_bytes()
    budget_line = next((line for line in log.splitlines() if "memory budget:" in line), "(no budget line)")
    with capsys.disabled():
        print(f"\n{budget_line}\npeak RSS: {baseline_peak / 2**20:.0f} MiB with the legitimate client "
              f"alone, {attack_peak / 2**20 if attack_peak else float('nan'):.0f} MiB after the flood; "
              f"cgroup peak {group_peak / 2**20 if group_peak else float('nan'):.0f} MiB of "
              f"{LIMIT / 2**20:.0f}; OOM kills {oom_kills}\nattack uploads: {outcomes}\n"
              f"legitimate: {_summary(legit.results)}; /readyz: {_summary([(x, None) for x in legit.ready])}")
    assert alive and oom_kills == 0, f"service died (exit {service.proc.returncode}, OOM kills {oom_kills})"
    assert baseline and all(status == 200 for status, _ in baseline), baseline
    wrong = [(s, c) for s, c in legit.results
             if s != 200 and not ((s == 503 and c in SHED_CODES) or s == 429)]
    assert not wrong, f"legitimate requests not 200 / JSON 503 / 429: {wrong[:10]}"
    assert set(legit.ready) == {200}, _summary([(status, None) for status in legit.ready])
    served = sum(s == 200 for s, _ in legit.results)
    assert served > len(baseline), "no legitimate request served under attack"
    assert any("503" in outcome for outcome in outcomes), outcomes  # the flood was shed, not absorbed


def _reserved(url: str) -> float:
    return metric(httpx.get(url, timeout=10).text, "request_body_bytes")


def _summary(results: list) -> dict[str, int]:
    counts: dict[str, int] = {}
    for status, code in results:
        key = f"{status} {code}" if code else str(status)
        counts[key] = counts.get(key, 0) + 1
    return counts
