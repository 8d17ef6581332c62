"""Start, probe, measure (RSS) and always stop the servers under test: this service and TorchServe."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCALHOST = "127.0.0.1"


class ServerError(RuntimeError):
    """A server under test did not start, exited early or never became ready; the message says which."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released)."""
    with socket.socket() as sock:
        sock.bind((LOCALHOST, 0))
        return sock.getsockname()[1]


def _tree_total(pid: int, measure: Callable[[psutil.Process], float]) -> float:
    """``measure`` summed over process ``pid`` and all its descendants (one that exits meanwhile counts 0)."""
    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += measure(proc)
    return total


def tree_rss_mib(pid: int) -> float:
    """Resident memory (MiB) of process ``pid`` plus all its descendants (psutil ``memory_info().rss``)."""
    return _tree_total(pid, lambda proc: proc.memory_info().rss) / 2**20


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid`` and all its descendants."""
    return _tree_total(pid, lambda proc: sum(proc.cpu_times()[:2]))  # (user, system, children's...)


def wait_idle(pid: int, max_cpu: float = 0.1, interval_s: float = 0.25, timeout_s: float = 60.0) -> float:
    """Wait until process ``pid``'s tree uses under ``max_cpu`` CPUs (0.1 = 10 % of one core) over two
    ``interval_s`` intervals in a row, e.g. while a server finishes requests its clients gave up on;
    return the seconds waited (``timeout_s`` at most: a busy idle server only makes the wait long)."""
    started = time.perf_counter()
    quiet, last = 0, tree_cpu_s(pid)
    while quiet < 2 and time.perf_counter() - started < timeout_s:
        time.sleep(interval_s)
        now = tree_cpu_s(pid)
        quiet = quiet + 1 if (now - last) / interval_s < max_cpu else 0
        last = now
    return time.perf_counter() - started


class ManagedProcess:
    """A server process in its own session; ``stop()`` ends it and every descendant (TERM, then KILL).

    Output goes to ``log_file``; ``tail()`` returns its end for error messages.
    """

    def __init__(self, cmd: list[str], env: dict[str, str], cwd: Path, log_file: Path) -> None:
        self.log_file = log_file
        self.metrics_url = ""  # the service's /metrics (run_service sets it)
        self._log = open(log_file, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            cmd, env=env, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def tail(self, chars: int = 2000) -> str:
        with contextlib.suppress(OSError):
            return self.log_file.read_text(errors="replace")[-chars:]
        return ""

    def descendants(self) -> list[psutil.Process]:
        with contextlib.suppress(psutil.Error):
            return psutil.Process(self.pid).children(recursive=True)
        return []

    def stop(self, grace_s: float = 20.0) -> None:
        """SIGTERM the process group, wait up to ``grace_s`` s, then SIGKILL it and any leftover child."""
        leftovers = self.descendants()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        _gone, alive = psutil.wait_procs(leftovers, timeout=5)
        for proc in alive:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        self._log.close()


def wait_until(probe, proc: ManagedProcess, timeout_s: float, what: str) -> float:
    """Call ``probe()`` until it returns True; return seconds waited.

    Raises ``ServerError`` (with the log's tail) if ``proc`` exits or ``timeout_s`` passes first.
    """
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if proc.proc.poll() is not None:
            raise ServerError(f"{what} exited with code {proc.proc.returncode}:\n{proc.tail()}")
        with contextlib.suppress(OSError, urllib.error.URLError, TimeoutError):
            if probe():
                return time.monotonic() - started
        time.sleep(0.5)
    raise ServerError(f"{what} not ready after {timeout_s:.0f} s:\n{proc.tail()}")


def http_ok(url: str, data: bytes | None = None, headers: dict | None = None, timeout: float = 30.0) -> bool:
    """True if ``url`` answers 200 (GET, or POST when ``data`` is given)."""
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return response.status == 200
    except urllib.error.HTTPError:
        return False


@contextlib.contextmanager
def run_service(
    module: str,
    model_file: Path,
    labels_file: Path,
    workdir: Path,
    extra_env: dict[str, str] | None = None,
    ready_timeout_s: float = 300.0,
    prefix: list[str] | None = None,
) -> Iterator[tuple[str, ManagedProcess]]:
    """Run ``python -m <module>`` (this service) on a free 127.0.0.1 port until the block exits.

    The environment is the caller's plus ``MODEL_PATH``, ``MODEL_LABELS``, ``HOST``, ``PORT``,
    ``METRICS_PORT`` (another free port, unless ``extra_env`` names one; the process's
    ``metrics_url``) and ``extra_env`` (the service's knobs); ``prefix`` goes before the command (e.g.
    ``bench.cgroup``'s
    shim that enters a CPU-quota group, then ``exec``s it). Yields ``(base_url, process)`` once
    ``GET /readyz`` answers 200. Raises ``ServerError`` if it exits or is not ready within
    ``ready_timeout_s`` s.
    """
    port = free_port()
    env = {**os.environ, "METRICS_PORT": str(free_port()), **(extra_env or {})}
    env.update(MODEL_PATH=str(model_file), MODEL_LABELS=str(labels_file), HOST=LOCALHOST, PORT=str(port))
    cmd = [*(prefix or []), sys.executable, "-m", module]
    proc = ManagedProcess(cmd, env, REPO_ROOT, workdir / "service.log")
    proc.metrics_url = f"http://{LOCALHOST}:{env['METRICS_PORT']}/metrics"
    try:
        base = f"http://{LOCALHOST}:{port}"
        wait_until(lambda: http_ok(f"{base}/readyz", timeout=5), proc, ready_timeout_s, "service")
        yield base, proc
    finally:
        proc.stop()
